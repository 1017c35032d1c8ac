"""Health metrics collected cheaply on every operation, and the typed health report.

The hot path only bumps dict counters and appends a latency to a bounded ring;
percentiles are computed when someone asks for a report.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.request import pathname2url

from . import files
from .connection import wal_damage
from .damage_mark import DamageMarker
from .errors import Action, DatabaseError, ErrorKind, classify, decide, sqlite_errors
from .retry import RetryExhausted, RetryPolicy

T = TypeVar("T")

_log = logging.getLogger("reliability.health")


class HealthStatus(str, enum.Enum):
    """Overall state of the database as the runtime sees it."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class HealthReport:
    """What ``db.health()`` returns: a status, the reasons for it, and the counters."""

    status: HealthStatus
    reasons: tuple[str, ...]
    connection_state: str
    operations: dict[str, int]
    errors: dict[str, int]
    retries: int
    reconnects: int
    latency_ms: dict[str, float]
    last_error: str | None
    wal_size: int | None
    last_backup_at: float | None = None
    last_integrity_check_at: float | None = None
    integrity_ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True when the status is healthy."""
        return self.status is HealthStatus.HEALTHY

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "status": str(self.status),
            "reasons": list(self.reasons),
            "connection_state": self.connection_state,
            "operations": dict(self.operations),
            "errors": dict(self.errors),
            "retries": self.retries,
            "reconnects": self.reconnects,
            "latency_ms": dict(self.latency_ms),
            "last_error": self.last_error,
            "wal_size": self.wal_size,
            "last_backup_at": self.last_backup_at,
            "last_integrity_check_at": self.last_integrity_check_at,
            "integrity_ok": self.integrity_ok,
            **self.extra,
        }


class HealthMonitor:
    """Counters of operations by type, errors by kind, retries; a ring of recent latencies."""

    def __init__(self, latency_samples: int = 2048) -> None:
        # A defaultdict so the hot path counts with one ``operations[op] += 1`` (DatabaseManager
        # does that inline rather than calling observe(): a call is a measurable share of a read).
        self.operations: defaultdict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = {}
        self.retries = 0
        self.latencies: deque[float] = deque(maxlen=latency_samples)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_backup_at: float | None = None
        self.last_integrity_check_at: float | None = None
        self.integrity_ok: bool | None = None
        #: Problems found by the last integrity check ([] when it passed).
        self.integrity_problems: list[str] = []
        #: Why the damage marker (``<db>.damaged``, shared with the other processes) could not be written or
        #: removed at the last verdict, or None (see :mod:`reliability.durability.verdict`).
        self.damage_mark_error: str | None = None
        #: The last backup's failure (None after a success).
        self.last_backup_error: str | None = None
        #: ``RecoveryReport.to_dict()`` of the last recovery, or None.
        self.last_recovery: dict[str, Any] | None = None
        self.recoveries = 0

    def count_retry(self, attempt: int, delay: float, exc: BaseException) -> None:
        """A :class:`~reliability.retry.RetryPolicy` listener: the runtime is about to sleep before a retry."""
        self.retries += 1
    def observe(self, op: str, seconds: float) -> None:
        """Count one finished operation of type ``op`` that took ``seconds``."""
        self.operations[op] += 1
        self.latencies.append(seconds)

    def observe_error(self, kind: str, message: str) -> None:
        """Count one surfaced error of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = f"{kind}: {message}"
        self.last_error_at = time.time()

    def latency_percentiles(self) -> dict[str, float]:
        """p50/p95/p99 of recent operation latencies, in milliseconds."""
        samples = sorted(self.latencies)
        if not samples:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
        n = len(samples)

        def pct(p: float) -> float:
            return round(samples[min(n - 1, int(p * n))] * 1000.0, 4)

        return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99)}

    def reset(self) -> None:
        """Forget every counter."""
        self.__init__(self.latencies.maxlen or 2048)  # type: ignore[misc]


def wal_size(db_path: str) -> int | None:
    """Size in bytes of the database's ``-wal`` file, or None when there is none."""
    return files.file_size(db_path + "-wal")


# -- integrity checks --------------------------------------------------------------------------
@dataclass(frozen=True)
class IntegrityReport:
    """The result of ``db.check_integrity()``: ok, every problem found, which check, how long it took."""

    ok: bool
    problems: list[str]
    kind: str  # "quick" | "full"
    duration: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "problems": list(self.problems), "kind": self.kind,
                "duration": round(self.duration, 6)}


def integrity_problems(check_rows: Iterable[Any], foreign_key_rows: Iterable[Any]) -> list[str]:
    """The problems in the rows of ``PRAGMA quick_check``/``integrity_check`` and ``PRAGMA foreign_key_check``."""
    problems: list[str] = []
    for (row,) in check_rows:
        if row != "ok":
            problems += [ln for ln in str(row).splitlines() if ln and not ln.startswith("*** in database")]
    for table, rowid, parent, _fk in foreign_key_rows:
        problems.append(f"foreign key violation: {table} rowid {rowid} references missing {parent} row")
    return problems


def cut_off_problems(db_path: str, page_size: int) -> list[str]:
    """A problem when the database file ends inside a page (its size is no whole number of ``page_size`` pages).

    SQLite only ever writes, extends and truncates the main file by whole pages, so a partial last page means
    the file's end was cut off (a truncation, a copy that stopped short) or bytes were appended to it. No PRAGMA
    sees it: SQLite counts the partial page as a page and reads its missing bytes as zeros (a short read is
    zero-filled), so quick_check and integrity_check pass while the rows stored there read as zeros
    (recovery_fuzz seed 1024: a file truncated to 90% kept a row whose 3000-byte value lost its last 2868
    bytes, and ``reliability recover`` said "nothing to recover"). A cut at a page boundary is left to SQLite:
    the header's page count then exceeds the file and SQLite reports the file malformed.
    """
    size = files.file_size(db_path)
    if size is None:
        return []  # (no file at the path: the check's own read reports it)
    if page_size > 0 and size % page_size:
        # Cut off, or stray bytes appended: telling them apart needs the header's page count, and reading the
        # header with a plain open() would drop this process's POSIX locks on the file (closing any descriptor
        # does); SQLite's page_count mixes in the -wal's pages. So the message names both, not a guess.
        return [f"the database file ends inside a page: {size} bytes is no whole number of {page_size}-byte pages "
                f"(its end was cut off, or stray bytes were appended after its last page: SQLite never writes "
                f"part of a page, and reads a missing part as zeros)"]
    return []


def confirmed_problems(check: Callable[[], list[str]], what: str,
                       fresh: Callable[[], None] | None = None) -> list[str]:
    """What ``check()`` finds again on a second, fresh read (``fresh()`` first drops a connection it reuses).

    A one-off bad read (a short read comes back zero-filled) looks exactly like damage on disk, and a
    transient error is never a verdict: damage is what a second, fresh read finds again. Every integrity
    check (the runtime's and the read-only inspection's) decides by this rule.
    """
    problems = check()
    if problems:
        if fresh is not None:
            fresh()
        again = check()
        if not again:
            _log.warning("%s failed once and passed on a fresh read (a transient read error, not damage): %s",
                         what, "; ".join(problems[:3]))
        problems = again
    return problems


def check_integrity(db_path: str, *, full: bool = False, timeout: float = 5.0,
                    max_problems: int = 100, module: Any = sqlite3,
                    policy: RetryPolicy | None = None) -> IntegrityReport:
    """``PRAGMA quick_check`` (``integrity_check`` when ``full``) plus ``foreign_key_check`` on ``db_path``.

    Runs on its own read-only connection: in WAL mode it never blocks writers, in rollback
    mode it holds a shared lock only while it reads. A file SQLite refuses to read at all
    (``file is not a database``, ``malformed``) is reported as a problem, not raised.

    A lock (busy, locked) or a one-off I/O error is no integrity result: the check is rerun under
    ``policy`` (see :func:`run_maintenance`); a lock that outlasts it raises :class:`DatabaseError`
    and the report, which would be a verdict, is never made. An I/O error that persists through
    every retry means the file cannot be read, and that is reported. Problems are a verdict only when a
    second check on a fresh connection finds them again (a one-off short read looks like damage).
    """
    kind = "full" if full else "quick"
    pragma = "integrity_check" if full else "quick_check"
    t0 = time.perf_counter()

    def once() -> list[str]:
        problems: list[str] = []
        conn = None
        try:
            # ``module``: the runtime's own SQLite library. A second library in the same process would
            # not see its POSIX locks, and closing its file would drop them.
            conn = module.connect(f"file:{pathname2url(os.path.abspath(db_path))}?mode=ro", uri=True,
                                  timeout=timeout, isolation_level=None)
            rows = conn.execute(f"PRAGMA {pragma}").fetchall()
            problems = integrity_problems(rows, conn.execute("PRAGMA foreign_key_check"))
            problems += file_problems(db_path, conn.execute("PRAGMA page_size").fetchone()[0])
        except sqlite_errors() as exc:  # the runtime's own module's errors, whichever build it is
            if retryable_in_maintenance(exc):
                raise
            problems.append(f"{pragma} could not read the database: {exc} ({classify(exc)})")
        finally:
            if conn is not None:
                conn.close()
        return problems

    def checked() -> list[str]:
        try:
            return run_maintenance(once, policy, f"the {pragma} of {db_path!r}")
        except DatabaseError as err:
            if not persistent_ioerr(err):
                raise
            return [f"{pragma} could not read the database: {err.detail} (ioerr)"]

    problems = confirmed_problems(checked, f"the {pragma} of {db_path}")
    if len(problems) > max_problems:
        problems = problems[:max_problems] + [f"... and {len(problems) - max_problems} more"]
    return IntegrityReport(not problems, problems, kind, time.perf_counter() - t0)


#: How every problem that a checkpoint can hide begins (a damaged ``-wal`` frame, or a sticky damage mark
#: about one): a verdict with such a problem writes a sticky mark (:func:`may_hide`).
WAL_DAMAGE = "damaged -wal: "


def wal_problems(db_path: str | os.PathLike[str]) -> list[str]:
    """The damage in the committed frames of the ``-wal`` beside ``db_path`` (none, or one problem).

    ``quick_check`` reads a damaged frame through a WAL index kept by an open connection without noticing
    (SQLite checks frame checksums only when it rebuilds the index), and the damaged page passes it (see
    :func:`~reliability.connection.wal_damage`).
    """
    damage = wal_damage(db_path)
    return [] if damage is None else [WAL_DAMAGE + damage]


def sticky_mark_problems(db_path: str | os.PathLike[str]) -> list[str]:
    """The sticky damage mark on the file at ``db_path`` as a problem (none, or one).

    A damaged ``-wal`` frame that SQLite checkpointed is in the database where no check can see it; the
    sticky mark written when it was found (by a check, or by a manager's close) is the only witness left,
    so every check reports it until a recovery installs another file. A mark about another file (one put
    at the path since) is not this file's problem.
    """
    mark = DamageMarker(db_path).read()
    if mark is None or not mark.sticky or (mark.file is not None and mark.file != files.file_identity(db_path)):
        return []
    return [f"{WAL_DAMAGE}{mark.describe()}; a checkpoint may have copied the damaged page into the database, "
            "where it passes every check, so only a recovery (`reliability recover`: the newest verified backup "
            "and the redo journals) clears this mark"]


def may_hide(problems: Iterable[str]) -> bool:
    """True when ``problems`` hold damage a checkpoint can hide (see :data:`WAL_DAMAGE`)."""
    return any(p.startswith(WAL_DAMAGE) for p in problems)


def file_problems(db_path: str, page_size: int) -> list[str]:
    """What no PRAGMA sees in the database's files, part of every integrity check (the runtime's and the
    read-only :class:`~reliability.inspection.Inspector`'s): a main file cut inside a page
    (:func:`cut_off_problems`), a damaged committed ``-wal`` frame (:func:`wal_problems`) and the sticky
    damage mark such a frame left after a checkpoint copied it in (:func:`sticky_mark_problems`)."""
    return cut_off_problems(db_path, page_size) + wal_problems(db_path) + sticky_mark_problems(db_path)


# -- transient errors in maintenance -------------------------------------------------------------
def retryable_in_maintenance(exc: BaseException) -> bool:
    """True for an error that says nothing about a file's integrity and may pass: a lock (busy,
    locked) or an I/O error that may be one-off. Checks, backup verification and backups retry these."""
    return decide(exc, maintenance=True) is Action.RETRY


def persistent_ioerr(err: DatabaseError) -> bool:
    """An I/O error that ``run_maintenance`` met on two attempts or more: the file cannot be read (a verdict).

    One attempt (``retry_attempts=1``) cannot tell a one-off error from a persistent one, so it is no verdict.
    """
    return err.kind is ErrorKind.IOERR and err.attempts >= 2


def run_maintenance(fn: Callable[[], T], policy: RetryPolicy | None, what: str) -> T:
    """``fn()`` rerun under the shared retry policy while it fails with a transient error.

    When the errors outlast the policy (or no policy is given), the last one is raised as a
    :class:`DatabaseError` of its own kind saying that ``what`` could not run: the caller reports
    it as an error, never as a verdict about the file. Other errors propagate unchanged.
    """
    if policy is None:
        policy = RetryPolicy(attempts=1)
    try:
        return policy.call(fn, should_retry=retryable_in_maintenance)
    except RetryExhausted as exc:
        last = exc.last
        kind = classify(last)
        detail = (f"{what} could not run after {exc.attempts} attempt(s) in {exc.elapsed:.3f}s: {last}; "
                  "this is no verdict on the file")
        raise DatabaseError(kind, detail, attempts=exc.attempts) from last
