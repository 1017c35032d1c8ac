"""Disk full for one file the process already has open: its descriptor now writes to ``/dev/full``.

SQLite's own files get their faults from the engine-level and VFS faults; an application also
writes files of its own next to the database — a journal, a queue, a fallback log — through
plain ``os.write`` / ``open()``. :class:`FileFullFault` makes those writes meet a real
``ENOSPC`` from the kernel: each descriptor open on the target is ``dup2``-ed onto ``/dev/full``
(the original kept aside), so ``write()`` fails with ``OSError(28, 'No space left on device')``
and ``fsync()`` with ``EINVAL``, exactly what the application's error handling sees on a full
disk. :meth:`heal` puts the original descriptions back, file offsets and flags intact.

Linux only (``/proc/self/fd`` and ``/dev/full``). Only descriptors open at :meth:`inject` are
affected: a file opened later writes normally. Reads through an affected descriptor return
zero bytes of ``/dev/full``'s, so aim it at files the code writes, not at SQLite's own.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import Fault, FaultError
from .safety import check_path
from .target import TargetLike, resolve_target

_DEV_FULL = "/dev/full"


class FileFullFault(Fault):
    """Every write to an already-open file fails with ``ENOSPC`` until healed.

    :param target: the file, as a path (every descriptor this process has open on it) or a
        descriptor number; or, with ``sidecar``, a database (path, connection or manager).
    :param sidecar: the file is the database's path plus this suffix (``".redo"`` for
        ``app.db.redo``): how a scenario, whose runner passes the runtime as the target, names it.
    :param allow_unsafe: act on a path outside pytest's temporary directories.
    """

    name = "file_full"

    def __init__(self, target: TargetLike | int, *, sidecar: str | None = None, allow_unsafe: bool = False) -> None:
        super().__init__(target=target, sidecar=sidecar)
        self.fd: int | None = None
        self.path: Path | None = None
        if sidecar is not None:
            if not isinstance(sidecar, str) or not sidecar or "/" in sidecar:
                raise FaultError(f"FileFullFault sidecar must be a file name suffix like '.redo', got {sidecar!r}")
            if isinstance(target, int):
                raise FaultError("FileFullFault: sidecar= names a file next to a database; give the database "
                                 "(path, connection or manager), not a descriptor")
            db_path = resolve_target(target).path
            if db_path is None:
                raise FaultError(f"FileFullFault: {target!r} has no database file to find {sidecar!r} next to")
            self.path = check_path(str(db_path) + sidecar, action="fill the disk of", allow_unsafe=allow_unsafe)
        elif isinstance(target, int) and not isinstance(target, bool):
            self.fd = target
        elif isinstance(target, (str, os.PathLike)):
            self.path = check_path(target, action="fill the disk of", allow_unsafe=allow_unsafe)
        else:
            raise FaultError(f"FileFullFault target must be a path or a file descriptor (or a database with "
                             f"sidecar='.suffix'), got {target!r}")
        self._saved: dict[int, tuple[int, bool]] = {}  # fd -> (its original description, inheritable)
        self._full_id: tuple[int, int] | None = None

    def _inject(self) -> None:
        if not os.path.exists(_DEV_FULL) or not os.path.isdir("/proc/self/fd"):
            raise FaultError("FileFullFault needs Linux's /dev/full and /proc/self/fd")
        fds = [self.fd] if self.fd is not None else _fds_open_on(self.path)  # type: ignore[arg-type]
        if not fds:
            raise FaultError(f"FileFullFault: this process has no descriptor open on {self.path}; "
                             "open the file (start the code that writes it) before injecting")
        full = os.open(_DEV_FULL, os.O_WRONLY)
        st = os.fstat(full)
        self._full_id = (st.st_dev, st.st_ino)
        try:
            for fd in fds:
                try:
                    inheritable = os.get_inheritable(fd)
                    self._saved[fd] = (os.dup(fd), inheritable)
                except OSError as exc:
                    raise FaultError(f"FileFullFault: descriptor {fd} is not open ({exc})") from None
                os.dup2(full, fd, inheritable=inheritable)
        except BaseException:
            self._restore()
            raise
        finally:
            os.close(full)
        self.record("redirected", fds=sorted(self._saved))

    def _heal(self) -> None:
        self._restore()

    def _restore(self) -> None:
        saved, self._saved = self._saved, {}
        for fd, (original, inheritable) in saved.items():
            try:
                # Only give back a descriptor still pointing at /dev/full: one the code under test
                # closed (or closed and reused for another file) must not be clobbered.
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == self._full_id:
                    os.dup2(original, fd, inheritable=inheritable)
            except OSError:
                pass  # closed while the fault was active: nothing to give back
            finally:
                os.close(original)


def _fds_open_on(path: Path) -> list[int]:
    """This process's descriptors whose file is ``path`` (same device and inode)."""
    try:
        want = os.stat(path)
    except OSError as exc:
        raise FaultError(f"FileFullFault: cannot stat {path}: {exc}") from None
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            st = os.fstat(fd)
        except OSError:  # the descriptor listdir itself used, already closed
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            found.append(fd)
    return found
