"""ctypes view of the few SQLite C structures the shim touches, and the library they live in.

The shim must be registered in the *same* SQLite instance that a DB-API module's C extension
calls, so the library is reached through that extension's own handle (``dlsym`` on it searches
its dependencies too): the stdlib's ``_sqlite3`` (dynamically linked to ``libsqlite3``), or the
extension of another build such as ``pysqlite3._sqlite3`` (the amalgamation linked in, its
``sqlite3_*`` functions exported). One process may hold several such libraries, each with its own
VFS list. Memory that SQLite keeps pointers to (the VFS struct, its name, the patched method tables)
is taken from ``sqlite3_malloc64`` and never freed: ctypes buffers could be reclaimed during
interpreter shutdown while a connection still points into them.
"""

from __future__ import annotations

import ctypes
import sqlite3
import sys
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64, c_void_p
from types import ModuleType
from typing import Any, TypeVar

# Result codes (sqlite3.h). Extended I/O codes are SQLITE_IOERR | (n << 8).
SQLITE_OK = 0
SQLITE_BUSY = 5
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_IOERR_READ = 266
SQLITE_IOERR_SHORT_READ = 522
SQLITE_IOERR_WRITE = 778
SQLITE_IOERR_FSYNC = 1034
SQLITE_IOERR_TRUNCATE = 1546
SQLITE_IOERR_FSTAT = 1802
SQLITE_IOERR_UNLOCK = 2058
SQLITE_IOERR_CHECKRESERVEDLOCK = 3594
SQLITE_IOERR_LOCK = 3850
SQLITE_IOERR_CORRUPTFS = 8458

# xOpen flags that say what kind of file is being opened.
OPEN_KINDS = (
    (0x00000100, "main"),
    (0x00000200, "temp"),
    (0x00000400, "transient"),
    (0x00000800, "journal"),
    (0x00001000, "temp_journal"),
    (0x00002000, "subjournal"),
    (0x00004000, "super_journal"),
    (0x00080000, "wal"),
)

# sqlite3_io_methods callbacks (only the ones the shim replaces need exact prototypes).
X_CLOSE = CFUNCTYPE(c_int, c_void_p)
X_READ = CFUNCTYPE(c_int, c_void_p, c_void_p, c_int, c_int64)
X_WRITE = CFUNCTYPE(c_int, c_void_p, c_void_p, c_int, c_int64)
X_TRUNCATE = CFUNCTYPE(c_int, c_void_p, c_int64)
X_SYNC = CFUNCTYPE(c_int, c_void_p, c_int)
X_FILE_SIZE = CFUNCTYPE(c_int, c_void_p, POINTER(c_int64))
X_LOCK = CFUNCTYPE(c_int, c_void_p, c_int)
X_UNLOCK = CFUNCTYPE(c_int, c_void_p, c_int)
X_CHECK_RESERVED = CFUNCTYPE(c_int, c_void_p, POINTER(c_int))
# sqlite3_vfs callbacks the shim replaces.
# File names are kept as raw pointers: SQLite stores URI parameters after the name's NUL and
# the real VFS reads them through the very pointer it is given.
X_OPEN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p, c_int, POINTER(c_int))
X_DELETE = CFUNCTYPE(c_int, c_void_p, c_void_p, c_int)

_S = TypeVar("_S", bound="Structure")


class IoMethods(Structure):
    """``sqlite3_io_methods`` up to version 3; untouched slots stay opaque pointers."""

    _fields_ = [
        ("iVersion", c_int),
        ("xClose", c_void_p),
        ("xRead", c_void_p),
        ("xWrite", c_void_p),
        ("xTruncate", c_void_p),
        ("xSync", c_void_p),
        ("xFileSize", c_void_p),
        ("xLock", c_void_p),
        ("xUnlock", c_void_p),
        ("xCheckReservedLock", c_void_p),
        ("xFileControl", c_void_p),
        ("xSectorSize", c_void_p),
        ("xDeviceCharacteristics", c_void_p),
        ("xShmMap", c_void_p),
        ("xShmLock", c_void_p),
        ("xShmBarrier", c_void_p),
        ("xShmUnmap", c_void_p),
        ("xFetch", c_void_p),
        ("xUnfetch", c_void_p),
    ]


class Vfs(Structure):
    """``sqlite3_vfs`` up to version 3; untouched slots stay opaque pointers."""

    _fields_ = [
        ("iVersion", c_int),
        ("szOsFile", c_int),
        ("mxPathname", c_int),
        ("pNext", c_void_p),
        ("zName", c_void_p),
        ("pAppData", c_void_p),
        ("xOpen", c_void_p),
        ("xDelete", c_void_p),
        ("xAccess", c_void_p),
        ("xFullPathname", c_void_p),
        ("xDlOpen", c_void_p),
        ("xDlError", c_void_p),
        ("xDlSym", c_void_p),
        ("xDlClose", c_void_p),
        ("xRandomness", c_void_p),
        ("xSleep", c_void_p),
        ("xCurrentTime", c_void_p),
        ("xGetLastError", c_void_p),
        ("xCurrentTimeInt64", c_void_p),
        ("xSetSystemCall", c_void_p),
        ("xGetSystemCall", c_void_p),
        ("xNextSystemCall", c_void_p),
    ]


class CApiUnavailable(Exception):
    """A DB-API module's SQLite library cannot be reached through ctypes."""


#: File name endings of a C extension module.
_EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")


def extension_of(module: ModuleType) -> ModuleType:
    """The loaded C extension that implements DB-API ``module`` (``_sqlite3`` for the stdlib's
    ``sqlite3``, ``pysqlite3._sqlite3`` for ``pysqlite3.dbapi2``...): the one whose ``Connection``
    class is ``module.Connection``. Its SQLite is the library the module's connections use."""
    cls = getattr(module, "Connection", None)
    if cls is None:
        raise CApiUnavailable(f"{module.__name__} has no Connection class: not a DB-API sqlite module")
    if module is sqlite3:
        try:
            import _sqlite3
        except ImportError as exc:  # pragma: no cover - a Python without sqlite3 at all
            raise CApiUnavailable(f"the stdlib _sqlite3 module cannot be imported ({exc})") from exc
        candidates: list[Any] = [_sqlite3]
    else:
        candidates = list(sys.modules.values())
    for candidate in candidates:
        if getattr(candidate, "Connection", None) is cls and candidate is not module \
                and str(getattr(candidate, "__file__", "") or "").endswith(_EXTENSION_SUFFIXES):
            return candidate  # type: ignore[no-any-return]
    if module is sqlite3:
        origin = getattr(candidates[0], "__file__", None)
        raise CApiUnavailable(f"_sqlite3 is not a C extension module ({origin!r}); there is no SQLite library to "
                              "hook")
    raise CApiUnavailable(f"no loaded C extension module implements {module.__name__}.Connection (a pure-Python "
                          "or embedded build): there is no SQLite library to hook")


def library_address(module: ModuleType) -> int:
    """The address of ``sqlite3_vfs_register`` in the SQLite library behind DB-API ``module``: the same
    number for two modules that share one library (a build linked against the system's ``libsqlite3``),
    different for builds carrying their own copy. Raises :class:`CApiUnavailable` when it cannot be read."""
    extension = extension_of(module)
    try:
        handle = ctypes.CDLL(str(extension.__file__))
        return int(ctypes.cast(handle.sqlite3_vfs_register, c_void_p).value or 0)
    except (OSError, AttributeError) as exc:
        raise CApiUnavailable(f"{extension.__file__} does not export the SQLite C API (statically linked with "
                              f"hidden symbols?): {exc}") from exc


class SqliteLib:
    """The handful of C functions of the SQLite library behind DB-API ``module`` (default: the stdlib's)."""

    def __init__(self, module: ModuleType = sqlite3) -> None:
        extension = extension_of(module)
        origin = str(extension.__file__)
        #: the C extension file the library is reached through
        self.origin = origin
        try:
            handle = ctypes.CDLL(origin)
            self.vfs_find = handle.sqlite3_vfs_find
            self.vfs_register = handle.sqlite3_vfs_register
            self.vfs_unregister = handle.sqlite3_vfs_unregister
            libversion = handle.sqlite3_libversion
        except (OSError, AttributeError) as exc:
            raise CApiUnavailable(
                f"{origin} does not export the SQLite C API (statically linked with hidden symbols?): {exc}"
            ) from exc
        self.vfs_find.restype = c_void_p
        self.vfs_find.argtypes = [c_char_p]
        self.vfs_register.restype = c_int
        self.vfs_register.argtypes = [c_void_p, c_int]
        self.vfs_unregister.restype = c_int
        self.vfs_unregister.argtypes = [c_void_p]
        libversion.restype = c_char_p
        version = libversion().decode()
        if version != module.sqlite_version:
            raise CApiUnavailable(
                f"the SQLite library found through {extension.__name__} is {version} but {module.__name__} "
                f"reports {module.sqlite_version}: not the same library instance"
            )
        self.version = version
        # SQLite's own allocator: portable, and the memory is never handed back.
        self._malloc = handle.sqlite3_malloc64
        self._malloc.restype = c_void_p
        self._malloc.argtypes = [ctypes.c_uint64]

    def alloc(self, struct_type: type[_S]) -> _S:
        """A zeroed ``struct_type`` in memory that is never freed (SQLite may point to it for ever)."""
        size = ctypes.sizeof(struct_type)
        address = self._malloc(size)
        if not address:
            raise MemoryError(f"malloc({size}) failed for {struct_type.__name__}")
        ctypes.memset(address, 0, size)
        return struct_type.from_address(address)

    def alloc_string(self, text: bytes) -> int:
        """A NUL-terminated copy of ``text`` that is never freed; returns its address."""
        address = self._malloc(len(text) + 1)
        if not address:
            raise MemoryError("malloc failed for a VFS name")
        ctypes.memmove(address, text + b"\0", len(text) + 1)
        return address


def file_methods(file_ptr: int) -> int:
    """The ``pMethods`` pointer of a ``sqlite3_file`` (its first member), 0 when unopened."""
    return c_void_p.from_address(file_ptr).value or 0


def set_file_methods(file_ptr: int, methods: int) -> None:
    """Point a ``sqlite3_file`` at another method table."""
    c_void_p.from_address(file_ptr).value = methods
