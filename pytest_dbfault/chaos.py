"""Chaos mode: transient, real SQLite faults injected into every connection an existing test suite opens.

:class:`ChaosInjector` replaces ``sqlite3.connect`` (only while installed) so that each new
connection is a subclass of the one asked for whose statements and commits sometimes meet a real
transient fault, drawn from a generator seeded by the run seed and the test id. Only the faults
SQLite does *not* wait out are used, each produced for real at the moment it is drawn and gone
right after, so a run stays as fast as without chaos (no sleeping, no waiting for timeouts):

========================  =================================================================================
``locked``                before a write, a second real connection takes the write lock (``BEGIN IMMEDIATE``)
                          and the victim's ``busy_timeout`` is cut to 0 for that one statement: the same
                          5/SQLITE_BUSY as a lock held past the application's own timeout, without the wait
``busy_commit``           rollback journal: a second connection holds a SHARED read lock across the
                          victim's COMMIT (timeout cut to 0): 5/SQLITE_BUSY, the transaction *stays open*
``busy_snapshot``         WAL, victim inside a read transaction: another connection commits first, so the
                          victim's write gets 517/SQLITE_BUSY_SNAPSHOT (only a rollback and rerun helps)
``io_error``              VFS shim (where available): the next write I/O on the database's files fails
                          once: SQLITE_IOERR_WRITE (at COMMIT the transaction is rolled back)
``closed``                opt-in: the connection is closed before the statement (ProgrammingError)
========================  =================================================================================

Without pytest::

    chaos = ChaosInjector(seed=7, rate=0.1)
    with chaos.installed():
        chaos.begin("my-run")
        run_the_application()
        for injection in chaos.end():
            print(injection.kind, injection.sql, injection.error)
"""

from __future__ import annotations

import contextlib
import random
import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ._chaos_kinds import CHAOS_KINDS, DEFAULT_KINDS, DEFAULT_RATE  # re-exported
from .faults.base import Fault

_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|UPSERT)\b", re.IGNORECASE)
_COMMIT = re.compile(r"\s*(COMMIT|END)\b", re.IGNORECASE)
#: Which kinds can meet each kind of statement.
_ELIGIBLE = {
    "write": ("locked", "busy_snapshot", "io_error", "closed"),
    "commit": ("busy_commit", "io_error", "closed"),
}


class ChaosUsageError(ValueError):
    """A chaos setting was given a value it cannot take."""


def parse_rate(raw: Any, where: str = "--dbfault-chaos-rate") -> float:
    """A probability in ``(0, 1]`` (``"0.05"`` or ``"5%"``)."""
    text = str(raw).strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ChaosUsageError(f"{where}: invalid value {raw!r}; expected a probability such as 0.05 or 5%"
                              ) from None
    if not 0 < rate <= 1:
        raise ChaosUsageError(f"{where}: invalid value {raw!r}; expected a probability above 0 and at most 1")
    return rate


def parse_kinds(raw: str | None, where: str = "--dbfault-chaos-faults") -> tuple[str, ...]:
    """``"locked, busy_commit"`` → the tuple; ``None`` or ``"default"`` → :data:`DEFAULT_KINDS`.

    ``"all"`` gives every kind of :data:`CHAOS_KINDS`; an unknown name raises :class:`ChaosUsageError`.
    """
    if raw is None or raw.strip() in ("", "default"):
        return DEFAULT_KINDS
    if raw.strip() == "all":
        return tuple(CHAOS_KINDS)
    names = tuple(dict.fromkeys(n for n in re.split(r"[,\s]+", raw) if n))
    for name in names:
        if name not in CHAOS_KINDS:
            raise ChaosUsageError(f"{where}: unknown chaos fault {name!r}; known: all, default, "
                                  f"{', '.join(CHAOS_KINDS)}")
    return names


class ChaosFault(Fault):
    """One chaos injection, for the fault lifecycle (``--dbfault-coverage`` labels) and reports.

    Active only for the one statement it is injected around; ``name`` is ``chaos_<kind>``.
    """

    name: ClassVar[str] = "chaos"

    def _inject(self) -> None:
        """The injector produces the fault itself; this object only marks when it is in force."""


_FAULT_CLASSES: dict[str, type[ChaosFault]] = {
    kind: type(f"Chaos_{kind}", (ChaosFault,), {"name": f"chaos_{kind}", "__doc__": CHAOS_KINDS[kind]})
    for kind in CHAOS_KINDS
}


@dataclass
class Injection:
    """One fault chaos produced: where, on which statement, and what the application was told."""

    kind: str
    sql: str
    database: str
    #: The error the statement raised (``"OperationalError: database is locked (SQLITE_BUSY)"``), or
    #: ``None`` when the application's code absorbed it below the statement (never saw it).
    error: str | None = None

    def describe(self) -> str:
        """``busy_commit at 'COMMIT' on /tmp/x.db -> OperationalError: ...``."""
        told = f" -> {self.error}" if self.error else " (no error surfaced)"
        return f"{self.kind} at {self.sql!r} on {self.database}{told}"


class ChaosInjector:
    """Seeded injector of transient faults into connections made by ``sqlite3.connect``.

    :param seed: the run seed; each test draws from ``Random(f"dbfault-chaos:{seed}:{test id}")``,
        so a test meets the same faults whatever ran before it.
    :param rate: probability that an eligible statement (a write, or a COMMIT with a transaction
        open) meets a fault.
    :param kinds: chaos kinds to draw from (see :data:`CHAOS_KINDS`); ``io_error`` is dropped, with
        :attr:`notes` saying why, where the VFS shim cannot be registered.
    """

    def __init__(self, seed: int, rate: float = DEFAULT_RATE, kinds: Iterable[str] = DEFAULT_KINDS) -> None:
        self.seed = seed
        self.rate = parse_rate(rate, "rate")
        self.kinds = parse_kinds(",".join(kinds), "kinds")
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self._rng: random.Random | None = None
        self._injections: list[Injection] = []
        self._real_connect: Any = None
        self._shim: Any = None
        self._classes: dict[type, type] = {}
        self._inside = threading.local()

    # -- install / uninstall ---------------------------------------------------------------------
    def install(self) -> ChaosInjector:
        """Replace ``sqlite3.connect`` (and the VFS shim, for ``io_error``) until :meth:`uninstall`."""
        if self._real_connect is not None:
            return self
        if "io_error" in self.kinds:
            self._install_shim()
        self._real_connect = sqlite3.connect
        real = self._real_connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            if _from_tooling(sys._getframe(1)):
                return real(*args, **kwargs)
            kwargs["factory"] = self._chaos_class(kwargs.get("factory", sqlite3.Connection))
            return real(*args, **kwargs)

        connect.__doc__ = real.__doc__
        connect.__wrapped__ = real  # type: ignore[attr-defined]
        sqlite3.connect = connect  # type: ignore[assignment]
        sqlite3.dbapi2.connect = connect  # type: ignore[attr-defined]
        return self

    def uninstall(self) -> None:
        """Put ``sqlite3.connect`` back; connections already made stop injecting."""
        if self._real_connect is None:
            return
        sqlite3.connect = self._real_connect
        sqlite3.dbapi2.connect = self._real_connect  # type: ignore[attr-defined]
        self._real_connect = None
        self._rng = None
        if self._shim is not None:
            self._shim.uninstall()
            self._shim = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[ChaosInjector]:
        """``with chaos.installed(): ...``."""
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    # -- per test --------------------------------------------------------------------------------
    def begin(self, test_id: str) -> None:
        """Start injecting, with the generator of ``test_id``."""
        with self._lock:
            self._rng = random.Random(f"dbfault-chaos:{self.seed}:{test_id}")
            self._injections = []

    def end(self) -> list[Injection]:
        """Stop injecting; the injections made since :meth:`begin`."""
        with self._lock:
            self._rng = None
            done, self._injections = self._injections, []
        return done

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No injection inside the block (the clean rerun of a test that failed under chaos)."""
        with self._lock:
            rng, self._rng = self._rng, None
        try:
            yield
        finally:
            with self._lock:
                self._rng = rng

    # -- the injection itself ------------------------------------------------------------------
    def _draw(self, statement: str) -> str | None:
        if self._rng is None or getattr(self._inside, "busy", False):
            return None
        with self._lock:
            rng = self._rng
            if rng is None or rng.random() >= self.rate:
                return None
            eligible = [k for k in _ELIGIBLE[statement] if k in self.kinds]
            return rng.choice(eligible) if eligible else None

    @contextlib.contextmanager
    def around(self, conn: sqlite3.Connection, sql: str, statement: str) -> Iterator[None]:
        """Inject a drawn fault (if any) for the one statement run inside the block."""
        kind = self._draw(statement)
        if kind is None:
            yield
            return
        self._inside.busy = True  # our own helper connections must not meet chaos
        try:
            with contextlib.ExitStack() as undo:
                database = _database_of(conn)
                if database is None or not _arrange(kind, conn, database, undo, self):
                    self._inside.busy = False
                    yield  # not applicable here (in-memory db, lock already ours...): run clean
                    return
                injection = Injection(kind, " ".join(sql.split())[:120], database)
                fault = _FAULT_CLASSES[kind](database=database, sql=injection.sql)
                # Coverage labels (--dbfault-coverage) keep this kind until the test ends: the
                # application's handler runs after the transient fault is already gone.
                fault.label_lingers = True  # type: ignore[attr-defined]
                with self._lock:
                    self._injections.append(injection)
                # Still busy: lifecycle listeners (coverage contexts) may write SQLite of their own.
                fault.inject()
                undo.callback(self._heal_quietly, fault)
                self._inside.busy = False
                try:
                    yield
                except (sqlite3.Error, sqlite3.Warning) as exc:
                    injection.error = _error_text(exc)
                    raise
        finally:
            self._inside.busy = False

    def _heal_quietly(self, fault: Fault) -> None:
        # Healing runs the lifecycle listeners too: nothing they do may meet chaos.
        self._inside.busy = True
        try:
            fault.heal()
        finally:
            self._inside.busy = False

    def _chaos_class(self, base: type) -> type:
        with self._lock:
            cls = self._classes.get(base)
            if cls is None:
                cls = self._classes[base] = _make_connection_class(base, self)
            return cls

    def _install_shim(self) -> None:
        try:
            from .vfs import get_shim, vfs_available
        except ImportError as exc:  # pragma: no cover - the VFS package ships with dbfault
            ok, reason = False, str(exc)
        else:
            ok, reason = vfs_available()
        if ok:
            try:
                self._shim = get_shim().install()
                return
            except Exception as exc:  # VfsUnavailable at registration
                reason = str(exc)
        self.kinds = tuple(k for k in self.kinds if k != "io_error")
        self.notes.append(f"io_error left out: the VFS shim cannot be registered here ({reason})")


#: Callers whose connections are tooling, not the application under test: coverage keeps its
#: data in SQLite (a fault there would break the measurement, not test the application), and
#: dbfault's own helper connections arrange the faults.
_TOOLING = ("coverage.", "pytest_dbfault.", "_pytest.", "pytest_cov.", "xdist.")


def _from_tooling(frame: Any) -> bool:
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return name.startswith(_TOOLING)


# -- arranging each fault for real ---------------------------------------------------------------
def _arrange(kind: str, conn: sqlite3.Connection, database: str, undo: contextlib.ExitStack,
             chaos: ChaosInjector) -> bool:
    """Set up fault ``kind`` against ``conn`` for its next statement; False when it cannot apply."""
    real_connect = chaos._real_connect or sqlite3.connect
    if kind == "closed":
        conn.close()
        return True
    if kind == "io_error":
        from .vfs import FailRule

        if chaos._shim is None:
            return False
        rule = chaos._shim.add_rule(FailRule(ops={"write"}, error="io_error", path=database, nth=1))
        undo.callback(chaos._shim.remove_rule, rule)
        return True
    wal = conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    if kind == "busy_commit" and (wal or not conn.in_transaction):
        return False
    if kind == "busy_snapshot" and (not wal or not conn.in_transaction):
        return False
    other = real_connect(database, timeout=0, isolation_level=None, check_same_thread=False)
    undo.callback(other.close)
    try:
        if kind == "busy_commit":
            other.execute("BEGIN")
            other.execute("SELECT count(*) FROM sqlite_master").fetchone()  # SHARED lock, kept
            undo.callback(other.rollback)
        elif kind == "busy_snapshot":
            # A commit that changes nothing visible: rewriting user_version with its own value still
            # appends a WAL frame, which is enough to make the victim's snapshot stale.
            other.execute("BEGIN IMMEDIATE")
            version = other.execute("PRAGMA user_version").fetchone()[0]
            other.execute(f"PRAGMA user_version = {int(version)}")
            other.execute("COMMIT")
        else:  # locked
            other.execute("BEGIN IMMEDIATE")
            undo.callback(other.rollback)
    except sqlite3.Error:
        return False  # the victim holds the lock itself (or the file is not a database): cannot apply
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    undo.callback(_restore_timeout, conn, int(timeout))
    return True


def _restore_timeout(conn: sqlite3.Connection, timeout: int) -> None:
    with contextlib.suppress(sqlite3.ProgrammingError):  # closed by the application meanwhile
        conn.execute(f"PRAGMA busy_timeout = {timeout}")


def _database_of(conn: sqlite3.Connection) -> str | None:
    try:
        for _seq, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return file or None  # "" for in-memory and temporary databases
    except sqlite3.Error:
        return None
    return None


def _error_text(exc: BaseException) -> str:
    from reliability.errors import error_name  # here: a suite without chaos failures never imports the runtime

    name = error_name(exc)  # Python 3.10 gives no code name: the primary one, read from SQLite's message
    return f"{type(exc).__name__}: {exc}" + (f" ({name})" if name else "")


def _statement(sql: Any) -> str | None:
    if not isinstance(sql, str):
        return None
    if _WRITE.match(sql):
        return "write"
    if _COMMIT.match(sql):
        return "commit"
    return None


def _make_connection_class(base: type, chaos: ChaosInjector) -> type:
    """A subclass of ``base`` (``sqlite3.Connection`` or the application's factory) that meets chaos."""

    class ChaosCursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
            kind = _statement(sql)
            if kind is None or chaos._rng is None:
                return super().execute(sql, parameters)
            with chaos.around(self.connection, sql, kind):
                return super().execute(sql, parameters)

        def executemany(self, sql: str, seq: Any, /) -> Any:  # type: ignore[override]
            kind = _statement(sql)
            if kind is None or chaos._rng is None:
                return super().executemany(sql, seq)
            with chaos.around(self.connection, sql, kind):
                return super().executemany(sql, seq)

    class ChaosConnection(base):  # type: ignore[valid-type,misc]
        def cursor(self, factory: Any = ChaosCursor) -> Any:
            # An application's own cursor class is left alone (its statements meet no chaos).
            return super().cursor(factory)

        # The C implementations of these do not go through a Python-level cursor(): route them.
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, seq: Any, /) -> Any:
            return self.cursor().executemany(sql, seq)

        def commit(self) -> None:
            if not self.in_transaction or chaos._rng is None:
                return super().commit()
            with chaos.around(self, "COMMIT", "commit"):
                return super().commit()

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
            # ``with conn:`` commits in C, bypassing commit() above.
            if exc_type is not None or not self.in_transaction or chaos._rng is None:
                return super().__exit__(exc_type, exc, tb)
            with chaos.around(self, "COMMIT", "commit"):
                return super().__exit__(exc_type, exc, tb)

    ChaosConnection.__name__ = ChaosConnection.__qualname__ = f"Chaos{base.__name__}"
    return ChaosConnection
