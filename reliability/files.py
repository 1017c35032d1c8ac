"""Runtime files, created safely: never through a link we did not create, always mode 0600.

Example::

    from reliability import files

    fd = files.open_private("app.db.queue.jsonl")            # O_APPEND|O_CREAT|O_NOFOLLOW, 0600
    files.write_atomic("app.db.audit-anchor", b"...")         # temp (O_EXCL) + fsync + rename + dir fsync
    files.ensure_private_dir("backups")                       # 0700, refuses a symlink or a file there
    files.read_private("app.db.queue.jsonl")                  # bytes, or None when missing

Every file the runtime writes (database, redo journal, write queue, audit fallback, audit
key and anchor, damage marker, operation log, backups) goes through this module, so one rule
holds everywhere:

* the last path component is opened with ``O_NOFOLLOW``: a symlink planted where a runtime
  file should be is refused with :class:`UnsafePathError` (naming the path and the setting
  that chose it) instead of being written through. Parent directories are the ones the
  configuration names and are followed as the operating system does;
* temporaries are created with ``O_CREAT | O_EXCL``: a name planted in advance (a symlink
  to ``~/.bashrc``, a FIFO) is never opened; a regular file left by a crash is removed
  (unlinking removes the name, never a link's target) and the creation retried once;
* files are created ``0600`` and directories ``0700`` whatever the umask; an existing
  runtime file of ours with wider permissions is narrowed to ``0600`` when opened.

On platforms without ``O_NOFOLLOW`` (Windows) the checks fall back to ``lstat`` before
opening, which is racy but still refuses a link that is already there.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from pathlib import Path

#: 0 where the platform lacks the flag: the lstat check below still runs.
O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
O_BINARY: int = getattr(os, "O_BINARY", 0)
#: Opening a FIFO planted at a runtime path must not block; regular files ignore the flag.
O_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)

FILE_MODE = 0o600
DIR_MODE = 0o700

#: Default flags of :func:`open_private`: append, create if missing.
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT

PathLike = str | os.PathLike[str]

log = logging.getLogger("reliability.files")

#: Seconds a temporary named after a dead process is left alone before it counts as a crash's leftover:
#: the directory may be shared with another host, where the pid in its name means nothing here.
LEFTOVER_AGE = 60.0


class UnsafePathError(OSError):
    """A runtime file's path is a symlink (or not a regular file/directory): the runtime will not use it.

    ``path`` is the offending path and ``what`` names the file (and the setting that chose it).
    """

    def __init__(self, path: PathLike, what: str, problem: str = "is a symbolic link") -> None:
        self.path = Path(path)
        self.what = what
        message = (f"refusing to use {self.path} as the {what}: it {problem}. The runtime never follows a link "
                   f"it did not create; remove it or point the setting at a regular file in a directory you own")
        super().__init__(errno.ELOOP, message, str(self.path))

    def __str__(self) -> str:
        return str(self.strerror)


def refuse_symlink(path: PathLike, what: str = "runtime file") -> None:
    """Raise :class:`UnsafePathError` when ``path`` exists and is a symlink (or not a regular file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:  # dbfault: no fault (nothing there yet: nothing to refuse)
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(path, what)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(path, what, "is not a regular file")


def open_private(path: PathLike, flags: int = APPEND, *, what: str = "runtime file") -> int:
    """``os.open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0o600)``; a symlink at ``path`` is refused.

    When the file already exists, is ours and is readable by others (made by an older version
    or under a loose umask), it is narrowed to 0600. Returns the file descriptor.
    """
    if not O_NOFOLLOW:
        refuse_symlink(path, what)
    try:
        fd = os.open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_BINARY | O_NONBLOCK, FILE_MODE)
    except OSError as exc:  # dbfault: no fault (a planted symlink is a setup, not a database fault)
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise UnsafePathError(path, what) from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader
            raise UnsafePathError(path, what, "is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(path, what, "is not a regular file")
        if st.st_mode & 0o077 and (not hasattr(os, "geteuid") or st.st_uid == os.geteuid()):
            os.fchmod(fd, FILE_MODE)
    except BaseException:  # dbfault: no fault (never leak the descriptor of a refused file)
        os.close(fd)
        raise
    return fd


#: Descriptors of database files whose first bytes this process read, by (device, inode): never closed
#: (see :func:`read_database_head`). ``_SPARE_HEADS`` keeps a second descriptor of a file opened in a race.
_HEADS: dict[tuple[int, int], int] = {}
_SPARE_HEADS: list[int] = []
_HEADS_LOCK = threading.Lock()


def read_database_head(path: PathLike, length: int = 100) -> bytes:
    """The first ``length`` bytes of the database file at ``path`` (fewer when it is shorter; ``b""``
    for something that is not a regular file), read without ever closing a descriptor of the file.

    SQLite locks a database with POSIX (``fcntl``) locks, which belong to the process and the file, not
    to a descriptor: closing *any* descriptor of the file drops every lock this process holds on it, and
    SQLite does not notice. A plain ``open()``/``read()``/``close()`` while a connection of this process
    is in a transaction (a reader's SHARED lock, a writer's RESERVED lock) or has the file open in WAL
    mode (a SHARED lock held for the connection's life) lets another process write under the reader,
    beside the writer, or checkpoint and delete the WAL under them: a malformed database (issue #15).
    So the descriptor stays open for the life of the process, one per file read (a new file at the
    same path is a new one), and the next read of the same file reuses it. Windows locks belong to the
    handle that took them: there the file is read and closed as usual.

    :raises OSError: the file cannot be opened (missing, unreadable).
    """
    if os.name == "nt":
        with open(path, "rb") as fh:
            return fh.read(length)
    with _HEADS_LOCK:
        st = os.stat(path)
        fd = _HEADS.get((st.st_dev, st.st_ino))
        if fd is None:
            fd = os.open(path, os.O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                os.close(fd)  # a FIFO, a directory: SQLite never holds a lock on one here
                return b""
            key = (opened.st_dev, opened.st_ino)
            if key in _HEADS:  # the path named another, already-open file by the time it was opened
                _SPARE_HEADS.append(fd)  # closing it would drop the locks just as a plain read does
                fd = _HEADS[key]
            else:
                _HEADS[key] = fd
        return os.pread(fd, length, 0)


def create_private_file(path: PathLike, *, what: str = "runtime file") -> bool:
    """Make sure ``path`` exists as a 0600 regular file (created empty if missing, never truncated).

    Used before SQLite creates a database: SQLite gives its ``-wal``, ``-shm`` and ``-journal``
    files the database file's permissions, so a 0600 database keeps every sidecar 0600.
    Returns True when the file was created now.
    """
    existed = os.path.lexists(path)
    os.close(open_private(path, os.O_RDWR | os.O_CREAT, what=what))
    if not existed:
        fsync_dir(Path(path).parent)
    return not existed


def prepare_database(path: PathLike, *, create: bool) -> None:
    """Before SQLite opens ``path``: refuse a symlink there and, when ``create``, create it 0600 if missing.

    SQLite follows links and creates files with 0644 under the usual umask; creating the empty
    file first gives the database (and, through it, every ``-wal``/``-shm``/``-journal``) mode 0600.
    :raises UnsafePathError: a symlink or a non-regular file is at ``path``.
    """
    what = "database (db_path)"
    refuse_symlink(path, what)
    if create and not os.path.lexists(path):
        _create_database(path, what)


def _create_database(path: PathLike, what: str) -> None:
    """Create an empty 0600 database file at ``path`` unless one appeared meanwhile; never closes a
    descriptor of the file at ``path``.

    Creating it in place and closing the descriptor would open a window in which another thread's
    SQLite connection has opened the new file and taken a lock, which that close would drop (see
    :func:`read_database_head`). The empty file is made under a temporary name, closed, then linked to
    ``path`` (``link`` never replaces: another thread or process that created it first wins).
    """
    tmp = process_temp(path, "create")
    os.close(create_temp(tmp, what=what))
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:  # dbfault: no fault (created by another thread or process first: theirs stays)
            return
        except OSError as exc:  # dbfault: no fault (a file system without hard links: a platform trait)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links: create in place (O_EXCL); the window above is open for a few microseconds.
            try:
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, FILE_MODE))
            except FileExistsError:  # dbfault: no fault (created by another thread or process first)
                return
    finally:
        _unlink_quietly(tmp)
    fsync_dir(Path(path).parent)


def process_temp(path: PathLike, tag: str) -> Path:
    """``<path>.<tag>-<pid>-<tid>``: a temporary of this process and thread, so two writers never share one.

    A crash leaves it behind under a name no later process uses; :func:`remove_leftover_temps` finds it.
    """
    return Path(f"{os.fspath(path)}.{tag}-{os.getpid()}-{threading.get_ident()}")


def remove_leftover_temps(path: PathLike, tag: str, *, now: float | None = None) -> list[Path]:
    """Remove the :func:`process_temp` temporaries of ``path`` that crashes left; returns the removed paths.

    One is a leftover when its process is gone (on this host) and it is older than :data:`LEFTOVER_AGE`
    (a process of another host sharing the directory may be writing it). Anything with such a name that
    is not a regular file (a planted symlink, a FIFO) is not ours and is left where it is; so are names
    that do not carry a pid and a thread id. Errors are no verdict here: a name that cannot be checked or
    removed now is tried again at the next start.
    """
    base = Path(path)
    prefix = f"{base.name}.{tag}-"
    try:
        names = [name for name in os.listdir(base.parent) if name.startswith(prefix)]
    except OSError:  # dbfault: no fault (the directory cannot be listed: the opening that follows says why)
        return []
    now = time.time() if now is None else now
    removed = []
    for name in names:
        pid, dash, tid = name[len(prefix):].partition("-")
        if not (pid.isdigit() and dash and tid.isdigit()) or int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        leftover = base.with_name(name)
        try:
            st = os.lstat(leftover)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < LEFTOVER_AGE:
                continue
            os.unlink(leftover)
        except OSError:  # dbfault: no fault (gone meanwhile, or not ours to remove: tried again at the next start)
            continue
        removed.append(leftover)
        log.info("removed %s: a temporary left by process %s, which is gone", leftover, pid)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (unknown counts as alive: nothing is removed)."""
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # dbfault: no fault (the usual answer for a crash's leftover)
        return False
    except OSError:  # dbfault: no fault (EPERM: it runs, as another user)
        return True
    return True


def create_temp(path: PathLike, *, what: str = "temporary file") -> int:
    """Create ``path`` exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``, 0600) for writing; returns the fd.

    A regular file already there is a leftover of a crash and is replaced; anything else (a
    symlink, a FIFO, a directory) is refused with :class:`UnsafePathError`.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_BINARY
    try:
        return os.open(path, flags, FILE_MODE)
    except FileExistsError:  # dbfault: no fault (a crash's leftover or a planted name, told apart below)
        refuse_symlink(path, what)  # a regular file: a crash's leftover
        os.unlink(path)
        return os.open(path, flags, FILE_MODE)


def write_atomic(path: PathLike, data: bytes, *, what: str = "runtime file", sync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: exclusive temp, write, fsync, rename, fsync the directory.

    A symlink at ``path`` is refused (not replaced): it was planted by someone else.
    """
    path = Path(path)
    refuse_symlink(path, what)
    tmp = path.with_name(path.name + ".tmp")
    fd = create_temp(tmp, what=f"temporary of the {what}")
    written = False
    try:
        write_all(fd, data)
        if sync:
            os.fsync(fd)
        written = True
    finally:
        os.close(fd)
        if not written:  # a full disk or I/O error mid-write: leave no half temporary behind
            _unlink_quietly(tmp)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def read_private(path: PathLike, *, what: str = "runtime file") -> bytes | None:
    """The bytes of runtime file ``path`` read without following a link; None when it does not exist."""
    try:
        fd = open_private(path, os.O_RDONLY, what=what)
    except FileNotFoundError:  # dbfault: no fault (the file was never written: the normal first start)
        return None
    try:
        return read_to_end(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``: a short write is continued, never left as a torn record."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_to_end(fd: int) -> bytes:
    """Every byte from ``fd``'s position to the end of its file."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def ensure_private_dir(path: PathLike, *, what: str = "runtime directory") -> Path:
    """Create directory ``path`` (and parents) with mode 0700 when missing; return it.

    A symlink at ``path`` is refused with :class:`UnsafePathError`; a non-directory there raises
    ``NotADirectoryError`` naming ``what``. An existing directory keeps its mode (it may be shared
    on purpose); the files we put in it are 0600 anyway.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:  # dbfault: no fault (first use: the directory is created here)
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fsync_dir(path.parent)  # the new directory's name is durable only once its parent is synced
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(path, what)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, f"the {what} exists but is not a directory", str(path))
    return path


def file_stat(path: PathLike) -> os.stat_result | None:
    """``os.stat(path)``, or None when nothing can be looked at there (gone, or not reachable).

    The one place that turns "no file" into None for the checks that ask about one of the database's files
    (its identity, its size, its ``-wal``'s size): those files come and go under the runtime (a checkpoint
    deletes the ``-wal``, an operator or a fault removes or replaces the database), and each caller says
    what an absent file means to it.
    """
    try:
        return os.stat(path)
    except OSError:
        return None


def file_identity(path: PathLike) -> tuple[int, int] | None:
    """The file ``path`` names now, as (device, inode), or None when there is none."""
    st = file_stat(path)
    return None if st is None else (st.st_dev, st.st_ino)


def file_size(path: PathLike) -> int | None:
    """The size in bytes of the file ``path`` names now, or None when there is none."""
    st = file_stat(path)
    return None if st is None else st.st_size


def fsync_dir(directory: PathLike) -> None:
    """fsync a directory so a rename or create in it is durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # dbfault: no fault (platform cannot open a directory; callers just wrote in it)
        return
    try:
        os.fsync(fd)
    except OSError:  # dbfault: no fault (file system without directory fsync: a platform trait)
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:  # dbfault: no fault (best-effort cleanup of our own temporary after a failure)
        pass
