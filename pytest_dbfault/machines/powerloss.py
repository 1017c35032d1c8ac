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
"""

from __future__ import annotations

import os
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
        #: inode (or the token of an unlinked inode) -> content at its last fsync
        self.content: dict[int | str, bytes] = {}
        #: relative name -> inode (or token) at its directory's last fsync
        self.entries: dict[str, int | str] = {}
        self._dead = 0
        #: subdirectory -> its inode when the parent was last synced (absent: not durable in the parent)
        self.dir_entries: dict[str, int] = {}
        self.syncs = 0
        self._lock = threading.Lock()  # the redo journal is synced on the runtime's writer thread
        self._saved: dict[str, Any] = {}
        self.snapshot_all()

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
            self.entries = self._listing()
            self.dir_entries = self._dir_inodes()
            for name, ino in self.entries.items():
                self.content[ino] = _read(os.path.join(self.directory, name))

    def _sub_of(self, directory: str) -> str | None:
        """"" for the top directory, the subdirectory's relative name, or None (not modelled)."""
        if directory == self.directory:
            return ""
        rel = os.path.relpath(directory, self.directory)
        return rel if rel in self.subdirs else None

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
                kept = {n: i for n, i in self.entries.items() if os.path.dirname(n) != sub}
                kept.update(self._listing_of(sub))
                self.entries = kept
                if not sub:
                    self.dir_entries = self._dir_inodes()
                self.syncs += 1
                return
            sub = self._sub_of(os.path.dirname(path))
            if sub is not None and self._tracked_in(sub, os.path.basename(path)):
                self.content[st.st_ino] = _read_fd(fd)
                self.syncs += 1

    def unlinking(self, path: Any) -> None:
        """``path`` is about to be unlinked (or renamed over): its inode may be freed and its number reused.

        What the durable entries say of that inode stays with them under a token, so a new file
        that gets the same inode number is never mistaken for the old one.
        """
        try:
            full = os.path.realpath(os.fspath(path))
            st = os.lstat(full)
        except (OSError, TypeError, ValueError):
            return
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or self._sub_of(os.path.dirname(full)) is None:
            return
        with self._lock:
            ino = st.st_ino
            self._dead += 1
            token = f"unlinked-{self._dead}"
            if ino in self.content:
                self.content[token] = self.content.pop(ino)
            for name, key in list(self.entries.items()):
                if key == ino:
                    self.entries[name] = token

    # -- the power loss --------------------------------------------------------------------
    def durable_view(self) -> dict[str, bytes]:
        """Name -> content a power loss now would leave (tracked names only)."""
        live_dirs = self._dir_inodes()
        out = {}
        for name, ino in self.entries.items():
            sub = os.path.dirname(name)
            if sub and self.dir_entries.get(sub) != live_dirs.get(sub):
                continue  # its directory was never made durable in the parent: gone with it
            out[name] = self.content.get(ino, b"")
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
                out[name] = (f"{len(data) - len(view[name])} byte(s) not synced" if self.entries.get(name) == ino
                             else "renamed over without a directory fsync")
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
        """Observe ``os.fsync``/``os.fdatasync`` (and unlinks and renames, which may free an inode number)
        while the block runs; the calls still happen."""
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

        def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            self.unlinking(path)
            real_unlink(path, *args, **kwargs)

        def remove(path: Any, *args: Any, **kwargs: Any) -> None:
            self.unlinking(path)
            real_remove(path, *args, **kwargs)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self.unlinking(dst)  # the inode renamed over loses its name
            real_replace(src, dst, *args, **kwargs)

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self.unlinking(dst)
            real_rename(src, dst, *args, **kwargs)

        os.fsync = fsync
        if real_fdatasync is not None:
            os.fdatasync = fdatasync
        os.unlink, os.remove, os.replace, os.rename = unlink, remove, replace, rename
        try:
            yield self
        finally:
            os.fsync = real_fsync
            if real_fdatasync is not None:
                os.fdatasync = real_fdatasync
            os.unlink, os.remove, os.replace, os.rename = real_unlink, real_remove, real_replace, real_rename


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
