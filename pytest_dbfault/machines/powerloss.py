"""A power-loss model for the runtime's own files (redo journal, write queue, audit fallback).

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
    """Durable state of the regular files directly in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str, tracked: Callable[[str], bool] | None = None) -> None:
        self.directory = os.path.realpath(directory)
        self.tracked = tracked or (lambda name: not name.endswith(UNTRACKED_SUFFIXES)
                                   and not any(part in name for part in UNTRACKED_PARTS))
        #: inode -> content at its last fsync
        self.content: dict[int, bytes] = {}
        #: name -> inode at the directory's last fsync
        self.entries: dict[str, int] = {}
        self.syncs = 0
        self._saved: dict[str, Any] = {}
        self.snapshot_all()

    # -- what is durable now ---------------------------------------------------------------
    def _listing(self) -> dict[str, int]:
        out = {}
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and self.tracked(name):
                out[name] = st.st_ino
        return out

    def snapshot_all(self) -> None:
        """Everything as it is now is durable (a clean start: the files were synced before)."""
        self.entries = self._listing()
        for name, ino in self.entries.items():
            self.content[ino] = _read(os.path.join(self.directory, name))

    def synced(self, fd: int) -> None:
        """``fsync``/``fdatasync`` of ``fd`` returned: record what it made durable."""
        try:
            path = os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))
            st = os.fstat(fd)
        except OSError:
            return
        if stat.S_ISDIR(st.st_mode):
            if path == self.directory:
                self.entries = self._listing()
                self.syncs += 1
            return
        if os.path.dirname(path) == self.directory and self.tracked(os.path.basename(path)):
            self.content[st.st_ino] = _read_fd(fd)
            self.syncs += 1

    # -- the power loss --------------------------------------------------------------------
    def durable_view(self) -> dict[str, bytes]:
        """Name -> content a power loss now would leave (tracked names only)."""
        return {name: self.content.get(ino, b"") for name, ino in self.entries.items()}

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
            with open(path, "wb") as fh:
                fh.write(data)
            os.chmod(path, 0o600)
        self.snapshot_all()

    # -- observing the syscalls ------------------------------------------------------------
    @contextmanager
    def observing(self) -> Iterator[PowerLossModel]:
        """Observe ``os.fsync``/``os.fdatasync`` while the block runs (the calls still happen)."""
        real_fsync = os.fsync
        real_fdatasync = getattr(os, "fdatasync", None)

        def fsync(fd: Any) -> None:
            real_fsync(fd)
            self.synced(fd if isinstance(fd, int) else fd.fileno())

        def fdatasync(fd: Any) -> None:
            assert real_fdatasync is not None
            real_fdatasync(fd)
            self.synced(fd if isinstance(fd, int) else fd.fileno())

        os.fsync = fsync
        if real_fdatasync is not None:
            os.fdatasync = fdatasync
        try:
            yield self
        finally:
            os.fsync = real_fsync
            if real_fdatasync is not None:
                os.fdatasync = real_fdatasync


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
