"""What to fail: a :class:`FailRule` says which files, which operation, when, and with which error.

Rules are plain values checked by the shim on every I/O call it sees::

    FailRule(ops={"write"}, path="app.db", kinds={"journal"}, nth=3, error="disk_full")

fails the third write to ``app.db-journal`` with ``SQLITE_FULL``, once (``persistent=False``) or
for every matching write from then on (``persistent=True``). Error kinds return SQLite result
codes directly, never an errno, so nothing here can make SQLite retry for ever (EINTR does).
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field

from . import _capi as c
from .errors import VfsUsageError

#: Every operation the shim counts, in the order of ``sqlite3_io_methods``.
OPS: tuple[str, ...] = ("read", "write", "truncate", "sync", "size", "lock", "unlock", "check_lock")
#: Kinds of file, from the flags SQLite opens them with.
KINDS: tuple[str, ...] = tuple(kind for _, kind in c.OPEN_KINDS) + ("other",)

# The code each error kind returns, per operation. "io_error" is the op's own SQLITE_IOERR_*.
_IO_ERROR_CODES = {
    "read": c.SQLITE_IOERR_READ,
    "write": c.SQLITE_IOERR_WRITE,
    "truncate": c.SQLITE_IOERR_TRUNCATE,
    "sync": c.SQLITE_IOERR_FSYNC,
    "size": c.SQLITE_IOERR_FSTAT,
    "lock": c.SQLITE_IOERR_LOCK,
    "unlock": c.SQLITE_IOERR_UNLOCK,
    "check_lock": c.SQLITE_IOERR_CHECKRESERVEDLOCK,
}
#: Error kinds a rule may inject, with what each models.
ERRORS: dict[str, str] = {
    "io_error": "the operation's own SQLITE_IOERR_* code (EIO / EBADF from the OS)",
    "corrupt_fs": "SQLITE_IOERR_CORRUPTFS, what the unix VFS answers when pread() gets EIO",
    "disk_full": "SQLITE_FULL, what the unix VFS answers when write() gets ENOSPC",
    "read_only": "SQLITE_READONLY (a file system remounted read-only)",
    "short_read": "reads only half the bytes asked, zero-fills the rest, SQLITE_IOERR_SHORT_READ",
    "busy": "SQLITE_BUSY from a lock call (another process holds the lock)",
}


def error_code(error: str, op: str) -> int:
    """The SQLite result code the shim returns for ``error`` injected into ``op``."""
    if error == "io_error":
        return _IO_ERROR_CODES[op]
    if error == "corrupt_fs":
        return c.SQLITE_IOERR_CORRUPTFS
    if error == "disk_full":
        return c.SQLITE_FULL
    if error == "read_only":
        return c.SQLITE_READONLY
    if error == "short_read":
        return c.SQLITE_IOERR_SHORT_READ
    if error == "busy":
        return c.SQLITE_BUSY
    raise VfsUsageError(f"unknown error kind {error!r}; known: {', '.join(ERRORS)}")


def family_paths(path: str | os.PathLike[str]) -> frozenset[str]:
    """A database path and the journal / WAL paths SQLite derives from it, made absolute."""
    base = os.path.realpath(os.fspath(path))
    return frozenset({base, base + "-journal", base + "-wal"})


@dataclass(eq=False)
class FailRule:
    """Fail matching I/O calls: the ``nth`` one, or each with a seeded ``probability``.

    :param ops: operations to fail (subset of :data:`OPS`).
    :param error: error kind (a key of :data:`ERRORS`).
    :param path: a database path; matches it and its ``-journal`` / ``-wal``. None matches every file.
    :param kinds: file kinds to match (subset of :data:`KINDS`); None matches every kind.
    :param nth: fail the Nth matching call (1-based, counted from when the rule is added).
    :param probability: instead of ``nth``, fail each matching call with this probability.
    :param seed: seed for ``probability``, so a failing run can be replayed.
    :param persistent: once a call failed, fail every later matching call too.
    """

    ops: frozenset[str]
    error: str = "io_error"
    path: str | None = None
    kinds: frozenset[str] | None = None
    nth: int | None = 1
    probability: float | None = None
    seed: int | None = None
    persistent: bool = False
    calls: int = field(default=0, init=False)
    failures: int = field(default=0, init=False)
    tripped: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.ops = frozenset([self.ops] if isinstance(self.ops, str) else self.ops)
        unknown = self.ops - set(OPS)
        if not self.ops or unknown:
            raise VfsUsageError(f"FailRule ops {sorted(unknown) or '(empty)'} not in {', '.join(OPS)}")
        if self.error not in ERRORS:
            raise VfsUsageError(f"FailRule error {self.error!r} unknown; known: {', '.join(ERRORS)}")
        if self.error == "short_read" and self.ops != {"read"}:
            raise VfsUsageError("FailRule error 'short_read' only applies to ops={'read'}")
        if self.error == "busy" and not self.ops <= {"lock", "check_lock"}:
            raise VfsUsageError("FailRule error 'busy' only applies to lock operations")
        if self.kinds is not None:
            self.kinds = frozenset([self.kinds] if isinstance(self.kinds, str) else self.kinds)
            if self.kinds - set(KINDS):
                raise VfsUsageError(f"FailRule kinds {sorted(self.kinds - set(KINDS))} not in {KINDS}")
        if self.probability is not None:
            if not 0.0 <= self.probability <= 1.0:
                raise VfsUsageError(f"FailRule probability {self.probability} must be within [0, 1]")
            self.nth = None
        elif self.nth is None or self.nth < 1:
            raise VfsUsageError(f"FailRule nth={self.nth!r} must be an int >= 1 (or give a probability)")
        self._paths = family_paths(self.path) if self.path is not None else None
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def matches(self, op: str, path: str | None, kind: str) -> bool:
        """Whether this rule applies to ``op`` on a file of ``kind`` at ``path``."""
        if op not in self.ops:
            return False
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self._paths is None or path in self._paths

    def decide(self) -> bool:
        """Count one matching call and say whether it fails (thread-safe)."""
        with self._lock:
            self.calls += 1
            if self.tripped and self.persistent:
                fail = True
            elif self.nth is not None:
                fail = self.calls == self.nth
            else:
                fail = self._rng.random() < (self.probability or 0.0)
            if fail:
                self.tripped = True
                self.failures += 1
            return fail
