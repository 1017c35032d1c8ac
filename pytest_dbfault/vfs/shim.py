"""The shim VFS: wraps SQLite's default VFS inside the SQLite library of a DB-API module.

There is one shim per SQLite build in the process (:func:`get_shim` takes the DB-API module):
the stdlib's ``sqlite3`` (its ``_sqlite3`` extension's ``libsqlite3``, the default), or another
build such as ``pysqlite3.dbapi2``, whose extension carries its own copy of SQLite and exports
``sqlite3_vfs_register`` / ``sqlite3_vfs_find`` (checked with ``nm -D``), so the shim registers
in that copy through ctypes just the same. A build whose extension hides those symbols, or whose
library is not the one the module reports (a different ``sqlite_version``), cannot have a shim:
:func:`vfs_available` says so with the reason. Each build's shim sees only that build's
connections (two copies of SQLite in one process share nothing, not even their VFS lists).

While installed it is the default VFS of its library, so every ``connect(path)`` of that build goes
through it with no change to application code, and ``?vfs=dbfault`` selects it by name. Each file it
opens keeps the real file object SQLite's default VFS built; only the file's method table is swapped for a copy
whose read / write / truncate / sync / size / lock entries are Python callbacks that count the
call, consult the :class:`~.rules.FailRule` list and the power-loss recorders, then call the real
method. Usage::

    shim = get_shim()
    with shim.installed():
        rule = shim.add_rule(FailRule(ops={"write"}, path=db, nth=2, error="disk_full"))
        ...  # the second write to db / db-journal / db-wal returns SQLITE_FULL
        shim.counts(db)  # {"read": 3, "write": 2, ...}

Only files opened while the shim is installed are seen. Files stay wrapped until closed, even
after :meth:`Shim.uninstall` (which only stops *new* opens from being wrapped); at interpreter
exit every still-open file gets its original method table back so no callback can run after
Python has torn down.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from . import _capi as c
from .errors import VfsUnavailable
from .rules import OPS, FailRule, error_code, family_paths

#: The name the shim registers under (``?vfs=dbfault`` in a URI).
VFS_NAME = "dbfault"


@dataclass(frozen=True)
class FailedCall:
    """One I/O call the shim failed on purpose."""

    op: str
    path: str | None
    kind: str
    error: str
    code: int
    offset: int | None = None
    amount: int | None = None
    rule: FailRule | None = field(default=None, repr=False, compare=False)


class _RealMethods:
    """Callable views of one original ``sqlite3_io_methods`` table."""

    __slots__ = ("close", "read", "write", "truncate", "sync", "size", "lock", "unlock", "check_lock")

    def __init__(self, table: c.IoMethods) -> None:
        self.close = c.X_CLOSE(table.xClose)
        self.read = c.X_READ(table.xRead)
        self.write = c.X_WRITE(table.xWrite)
        self.truncate = c.X_TRUNCATE(table.xTruncate)
        self.sync = c.X_SYNC(table.xSync)
        self.size = c.X_FILE_SIZE(table.xFileSize)
        self.lock = c.X_LOCK(table.xLock)
        self.unlock = c.X_UNLOCK(table.xUnlock)
        self.check_lock = c.X_CHECK_RESERVED(table.xCheckReservedLock)


class OpenFile:
    """What the shim knows about one open ``sqlite3_file``."""

    __slots__ = ("ptr", "path", "kind", "real", "real_table", "counts")

    def __init__(self, ptr: int, path: str | None, kind: str, real: _RealMethods, real_table: int) -> None:
        self.ptr = ptr
        self.path = path
        self.kind = kind
        self.real = real
        self.real_table = real_table
        self.counts = dict.fromkeys(OPS, 0)

    def size(self) -> int:
        """The file's current size, through the real VFS."""
        out = ctypes.c_int64(0)
        rc = self.real.size(self.ptr, ctypes.byref(out))
        if rc != c.SQLITE_OK:
            raise OSError(f"xFileSize failed with {rc} on {self.path}")
        return out.value

    def read_bytes(self, offset: int, amount: int) -> bytes:
        """``amount`` bytes at ``offset`` through the real VFS (zero-filled past the end)."""
        if amount <= 0:
            return b""
        buf = ctypes.create_string_buffer(amount)
        rc = self.real.read(self.ptr, buf, amount, offset)
        if rc not in (c.SQLITE_OK, c.SQLITE_IOERR_SHORT_READ):
            raise OSError(f"xRead failed with {rc} on {self.path}")
        return buf.raw


class Recorder(Protocol):
    """What the shim feeds I/O to (:class:`~.powerloss.PowerLossRecorder` is one): told before each write and
    shrinking truncate, asked at each sync whether the power goes out now, told after each successful sync and
    each delete."""

    def before_write(self, f: OpenFile, offset: int, amount: int) -> None:
        """``f`` is about to be written at ``offset``."""

    def before_truncate(self, f: OpenFile, new_size: int) -> None:
        """``f`` is about to be truncated to ``new_size``."""

    def crash_point(self, f: OpenFile) -> bool:
        """Before a sync of ``f``: True if the power goes out now."""

    def after_sync(self, f: OpenFile) -> None:
        """A sync of ``f`` succeeded."""

    def on_delete(self, path: str) -> None:
        """``path`` was deleted."""


class Shim:
    """Controller of the shim VFS of one SQLite build (get it with :func:`get_shim`)."""

    def __init__(self, module: ModuleType = sqlite3) -> None:
        #: the DB-API module whose SQLite library this shim registers in
        self.module = module
        # The C callbacks of this shim (each SQLite library gets its own, bound to its controller).
        self._x_open, self._x_delete, self._io_callbacks = _make_callbacks(self)
        self._lock = threading.RLock()
        self._lib: c.SqliteLib | None = None
        self._unavailable: str | None = None
        self._real_vfs_addr = 0
        self._real_vfs: c.Vfs | None = None
        self._real_open: Any = None
        self._real_delete: Any = None
        self._vfs: c.Vfs | None = None
        self._tables: dict[int, int] = {}  # real method table address -> patched copy address
        self._real_methods: dict[int, _RealMethods] = {}
        self._files: dict[int, OpenFile] = {}
        self._closed_counts: dict[str, dict[str, int]] = {}
        self._users = 0
        self._registered = False
        self._shut_down = False
        self._proven = False
        self.rules: list[FailRule] = []
        self.recorders: list[Recorder] = []
        #: The most recent injected failures, oldest first.
        self.injections: deque[FailedCall] = deque(maxlen=100_000)

    # ------------------------------------------------------------------ availability / lifecycle
    def available(self) -> tuple[bool, str]:
        """``(True, "")`` if the shim can be registered here, else ``(False, reason)``."""
        try:
            self._load()
        except VfsUnavailable as exc:
            return False, exc.reason
        return True, ""

    @property
    def is_installed(self) -> bool:
        """True while the shim is registered (and the default VFS)."""
        return self._registered

    def install(self) -> Shim:
        """Register the shim as the default VFS (reference-counted; pair with :meth:`uninstall`)."""
        with self._lock:
            self._load()
            if self._shut_down:
                raise VfsUnavailable("the interpreter is exiting; the shim was unregistered")
            self._users += 1
            if not self._registered:
                self._register()
        return self

    def uninstall(self) -> None:
        """Drop one :meth:`install`; the last one unregisters the shim so new opens bypass it."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0 and self._registered:
                self._unregister()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Shim]:
        """``with shim.installed(): ...`` — install for the block, then uninstall."""
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    # ------------------------------------------------------------------ rules, counters, recorders
    def add_rule(self, rule: FailRule) -> FailRule:
        """Start applying ``rule`` to every I/O call the shim sees."""
        with self._lock:
            self.rules = [*self.rules, rule]  # copy-on-write: callbacks iterate without the lock
        return rule

    def remove_rule(self, rule: FailRule) -> None:
        """Stop applying ``rule`` (no error if it is not active)."""
        with self._lock:
            self.rules = [r for r in self.rules if r is not rule]

    def add_recorder(self, recorder: Recorder) -> None:
        """Start feeding writes, truncates, syncs and deletes to a power-loss recorder."""
        with self._lock:
            self.recorders = [*self.recorders, recorder]

    def remove_recorder(self, recorder: Recorder) -> None:
        """Stop feeding ``recorder``."""
        with self._lock:
            self.recorders = [r for r in self.recorders if r is not recorder]

    def counters(self) -> dict[str, dict[str, int]]:
        """Calls of every operation per file path (temp files as ``<temp kind>``), closed files included."""
        with self._lock:
            # The lock is reentrant, and the collector can close a connection on this very thread in
            # the middle of the loops below (any allocation may run it): xClose then adds to both
            # tables. dict.copy() clones in C without allocating per item, so iterate the copies.
            closed, open_files = self._closed_counts.copy(), self._files.copy()
            totals = {path: dict(counts) for path, counts in closed.items()}
            for f in open_files.values():
                key = f.path or f"<{f.kind}>"
                bucket = totals.setdefault(key, dict.fromkeys(OPS, 0))
                for op, n in f.counts.items():
                    bucket[op] += n
        return totals

    def counts(self, path: str | os.PathLike[str], *, family: bool = True) -> dict[str, int]:
        """Calls per operation on ``path`` (with its journal and WAL unless ``family=False``)."""
        wanted = family_paths(path) if family else {os.path.realpath(os.fspath(path))}
        total = dict.fromkeys(OPS, 0)
        for key, counts in self.counters().items():
            if key in wanted:
                for op, n in counts.items():
                    total[op] += n
        return total

    def reset_counters(self) -> None:
        """Zero every counter and forget past injections."""
        with self._lock:
            self._closed_counts.clear()
            for f in list(self._files.values()):
                f.counts = dict.fromkeys(OPS, 0)
            self.injections.clear()

    def open_files(self) -> list[OpenFile]:
        """Files currently open through the shim."""
        with self._lock:
            return list(self._files.values())

    # ------------------------------------------------------------------ internals
    def _load(self) -> None:
        if self._lib is not None:
            return
        if self._unavailable is not None:
            raise VfsUnavailable(self._unavailable)
        try:
            lib = c.SqliteLib(self.module)
            real = lib.vfs_find(None)
            if not real:
                raise c.CApiUnavailable("sqlite3_vfs_find(NULL) returned no default VFS")
        except c.CApiUnavailable as exc:
            self._unavailable = str(exc)
            raise VfsUnavailable(self._unavailable) from exc
        self._real_vfs_addr = real
        self._real_vfs = c.Vfs.from_address(real)
        vfs = lib.alloc(c.Vfs)
        # Copy only the members the real VFS's version defines; the rest stays zero.
        version = self._real_vfs.iVersion
        size = {1: c.Vfs.xCurrentTimeInt64.offset, 2: c.Vfs.xSetSystemCall.offset}.get(
            version, ctypes.sizeof(c.Vfs))
        ctypes.memmove(ctypes.addressof(vfs), real, size)
        vfs.pNext = None
        vfs.zName = lib.alloc_string(VFS_NAME.encode())
        self._real_open = c.X_OPEN(self._real_vfs.xOpen)
        self._real_delete = c.X_DELETE(self._real_vfs.xDelete)
        self._vfs = vfs
        self._lib = lib
        atexit.register(self._shutdown)

    def _register(self) -> None:
        assert self._lib is not None and self._vfs is not None
        self._vfs.xOpen = ctypes.cast(self._x_open, ctypes.c_void_p).value
        self._vfs.xDelete = ctypes.cast(self._x_delete, ctypes.c_void_p).value
        rc = self._lib.vfs_register(ctypes.addressof(self._vfs), 1)
        if rc != c.SQLITE_OK:
            raise VfsUnavailable(f"sqlite3_vfs_register returned {rc}")
        self._registered = True
        try:  # proves the module talks to the library we registered in
            self.module.connect(f"file:dbfault-probe?mode=memory&vfs={VFS_NAME}", uri=True).close()
            self._proven = True
        except self.module.Error as exc:
            self._unregister()
            self._users = 0
            self._unavailable = f"the {self.module.__name__} module does not see VFSes registered via ctypes ({exc})"
            self._lib = None
            raise VfsUnavailable(self._unavailable) from exc

    def _unregister(self) -> None:
        assert self._lib is not None and self._vfs is not None and self._real_vfs is not None
        self._lib.vfs_unregister(ctypes.addressof(self._vfs))
        # Connections opened through the shim keep pointing at this struct: let their later
        # opens and deletes go straight to the real VFS.
        self._vfs.xOpen = self._real_vfs.xOpen
        self._vfs.xDelete = self._real_vfs.xDelete
        self._registered = False

    def _shutdown(self) -> None:
        # Runs at exit, before module teardown: after it no SQLite pointer leads to Python code.
        with self._lock:
            self._shut_down = True
            if self._registered:
                self._unregister()
            for f in list(self._files.values()):
                c.set_file_methods(f.ptr, f.real_table)
            self._files.clear()
            self.rules = []
            self.recorders = []

    def _patched_table(self, real_table: int) -> int:
        patched = self._tables.get(real_table)
        if patched is None:
            assert self._lib is not None
            real = c.IoMethods.from_address(real_table)
            table = self._lib.alloc(c.IoMethods)
            size = {1: c.IoMethods.xShmMap.offset, 2: c.IoMethods.xFetch.offset}.get(
                real.iVersion, ctypes.sizeof(c.IoMethods))
            ctypes.memmove(ctypes.addressof(table), real_table, size)
            # Version 2 hides xFetch, so SQLite never memory-maps: every read goes through xRead.
            table.iVersion = min(real.iVersion, 2)
            for slot, callback in self._io_callbacks.items():
                setattr(table, slot, ctypes.cast(callback, ctypes.c_void_p).value)
            patched = ctypes.addressof(table)
            self._real_methods[real_table] = _RealMethods(real)
            self._tables[real_table] = patched
        return patched

    def _on_open(self, file_ptr: int, name_ptr: int | None, flags: int) -> None:
        real_table = c.file_methods(file_ptr)
        if not real_table or self._shut_down:
            return
        kind = next((k for bit, k in c.OPEN_KINDS if flags & bit), "other")
        path = os.path.realpath(os.fsdecode(ctypes.string_at(name_ptr))) if name_ptr else None
        with self._lock:
            patched = self._patched_table(real_table)
            self._files[file_ptr] = OpenFile(file_ptr, path, kind, self._real_methods[real_table], real_table)
            c.set_file_methods(file_ptr, patched)

    def _on_close(self, f: OpenFile) -> None:
        with self._lock:
            self._files.pop(f.ptr, None)
            key = f.path or f"<{f.kind}>"
            bucket = self._closed_counts.setdefault(key, dict.fromkeys(OPS, 0))
            for op, n in f.counts.items():
                bucket[op] += n

    def _check(self, f: OpenFile, op: str, offset: int | None = None, amount: int | None = None) -> str | None:
        """The error kind to inject into this call, or None to let it through."""
        for rule in self.rules:
            if rule.matches(op, f.path, f.kind) and rule.decide():
                code = error_code(rule.error, op)
                self.injections.append(FailedCall(op, f.path, f.kind, rule.error, code, offset, amount, rule))
                return rule.error
        return None


_SHIMS: dict[tuple[str, str], Shim] = {}
_SHIMS_LOCK = threading.Lock()


def _dbapi(module: ModuleType | str | None) -> ModuleType:
    """The DB-API module ``module`` names (None: the stdlib's ``sqlite3``)."""
    if module is None or module == "sqlite3":
        return sqlite3
    if isinstance(module, str):
        import importlib

        try:
            loaded = importlib.import_module(module)
        except ImportError as exc:
            raise VfsUnavailable(f"the sqlite module {module!r} cannot be imported ({exc})") from None
        # sqlean exposes the DB-API at top level, pysqlite3 under .dbapi2 (as reliability's load_sqlite_module)
        module = loaded if hasattr(loaded, "connect") else getattr(loaded, "dbapi2", loaded)
    return module


def _library_key(module: ModuleType) -> tuple[Any, ...]:
    """Which SQLite library ``module`` uses: two modules sharing one library share its shim (a second VFS of
    the same name registered in one library would shadow the first)."""
    try:
        return ("library", c.library_address(module))
    except c.CApiUnavailable:  # no shim possible: one (unavailable) controller per Connection class, saying why
        cls = getattr(module, "Connection", None)
        return ("class", getattr(cls, "__module__", module.__name__), getattr(cls, "__qualname__", ""))


def get_shim(module: ModuleType | str | None = None) -> Shim:
    """The shim of the SQLite library behind DB-API ``module`` (a module or its name; None: the stdlib's
    ``sqlite3``): one per library and process, like SQLite's own VFS registry."""
    module = _dbapi(module)
    if module is sqlite3 or getattr(module, "Connection", None) is sqlite3.Connection:
        return _SHIM
    key = _library_key(module)
    with _SHIMS_LOCK:
        if not _SHIMS:
            _SHIMS[_library_key(sqlite3)] = _SHIM
        shim = _SHIMS.get(key)
        if shim is None:
            shim = _SHIMS[key] = Shim(module)
    return shim


def vfs_available(module: ModuleType | str | None = None) -> tuple[bool, str]:
    """``(True, "")`` when the shim of ``module``'s build (default: the stdlib's) can be used, else
    ``(False, reason)`` for a test skip."""
    try:
        shim = get_shim(module)
    except VfsUnavailable as exc:
        return False, exc.reason
    ok, reason = shim.available()
    if ok and not shim._proven:
        try:  # one install/uninstall round trip proves the module sees the shim
            with shim.installed():
                pass
        except VfsUnavailable as exc:
            return False, exc.reason
    return ok, reason


# ---------------------------------------------------------------------- C callbacks
# Each catches everything: an exception escaping a ctypes callback would return 0 (SQLITE_OK)
# to SQLite and silently lose the operation.


def _make_callbacks(shim: Shim) -> tuple[Any, Any, dict[str, Any]]:
    """The C callbacks of ``shim``: (xOpen, xDelete, {io method slot: callback}).

    They live as long as their shim, and every shim as long as the process (``_SHIM`` and ``_SHIMS``
    hold them): SQLite may call them until every wrapped file is closed or restored at exit.
    """

    def _file(ptr: int) -> OpenFile:
        return shim._files[ptr]

    def _x_open(vfs: int, name: int | None, file_ptr: int, flags: int, out_flags: Any) -> int:
        try:
            rc = shim._real_open(shim._real_vfs_addr, name, file_ptr, flags, out_flags)
        except BaseException:
            return 14  # SQLITE_CANTOPEN
        try:
            shim._on_open(file_ptr, name, flags)
        except BaseException:
            pass  # the file stays unwrapped but usable
        return rc

    def _x_delete(vfs: int, name: int, sync_dir: int) -> int:
        try:
            rc = shim._real_delete(shim._real_vfs_addr, name, sync_dir)
            if rc == c.SQLITE_OK and shim.recorders:
                path = os.path.realpath(os.fsdecode(ctypes.string_at(name)))
                for recorder in shim.recorders:
                    recorder.on_delete(path)
            return rc
        except BaseException:
            return 2570  # SQLITE_IOERR_DELETE

    def _x_close(ptr: int) -> int:
        try:
            f = _file(ptr)
            rc = f.real.close(ptr)
            shim._on_close(f)
            return rc
        except BaseException:
            return 4106  # SQLITE_IOERR_CLOSE

    def _x_read(ptr: int, buf: int, amount: int, offset: int) -> int:
        try:
            f = _file(ptr)
            f.counts["read"] += 1
            if shim.rules:
                error = shim._check(f, "read", offset, amount)
                if error == "short_read":
                    rc = f.real.read(ptr, buf, amount, offset)
                    keep = amount // 2
                    ctypes.memset(buf + keep, 0, amount - keep)
                    return c.SQLITE_IOERR_SHORT_READ if rc in (c.SQLITE_OK, c.SQLITE_IOERR_SHORT_READ) else rc
                if error is not None:
                    return error_code(error, "read")
            return f.real.read(ptr, buf, amount, offset)
        except BaseException:
            return c.SQLITE_IOERR_READ

    def _x_write(ptr: int, buf: int, amount: int, offset: int) -> int:
        try:
            f = _file(ptr)
            f.counts["write"] += 1
            if shim.rules:
                error = shim._check(f, "write", offset, amount)
                if error is not None:
                    return error_code(error, "write")
            for recorder in shim.recorders:
                recorder.before_write(f, offset, amount)
            return f.real.write(ptr, buf, amount, offset)
        except BaseException:
            return c.SQLITE_IOERR_WRITE

    def _x_truncate(ptr: int, size: int) -> int:
        try:
            f = _file(ptr)
            f.counts["truncate"] += 1
            if shim.rules:
                error = shim._check(f, "truncate", size)
                if error is not None:
                    return error_code(error, "truncate")
            for recorder in shim.recorders:
                recorder.before_truncate(f, size)
            return f.real.truncate(ptr, size)
        except BaseException:
            return c.SQLITE_IOERR_TRUNCATE

    def _x_sync(ptr: int, flags: int) -> int:
        try:
            f = _file(ptr)
            f.counts["sync"] += 1
            for recorder in shim.recorders:
                if recorder.crash_point(f):
                    return c.SQLITE_IOERR_FSYNC
            if shim.rules:
                error = shim._check(f, "sync")
                if error is not None:
                    return error_code(error, "sync")
            rc = f.real.sync(ptr, flags)
            if rc == c.SQLITE_OK:
                for recorder in shim.recorders:
                    recorder.after_sync(f)
            return rc
        except BaseException:
            return c.SQLITE_IOERR_FSYNC

    def _x_file_size(ptr: int, out: Any) -> int:
        try:
            f = _file(ptr)
            f.counts["size"] += 1
            if shim.rules:
                error = shim._check(f, "size")
                if error is not None:
                    return error_code(error, "size")
            return f.real.size(ptr, out)
        except BaseException:
            return c.SQLITE_IOERR_FSTAT

    def _x_lock(ptr: int, level: int) -> int:
        try:
            f = _file(ptr)
            f.counts["lock"] += 1
            if shim.rules:
                error = shim._check(f, "lock")
                if error is not None:
                    return error_code(error, "lock")
            return f.real.lock(ptr, level)
        except BaseException:
            return c.SQLITE_IOERR_LOCK

    def _x_unlock(ptr: int, level: int) -> int:
        try:
            f = _file(ptr)
            f.counts["unlock"] += 1
            if shim.rules:
                error = shim._check(f, "unlock")
                if error is not None:
                    return error_code(error, "unlock")
            return f.real.unlock(ptr, level)
        except BaseException:
            return c.SQLITE_IOERR_UNLOCK

    def _x_check_lock(ptr: int, out: Any) -> int:
        try:
            f = _file(ptr)
            f.counts["check_lock"] += 1
            if shim.rules:
                error = shim._check(f, "check_lock")
                if error is not None:
                    return error_code(error, "check_lock")
            return f.real.check_lock(ptr, out)
        except BaseException:
            return c.SQLITE_IOERR_CHECKRESERVEDLOCK

    io_callbacks = {
        "xClose": c.X_CLOSE(_x_close),
        "xRead": c.X_READ(_x_read),
        "xWrite": c.X_WRITE(_x_write),
        "xTruncate": c.X_TRUNCATE(_x_truncate),
        "xSync": c.X_SYNC(_x_sync),
        "xFileSize": c.X_FILE_SIZE(_x_file_size),
        "xLock": c.X_LOCK(_x_lock),
        "xUnlock": c.X_UNLOCK(_x_unlock),
        "xCheckReservedLock": c.X_CHECK_RESERVED(_x_check_lock),
    }
    return c.X_OPEN(_x_open), c.X_DELETE(_x_delete), io_callbacks


#: The stdlib's shim (made once the callbacks above exist).
_SHIM = Shim()
