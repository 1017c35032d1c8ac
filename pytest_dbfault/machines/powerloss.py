"""A power-loss model for the runtime's own files (redo journal, write queue, audit fallback, backups).

A machine's "crash" so far was a process kill: the page cache survives it, so a missing
``fsync`` was invisible. This model makes it visible without a kernel: while a machine runs,
``os.fsync`` / ``os.fdatasync`` are observed (not replaced). Each call records what is durable:

* ``fsync`` of a file: the file's current content becomes durable *for that inode*;
* ``fsync`` of a directory: the directory's current entries (name -> inode) become durable.

At a simulated power loss, every tracked name in the directory is put back to its durable
state: the name points at the inode it pointed at when the directory was last synced, holding
the content that inode had at its last fsync (nothing synced: empty, as delayed allocation
leaves it); a name never made durable disappears. So a write not followed by fsync is lost,
and a rename or create not followed by an fsync of the directory is undone — the two mistakes
issue #14 asks to catch.

Files are identified by an identity the model assigns (inode number + a generation), never by the
inode number alone: an inode number is reused at once after an unlink (ext4, tmpfs), and not every
unlink passes through ``os.unlink`` (``pathlib`` on Python 3.10 holds its own reference to it; SQLite
and other processes unlink in C). The model follows each identity to the name it was last seen at (an
``fsync``, a directory listing, or an observed ``rename``); when an inode number turns up at another
name that no observed rename put it at, a new file has reused the number, and it gets a new identity
holding no synced content, while the durable names of the old file keep the old one. (The one
ambiguity left is lenient: a file unlinked and re-created under the *same* name on the same inode
number is taken for the same file.) Before that rule, an unlink the model did not see let a new
backup's synced bytes appear under a rotated backup's name after a simulated power loss (issue #14).

Subdirectories named at construction (the backup directory) are modelled the same way, one level
down: their files by their own fsyncs, their entries by an fsync of the subdirectory, and the
subdirectory itself by an fsync of the parent: a subdirectory created after the model started and
never made durable in its parent disappears with everything in it. Names in a view are relative
to the top directory (``"app.db.backups/backup-….sqlite"``).

Design choices (argued): observing the runtime's own syscalls through the ``os`` module is
enough because the runtime writes these files with ``os.write``/``open`` and syncs them with
``os.fsync``/``os.fdatasync`` (the fd's path comes from ``/proc/self/fd``, so ``open()`` needs no
hook). SQLite's files are not modelled (SQLite syncs in C, below this hook; its power-loss
behaviour belongs to :mod:`pytest_dbfault.vfs.powerloss`): they are left as they are, which is
lenient, never a false alarm. Files the runtime does not promise to keep (the operation log,
the machine's ``.env``) are not tracked. Linux only (``/proc``); elsewhere the model is off.

One moment of the database file is modelled all the same: a restore or a recovery prepares the new database under
one of the runtime's own names (``<db>.restore-tmp``, tracked) and renames it onto the database's name. At that
rename the file holds only what the runtime's Python code wrote, so the model records in :attr:`PowerLossModel.installs`
the bytes a power loss right then would leave there (those of the source's last fsync). Before, a restore or
recovery that renamed an unsynced copy into place went unseen (session 25, surviving mutant ``backup.py:520``); the
machines judge the record in ``BackupMixin.check_install_durable``.
"""

from __future__ import annotations

import os
import pathlib
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Names in the example directory that are not the runtime's promised-durable files.
UNTRACKED_SUFFIXES = ("-wal", "-shm", "-journal", ".db", "ops.jsonl", ".env")
#: SQLite files moved aside by recovery: synced by SQLite, not by the runtime's Python code.
UNTRACKED_PARTS = (".quarantine-", ".schema-copy", "dbfault-moved")


def supported() -> bool:
    """True where an fd's path can be read back (Linux ``/proc/self/fd``)."""
    return os.path.isdir("/proc/self/fd")


class PowerLossModel:
    """Durable state of the regular files directly in ``directory`` and in ``subdirs`` (see the module docstring)."""

    def __init__(self, directory: str, tracked: Callable[[str], bool] | None = None,
                 subdirs: tuple[str, ...] = ()) -> None:
        self.directory = os.path.realpath(directory)
        self.tracked = tracked or (lambda name: not name.endswith(UNTRACKED_SUFFIXES)
                                   and not any(part in name for part in UNTRACKED_PARTS))
        #: modelled subdirectories, relative to ``directory`` (one level: ``"app.db.backups"``)
        self.subdirs = tuple(os.path.relpath(os.path.realpath(os.path.join(self.directory, d)), self.directory)
                             for d in subdirs)
        #: file identity -> content at its last fsync
        self.content: dict[str, bytes] = {}
        #: relative name -> file identity at its directory's last fsync
        self.entries: dict[str, str] = {}
        #: inode number -> the identity of the live file holding it (as far as the model has seen)
        self.ident: dict[int, str] = {}
        #: identity -> the relative name it was last seen at
        self.where: dict[str, str] = {}
        self._generation = 0
        #: subdirectory -> its inode when the parent was last synced (absent: not durable in the parent)
        self.dir_entries: dict[str, int] = {}
        self.syncs = 0
        #: inode numbers found reused by a new file at another name (a rename or unlink the model did not see)
        self.reused = 0
        #: Files the runtime prepared under a tracked name and renamed onto an untracked one in the top directory
        #: (a restore or a recovery installing the database): ``(name, durable bytes, bytes at the rename)``, in
        #: order. SQLite's own files are not modelled (it syncs in C, below the hook), but at the instant of such a
        #: rename the file holds only what the runtime's Python code wrote, so what a power loss right then would
        #: leave under the new name is known: the bytes of the source's last fsync (nothing synced: empty).
        self.installs: list[tuple[str, bytes, bytes]] = []
        self._lock = threading.Lock()  # the redo journal is synced on the runtime's writer thread
        self.snapshot_all()

    # -- file identities -------------------------------------------------------------------
    def _new_identity(self, ino: int, name: str) -> str:
        self._generation += 1
        key = f"{ino}.{self._generation}"
        self.ident[ino] = key
        self.where[key] = name
        return key

    def _identity(self, ino: int, name: str, data: bytes | None = None) -> str:
        """The identity of the live file ``name`` on inode ``ino`` (a new one when the number was reused).

        ``data`` (the file's bytes now, when the caller has them) settles one case leniently: a file
        at another name holding exactly the bytes synced under the old one is taken as the same file,
        renamed where the model could not see; either reading leaves the same durable view.
        """
        key = self.ident.get(ino)
        if key is None:
            return self._new_identity(ino, name)
        if self.where.get(key) != name:
            same = data is not None and self.content.get(key) == data
            if not same:
                self.reused += 1  # the old file's durable names keep ``key`` and its content
                return self._new_identity(ino, name)
            self.where[key] = name
        return key

    def _peek(self, ino: int, name: str) -> str | None:
        """:meth:`_identity` without assigning anything (None: a file the model has no record of)."""
        key = self.ident.get(ino)
        return key if key is not None and self.where.get(key) == name else None

    # -- what is durable now ---------------------------------------------------------------
    def _tracked_in(self, sub: str, name: str) -> bool:
        # In a subdirectory (backups) every file counts except SQLite's own sidecars.
        return self.tracked(name) if not sub else not name.endswith(("-wal", "-shm", "-journal"))

    def _listing_of(self, sub: str) -> dict[str, int]:
        """Relative name -> inode of the tracked regular files of directory ``sub`` ("" = the top one)."""
        out = {}
        base = os.path.join(self.directory, sub) if sub else self.directory
        try:
            names = os.listdir(base)
        except OSError:
            return out
        for name in names:
            try:
                st = os.lstat(os.path.join(base, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and self._tracked_in(sub, name):
                out[os.path.join(sub, name) if sub else name] = st.st_ino
        return out

    def _listing(self) -> dict[str, int]:
        out = self._listing_of("")
        for sub in self.subdirs:
            out.update(self._listing_of(sub))
        return out

    def _dir_inodes(self) -> dict[str, int]:
        out = {}
        for sub in self.subdirs:
            try:
                st = os.lstat(os.path.join(self.directory, sub))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                out[sub] = st.st_ino
        return out

    def snapshot_all(self) -> None:
        """Everything as it is now is durable (a clean start: the files were synced before)."""
        with self._lock:
            self.ident, self.where, self.content, self.entries = {}, {}, {}, {}
            for name, ino in self._listing().items():
                key = self._identity(ino, name)
                self.entries[name] = key
                self.content[key] = _read(os.path.join(self.directory, name))
            self.dir_entries = self._dir_inodes()

    def _sub_of(self, directory: str) -> str | None:
        """"" for the top directory, the subdirectory's relative name, or None (not modelled)."""
        if directory == self.directory:
            return ""
        rel = os.path.relpath(directory, self.directory)
        return rel if rel in self.subdirs else None

    def _relname(self, path: str) -> str | None:
        """``path``'s name relative to the top directory, or None when its directory is not modelled."""
        sub = self._sub_of(os.path.dirname(path))
        if sub is None:
            return None
        return os.path.join(sub, os.path.basename(path)) if sub else os.path.basename(path)

    def synced(self, fd: int) -> None:
        """``fsync``/``fdatasync`` of ``fd`` returned: record what it made durable."""
        try:
            path = os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))
            st = os.fstat(fd)
        except OSError:
            return
        with self._lock:
            if stat.S_ISDIR(st.st_mode):
                sub = self._sub_of(path)
                if sub is None:
                    return
                kept = {n: k for n, k in self.entries.items() if os.path.dirname(n) != sub}
                for name, ino in self._listing_of(sub).items():
                    key = self.ident.get(ino)
                    data = (_read(os.path.join(self.directory, name))
                            if key is not None and self.where.get(key) != name else None)
                    kept[name] = self._identity(ino, name, data)
                self.entries = kept
                if not sub:
                    self.dir_entries = self._dir_inodes()
                # Content no durable name and no live file refers to can never come back: drop it.
                alive = set(self.entries.values()) | set(self.ident.values())
                self.content = {k: v for k, v in self.content.items() if k in alive}
                live_keys = set(self.ident.values())
                self.where = {k: v for k, v in self.where.items() if k in live_keys}
                self.syncs += 1
                return
            if st.st_nlink == 0:
                # Synced after its last name was removed (its path reads "... (deleted)"): only a durable name
                # the model still knows for it can bring it back.
                key = self.ident.get(st.st_ino)
                if key is not None:
                    self.content[key] = _read_fd(fd)
                return
            name = self._relname(path)
            if name is not None and self._tracked_in(os.path.dirname(name), os.path.basename(name)):
                data = _read_fd(fd)
                self.content[self._identity(st.st_ino, name, data)] = data
                self.syncs += 1

    def _resolve(self, path: Any, dir_fd: int | None) -> str | None:
        try:
            raw = os.fsdecode(os.fspath(path))
            if dir_fd is not None and not os.path.isabs(raw):
                raw = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), raw)
            # The directory resolved, the name itself not (it may be a link: never follow it).
            return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(raw))), os.path.basename(raw))
        except (OSError, TypeError, ValueError):
            return None

    def unlinking(self, path: Any, dir_fd: int | None = None) -> None:
        """``path`` is about to be unlinked (or renamed over): its inode may be freed and its number reused.

        The identity leaves the inode number (a new file that gets the number is a new identity);
        what the durable entries say of the old file stays with them.
        """
        full = self._resolve(path, dir_fd)
        if full is None:
            return
        try:
            st = os.lstat(full)
        except OSError:
            return
        name = self._relname(full)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or name is None:
            return
        with self._lock:
            key = self._peek(st.st_ino, name)
            if key is not None:
                del self.ident[st.st_ino]

    def renamed(self, src: Any, dst: Any, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
        """``src`` was renamed to ``dst``: the file keeps its identity under its new name."""
        old, new = self._resolve(src, src_dir_fd), self._resolve(dst, dst_dir_fd)
        if old is None or new is None:
            return
        try:
            st = os.lstat(new)
        except OSError:
            return
        old_name, new_name = self._relname(old), self._relname(new)
        with self._lock:
            key = self._peek(st.st_ino, old_name) if old_name is not None else None
            if (old_name is not None and new_name is not None and not os.path.dirname(old_name)
                    and not os.path.dirname(new_name) and self.tracked(old_name) and not self.tracked(new_name)):
                durable = self.content.get(key, b"") if key is not None else b""  # never seen: never synced
                self.installs.append((new_name, durable, _read(new)))
            if key is None:
                return  # from outside the model or never seen: a new identity when it is first seen
            if new_name is None:
                del self.ident[st.st_ino]  # moved out of the modelled directories
            else:
                self.where[key] = new_name

    # -- the power loss --------------------------------------------------------------------
    def durable_view(self) -> dict[str, bytes]:
        """Name -> content a power loss now would leave (tracked names only)."""
        live_dirs = self._dir_inodes()
        out = {}
        for name, key in self.entries.items():
            sub = os.path.dirname(name)
            if sub and self.dir_entries.get(sub) != live_dirs.get(sub):
                continue  # its directory was never made durable in the parent: gone with it
            out[name] = self.content.get(key, b"")
        return out

    def lost(self) -> dict[str, str]:
        """What a power loss now would lose: name -> why (for messages)."""
        live = self._listing()
        view = self.durable_view()
        out = {}
        for name, ino in live.items():
            data = _read(os.path.join(self.directory, name))
            if name not in view:
                out[name] = "its directory entry was never synced"
            elif view[name] != data:
                same = self._peek(ino, name) == self.entries.get(name)
                out[name] = (f"{len(data) - len(view[name])} byte(s) not synced" if same
                             else "renamed over or replaced without a directory fsync")
        return out

    def apply(self, view: dict[str, bytes]) -> None:
        """Make the directory hold ``view`` for the tracked names (the state after the power loss)."""
        for name in self._listing():
            if name not in view:
                os.remove(os.path.join(self.directory, name))
        for name, data in view.items():
            path = os.path.join(self.directory, name)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
            os.chmod(path, 0o600)
        self.snapshot_all()

    # -- observing the syscalls ------------------------------------------------------------
    @contextmanager
    def observing(self) -> Iterator[PowerLossModel]:
        """Observe ``os.fsync``/``os.fdatasync`` (and unlinks and renames, which move or free an inode number)
        while the block runs; the calls still happen.

        Python 3.10's ``pathlib`` calls the ``os`` functions it captured at import (``_NormalAccessor``),
        so ``Path.unlink``/``Path.replace``/``Path.rename`` are observed there too. An unlink the model
        still does not see (SQLite's, another process's) cannot mislead it: see the module docstring.
        """
        real_fsync = os.fsync
        real_fdatasync = getattr(os, "fdatasync", None)

        def fsync(fd: Any) -> None:
            real_fsync(fd)
            self.synced(fd if isinstance(fd, int) else fd.fileno())

        def fdatasync(fd: Any) -> None:
            assert real_fdatasync is not None
            real_fdatasync(fd)
            self.synced(fd if isinstance(fd, int) else fd.fileno())

        real_unlink, real_remove, real_replace, real_rename = os.unlink, os.remove, os.replace, os.rename

        def unlink(path: Any, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> None:
            self.unlinking(path, dir_fd)
            real_unlink(path, *args, dir_fd=dir_fd, **kwargs)

        def remove(path: Any, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> None:
            self.unlinking(path, dir_fd)
            real_remove(path, *args, dir_fd=dir_fd, **kwargs)

        def moving(real: Callable[..., None]) -> Callable[..., None]:
            def move(src: Any, dst: Any, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
                self.unlinking(dst, dst_dir_fd)  # the inode renamed over loses its name
                real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
                self.renamed(src, dst, src_dir_fd, dst_dir_fd)
            return move

        replace, rename = moving(real_replace), moving(real_rename)
        accessor = getattr(pathlib, "_NormalAccessor", None)  # Python <= 3.10 only
        saved = {n: accessor.__dict__[n] for n in ("unlink", "rename", "replace")
                 if accessor is not None and n in accessor.__dict__}

        os.fsync = fsync
        if real_fdatasync is not None:
            os.fdatasync = fdatasync
        os.unlink, os.remove, os.replace, os.rename = unlink, remove, replace, rename
        for n, hook in (("unlink", unlink), ("rename", rename), ("replace", replace)):
            if n in saved:
                setattr(accessor, n, staticmethod(hook))  # a plain function would be bound to the accessor
        try:
            yield self
        finally:
            os.fsync = real_fsync
            if real_fdatasync is not None:
                os.fdatasync = real_fdatasync
            os.unlink, os.remove, os.replace, os.rename = real_unlink, real_remove, real_replace, real_rename
            for n, original in saved.items():
                setattr(accessor, n, original)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _read_fd(fd: int) -> bytes:
    # pread from 0 leaves the fd's offset alone (O_APPEND writers keep appending at the end).
    size = os.fstat(fd).st_size
    try:
        return os.pread(fd, size, 0) if size else b""
    except OSError:  # a write-only fd: read the file by its path
        return _read(os.readlink(f"/proc/self/fd/{fd}"))
