"""Chaos mode: real SQLite faults injected into every connection an existing test suite opens.

:class:`ChaosInjector` replaces ``connect`` of every SQLite DB-API module that can be imported (the
stdlib's ``sqlite3``, ``pysqlite3.dbapi2``, ``sqlean``; only while installed) so that each new
connection is a subclass of the one asked for whose statements sometimes meet a real fault, drawn
from a generator per thread seeded by the run seed, the test id and the thread's creation order.
Each fault is produced for real at the moment it is drawn and gone right after, with no sleeping
and no waiting for timeouts. A fault is only drawn where it can apply (the statement that takes
the write lock, a COMMIT that writes...), and only an injection whose error the application saw
is counted.

Transient contention (the default, level ``contention``):

========================  =================================================================================
``locked``                ``BEGIN IMMEDIATE``/``EXCLUSIVE``, or the first write of a transaction (an implicit
                          BEGIN included): a second real connection holds the write lock and the victim's
                          ``busy_timeout`` is cut to 0 for that one statement: 5/SQLITE_BUSY, as for a lock
                          held past the application's own timeout, without the wait
``busy_commit``           rollback journal, COMMIT of a transaction that wrote: a second connection holds a
                          SHARED read lock across it (timeout cut to 0): 5/SQLITE_BUSY, the transaction
                          *stays open*
``busy_snapshot``         WAL, the first write of a transaction that has read: another connection commits
                          first, so the write gets 517/SQLITE_BUSY_SNAPSHOT (only a rollback and rerun helps)
========================  =================================================================================

Hard faults (opt-in, level ``hard``; ``all`` is both):

========================  =================================================================================
``io_error``              VFS shim: the next write I/O on the database's files fails once (SQLITE_IOERR_WRITE)
``disk_full``             VFS shim: the next write I/O finds the disk full once (SQLITE_FULL)
``closed``                the connection is closed before the statement (ProgrammingError)
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
import importlib
import importlib.util
import itertools
import random
import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._chaos_kinds import (  # re-exported: the names and their parsing need neither sqlite3 nor the faults
    CHAOS_KINDS,
    CONTENTION,
    DEFAULT_KINDS,
    DEFAULT_RATE,
    HARD,
    LEVELS,
    ChaosUsageError,
    describe_kinds,
    parse_kinds,
    parse_rate,
)
from .faults.base import Fault, FaultError
from .faults.registry import make_fault
from .faults.target import path_module

__all__ = ["CHAOS_KINDS", "CONTENTION", "DEFAULT_KINDS", "DEFAULT_RATE", "HARD", "LEVELS", "ChaosInjector",
           "ChaosUsageError", "Injection", "blamed_injection", "describe_kinds", "parse_kinds", "parse_rate"]

_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|UPSERT|WITH\b.*\b(INSERT|UPDATE|DELETE))\b",
                    re.IGNORECASE | re.DOTALL)
_COMMIT = re.compile(r"\s*(COMMIT|END)\b", re.IGNORECASE)
_BEGIN_WRITE = re.compile(r"\s*BEGIN\s+(IMMEDIATE|EXCLUSIVE)\b", re.IGNORECASE)
_NOT_A_READ = re.compile(r"\s*(BEGIN|SAVEPOINT|RELEASE|ROLLBACK)\b", re.IGNORECASE)
_GENERATIONS = itertools.count(1)
#: Attribute set on an exception a chaos fault raised: the :class:`Injection` (see :func:`blamed_injection`).
TAG = "_dbfault_chaos_injection"
#: The SQLite DB-API modules whose ``connect`` chaos wraps, each where it can be imported: the stdlib's and the
#: builds an application may use instead (each carries its own copy of SQLite). A package that re-exports
#: the same ``connect`` (``pysqlite3`` for ``pysqlite3.dbapi2``, ``sqlite3.dbapi2``) is wrapped with it.
DBAPI_MODULES = ("sqlite3", "pysqlite3.dbapi2", "sqlean")
#: Top-level packages of SQLite DB-API modules: one imported but not wrapped is named in the notes.
_SQLITE_PACKAGES = frozenset({"sqlite3", "pysqlite3", "pysqlite2", "sqlean"})


@dataclass
class Injection:
    """One fault chaos produced: where, on which statement, in which thread, and what the application saw."""

    kind: str
    sql: str
    database: str
    #: The error the statement raised (``"OperationalError: database is locked (SQLITE_BUSY)"``), or
    #: ``None`` when SQLite reported nothing (the fault had no effect; such injections are not counted).
    error: str | None = None
    #: ``main`` for the test's own thread, ``thread-<n>`` for the n-th thread the test started.
    thread: str = "main"

    def describe(self) -> str:
        """``busy_commit at 'COMMIT' on /tmp/x.db -> OperationalError: ...``."""
        told = f" -> {self.error}" if self.error else " (no error surfaced)"
        return f"{self.kind} at {self.sql!r} on {self.database}{told}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return {"kind": self.kind, "sql": self.sql, "database": self.database, "error": self.error,
                "thread": self.thread}


def blamed_injection(exc: BaseException | None) -> Injection | None:
    """The chaos injection whose error ``exc`` is, or was caused by (``__cause__``/``__context__``,
    exception groups included); ``None`` when no injected error is in its chain."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found = getattr(current, TAG, None)
        if isinstance(found, Injection):
            return found
        todo.extend([current.__cause__, current.__context__, *getattr(current, "exceptions", ())])
    return None


class ChaosInjector:
    """Seeded injector of real SQLite faults into connections made by ``connect`` of the SQLite DB-API
    modules that can be imported (:data:`DBAPI_MODULES`: ``sqlite3``, ``pysqlite3.dbapi2``, ``sqlean``).

    :param seed: the run seed; each thread of a test draws from its own generator,
        ``Random(f"dbfault-chaos:{seed}:{test id}")`` for the thread that called :meth:`begin` and
        ``...:{test id}:thread-<n>`` for the n-th thread started during the test, so a test meets the
        same faults whatever ran before it and however its threads interleave.
    :param rate: probability that an eligible statement meets a fault.
    :param kinds: chaos kinds to draw from (see :data:`CHAOS_KINDS`); ``io_error`` and ``disk_full``
        are dropped, with :attr:`notes` saying why, where the VFS shim cannot be registered; they reach
        only connections of the build the VFS faults act on (``DBFAULT_SQLITE_MODULE``, default ``sqlite3``).
    :param modules: the DB-API module names to wrap (default :data:`DBAPI_MODULES`; those that cannot be
        imported are skipped). :attr:`wrapped` lists the ones wrapped, :attr:`connections` counts, per
        module, the connections made through them while installed.
    """

    def __init__(self, seed: int, rate: float = DEFAULT_RATE, kinds: Iterable[str] = DEFAULT_KINDS,
                 modules: Iterable[str] = DBAPI_MODULES) -> None:
        self.seed = seed
        self.modules = tuple(modules)
        #: Names of the DB-API modules whose ``connect`` is wrapped (while installed).
        self.wrapped: list[str] = []
        #: Module name -> connections made through its wrapped ``connect`` (tooling's own not counted).
        self.connections: dict[str, int] = {}
        self.rate = parse_rate(rate, "rate")
        self.kinds = parse_kinds(",".join(kinds), "kinds")
        self.notes: list[str] = []
        #: Per kind, faults drawn and arranged whose statement raised nothing (not counted as injections).
        self.without_effect: dict[str, int] = {}
        #: The last injection whose error the application saw, in any thread (for the hang watchdog).
        self.last_injection: Injection | None = None
        self._lock = threading.RLock()
        self._active = False
        self._test_id = ""
        self._generation = 0
        self._test_thread: threading.Thread | None = None
        self._threads_started = 0
        self._injections: list[Injection] = []
        self._installed = False
        self._patched: list[tuple[ModuleType, Any]] = []
        self._wrapped_modules: dict[str, ModuleType] = {}
        self._real_start: Any = None
        self._shim: Any = None
        self._shim_connection: type | None = None  # the Connection class of the build the shim is in
        self._classes: dict[tuple[type, str], type] = {}
        self._inside = threading.local()

    # -- install / uninstall ---------------------------------------------------------------------
    def install(self) -> ChaosInjector:
        """Replace ``connect`` of each DB-API module of :attr:`modules` that can be imported (and register the
        VFS shim, for hard I/O faults) until :meth:`uninstall`."""
        if self._installed:
            return self
        self._installed = True
        self.wrapped, self._wrapped_modules, self.connections = [], {}, {}
        if {"io_error", "disk_full"} & set(self.kinds):
            self._install_shim()
        for name in self.modules:
            module = _import_if_present(name)
            if module is not None and not any(module.connect is real for _m, real in self._patched):
                self._wrap(name, module)
        others = [n for n, m in self._wrapped_modules.items() if m.Connection is not self._shim_connection]
        if others and self._shim is not None:
            self.notes.append(f"io_error and disk_full reach only connections of {path_module().__name__} (the "
                              f"build the VFS faults act on: DBFAULT_SQLITE_MODULE), not those of "
                              f"{', '.join(others)}")
        # Threads are numbered in the order the test starts them: that order, not the scheduler's
        # interleaving, picks each thread's generator.
        self._real_start = real_start = threading.Thread.start

        def start(thread: threading.Thread) -> None:
            if self._active:
                with self._lock:
                    self._threads_started += 1
                    thread._dbfault_chaos_order = (self._generation, self._threads_started)  # type: ignore[attr-defined]
            real_start(thread)

        threading.Thread.start = start  # type: ignore[method-assign]
        return self

    def _wrap(self, name: str, module: ModuleType) -> None:
        """Replace ``module.connect`` (and the same function where its package or ``.dbapi2`` re-exports it)."""
        real = module.connect
        counts = self.connections

        def connect(*args: Any, **kwargs: Any) -> Any:
            if _from_tooling(sys._getframe(1)):
                return real(*args, **kwargs)
            kwargs["factory"] = self._chaos_class(kwargs.get("factory", module.Connection), module)
            conn = real(*args, **kwargs)
            counts[name] = counts.get(name, 0) + 1
            return conn

        connect.__doc__ = real.__doc__
        connect.__wrapped__ = real  # type: ignore[attr-defined]
        family = [module, sys.modules.get(f"{module.__name__}.dbapi2"),
                  sys.modules.get(module.__name__.rpartition(".")[0])]
        for holder in family:
            if holder is not None and getattr(holder, "connect", None) is real:
                self._patched.append((holder, real))
                holder.connect = connect  # type: ignore[attr-defined]
        self.wrapped.append(name)
        self._wrapped_modules[name] = module
        counts.setdefault(name, 0)

    def uninstall(self) -> None:
        """Put every wrapped ``connect`` back; connections already made stop injecting.

        :attr:`notes` then names a SQLite DB-API module imported but not wrapped (its connections met no chaos).
        """
        if not self._installed:
            return
        self._installed = False
        for holder, real in reversed(self._patched):
            holder.connect = real  # type: ignore[attr-defined]
        self._patched = []
        threading.Thread.start = self._real_start  # type: ignore[method-assign]
        self._real_start = None
        self._active = False
        if self._shim is not None:
            self._shim.uninstall()
            self._shim = None
        self.notes.extend(self._reach_notes())

    def _reach_notes(self) -> list[str]:
        """A SQLite DB-API module imported but not wrapped: chaos did not reach its connections (say so,
        never claim coverage it did not have). Connections made through the wrapped ones: :attr:`connections`."""
        wrapped = {module.Connection for module in self._wrapped_modules.values()}
        unwrapped = sorted(name for name, module in list(sys.modules.items())
                           if name.partition(".")[0] in _SQLITE_PACKAGES and module is not None
                           and callable(getattr(module, "connect", None))
                           and isinstance(getattr(module, "Connection", None), type)
                           and module.Connection not in wrapped)
        if not unwrapped:
            return []
        return [f"{', '.join(unwrapped)} imported but its connect not wrapped: connections made through it met "
                f"no chaos"]

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
        """Start injecting for ``test_id``; the calling thread is the test's main thread."""
        with self._lock:
            # Unique across injectors too: a thread's cached generator must never outlive its test.
            self._generation = next(_GENERATIONS)
            self._test_id = test_id
            self._test_thread = threading.current_thread()
            self._threads_started = 0
            self._injections = []
            self.last_injection = None
            self._active = True

    def end(self) -> list[Injection]:
        """Stop injecting; the injections made since :meth:`begin` whose error the application saw."""
        with self._lock:
            self._active = False
            done, self._injections = self._injections, []
        return [i for i in done if i.error is not None]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No injection inside the block."""
        with self._lock:
            active, self._active = self._active, False
        try:
            yield
        finally:
            with self._lock:
                self._active = active

    # -- the injection itself ------------------------------------------------------------------
    def _stream(self) -> tuple[random.Random, str]:
        """This thread's generator for the current test, and the thread's name in reports."""
        thread = threading.current_thread()
        cached = getattr(thread, "_dbfault_chaos_stream", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1], cached[2]
        order = getattr(thread, "_dbfault_chaos_order", None)
        if thread is self._test_thread:
            label, key = "main", ""
        elif order is not None and order[0] == self._generation:
            label = key = f"thread-{order[1]}"
        else:  # started before the test (a pool kept across tests): its name is what is stable
            label = key = f"thread:{thread.name}"
        rng = random.Random(f"dbfault-chaos:{self.seed}:{self._test_id}" + (f":{key}" if key else ""))
        thread._dbfault_chaos_stream = (self._generation, rng, label)  # type: ignore[attr-defined]
        return rng, label

    def _draw(self, conn: Any, statement: str) -> tuple[str, str] | None:
        """A kind that can apply to ``statement`` on ``conn`` now (and the thread label), or None."""
        if not self._active or getattr(self._inside, "busy", False):
            return None
        rng, label = self._stream()
        if rng.random() >= self.rate:
            return None
        self._inside.busy = True
        try:
            eligible = [k for k in _eligible(conn, statement) if k in self.kinds
                        and (k not in ("io_error", "disk_full") or isinstance(conn, self._shim_connection or ()))]
        finally:
            self._inside.busy = False
        return (rng.choice(eligible), label) if eligible else None

    def call(self, conn: Any, sql: str, statement: str, run: Any, *args: Any) -> Any:
        """``run(*args)`` (the statement), with a drawn fault (if any) in force for it.

        A plain call, not a context manager: a failing statement's traceback then holds no frame of
        ours (``__tracebackhide__``), which keeps pytest's report readable and cheap to format.
        """
        __tracebackhide__ = True
        drawn = self._draw(conn, statement)
        if drawn is None:
            return run(*args)
        kind, thread = drawn
        undo = contextlib.ExitStack()
        self._inside.busy = True  # our own helper connections must not meet chaos
        try:
            database = conn._dbf_db
            if not _arrange(kind, conn, database, undo, self):
                self._inside.busy = False
                return run(*args)  # the state changed under us (another process took the lock): run clean
            injection = Injection(kind, " ".join(sql.split())[:120], database, thread=thread)
            with self._lock:
                self._injections.append(injection)
            self._inside.busy = False
            try:
                result = run(*args)
            except conn._dbf_errors as exc:
                injection.error = _error_text(exc)
                self.last_injection = injection
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(exc, TAG, injection)
                raise
            with self._lock:
                self.without_effect[kind] = self.without_effect.get(kind, 0) + 1
            return result
        finally:
            self._inside.busy = True
            try:
                undo.close()
            finally:
                self._inside.busy = False

    def _heal_quietly(self, fault: Fault) -> None:
        # Healing runs the lifecycle listeners too: nothing they do may meet chaos.
        self._inside.busy = True
        try:
            fault.heal()
        finally:
            self._inside.busy = False

    def _chaos_class(self, base: type, module: ModuleType) -> type:
        with self._lock:
            cls = self._classes.get((base, module.__name__))
            if cls is None:
                cls = self._classes[(base, module.__name__)] = _make_connection_class(base, self, module)
            return cls

    def _install_shim(self) -> None:
        # The build the VFS faults act on (DBFAULT_SQLITE_MODULE, default sqlite3): io kinds reach its connections.
        try:
            from .vfs import get_shim, vfs_available

            module = path_module()
        except (ImportError, FaultError) as exc:  # dbfault: no fault (no VFS package, or a bad DBFAULT_SQLITE_MODULE)
            ok, reason = False, str(exc)
        else:
            ok, reason = vfs_available(module)
        if ok:
            try:
                self._shim = get_shim(module).install()
                self._shim_connection = module.Connection
                return
            except Exception as exc:  # VfsUnavailable at registration
                reason = str(exc)
        dropped = [k for k in self.kinds if k in ("io_error", "disk_full")]
        self.kinds = tuple(k for k in self.kinds if k not in dropped)
        self.notes.append(f"{', '.join(dropped)} left out: the VFS shim cannot be registered here ({reason})")


def _import_if_present(name: str) -> ModuleType | None:
    """The DB-API module ``name`` when it is installed and imports, else None (never an error: optional)."""
    try:
        if importlib.util.find_spec(name.partition(".")[0]) is None:
            return None
        module = importlib.import_module(name)
    except ImportError:  # dbfault: no fault (an optional SQLite build that is not installed, or broken)
        return None
    return module if callable(getattr(module, "connect", None)) and isinstance(
        getattr(module, "Connection", None), type) else None


#: Callers whose connections are tooling, not the application under test: coverage keeps its
#: data in SQLite (a fault there would break the measurement, not test the application), and
#: dbfault's own helper connections arrange the faults.
_TOOLING = ("coverage.", "pytest_dbfault.", "_pytest.", "pytest_cov.", "xdist.")


def _from_tooling(frame: Any) -> bool:
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return name.startswith(_TOOLING)


# -- where each fault can apply ------------------------------------------------------------------
def _eligible(conn: Any, statement: str) -> list[str]:
    """The kinds that can make ``statement`` fail on ``conn`` in its current state.

    Contention only where SQLite takes a lock: ``BEGIN IMMEDIATE``/``EXCLUSIVE`` and a write while
    the connection does not hold the write lock yet (``locked``; in WAL after a read,
    ``busy_snapshot``); a COMMIT that writes, rollback journal only (``busy_commit``: in WAL the
    writer already holds every lock COMMIT needs). I/O faults where the statement writes to a file.
    """
    if conn._dbf_db is None:
        conn._dbf_db = _database_of(conn) or ""
    if not conn._dbf_db:
        return []  # in-memory and temporary databases: no other connection can contend for them
    kinds = ["closed"]
    if statement == "begin_write":
        if not conn.in_transaction:
            kinds.append("locked")
        return kinds
    wal = _journal_mode(conn) == "wal"
    if statement == "write":
        if not conn._dbf_writer:
            kinds.append("locked")
            if wal and conn.in_transaction and conn._dbf_read:
                kinds.append("busy_snapshot")
        if not wal or conn.isolation_level is None and not conn.in_transaction:
            kinds += ["io_error", "disk_full"]  # a rollback journal is written at once; autocommit commits
    elif statement == "commit" and conn._dbf_writer:
        if not wal:
            kinds.append("busy_commit")
        kinds += ["io_error", "disk_full"]
    return kinds


def _journal_mode(conn: Any) -> str:
    try:
        return str(conn._dbf_plain("PRAGMA journal_mode").fetchone()[0]).lower()
    except conn._dbf_module.Error:
        return ""


# -- arranging each fault for real ---------------------------------------------------------------
#: The registered fault each chaos kind is, and its parameters for one statement: helper connections with no
#: wait (``timeout=0``: a lock someone else already holds means "cannot apply now"), any database the
#: application opens (chaos breaks the application's own files, wherever they are; ``allow_unsafe``).
_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "locked": ("locked", {"mode": "write", "acquire_timeout": 0, "allow_unsafe": True}),
    "busy_commit": ("busy_commit", {"timeout": 0, "allow_unsafe": True}),
    # The application handles its own transaction: the fault's heal must not roll it back.
    "busy_snapshot": ("busy_snapshot", {"timeout": 0, "rollback_on_heal": False}),
    "io_error": ("io_error", {"ops": "write", "nth": 1}),
    "disk_full": ("enospc", {"nth": 1, "persistent": False}),  # one write finds the disk full, not a full disk
    "closed": ("disconnect_close", {}),
}


def _arrange(kind: str, conn: Any, database: str, undo: contextlib.ExitStack, chaos: ChaosInjector) -> bool:
    """Inject fault ``kind`` against ``conn`` for its next statement, made by the fault registry and healed by
    ``undo``; False when it cannot apply now.

    The fault is labelled ``chaos_<kind>`` (coverage contexts keep it until the test ends: the application's
    handler runs after the transient fault is gone) and not counted in the stats: chaos counts only the
    injections whose error the application saw, in its own report.
    """
    name, params = _FAULTS[kind]
    if name in ("io_error", "enospc") and chaos._shim is None:
        return False
    try:
        # The connection itself where the fault needs it, or where its helper connections must be of the
        # victim's own build (two SQLite libraries in one process do not see each other's locks); the
        # path for the VFS faults (they reach only the shim's build: see _draw).
        on_conn = kind in ("busy_snapshot", "closed") or kind in CONTENTION and conn._dbf_module is not sqlite3
        fault = make_fault(name, conn if on_conn else database, kind=f"chaos_{kind}", **params)
        fault.label_lingers = True
        fault.inject()  # still busy: lifecycle subscribers (coverage contexts) may write SQLite of their own
    except (FaultError, sqlite3.Error, conn._dbf_module.Error):
        return False  # someone else holds the lock already (another process): nothing to add
    undo.callback(chaos._heal_quietly, fault)
    if kind in CONTENTION:
        # As for a lock held past the application's own busy timeout, without the wait.
        timeout = conn._dbf_plain("PRAGMA busy_timeout").fetchone()[0]
        conn._dbf_plain("PRAGMA busy_timeout = 0")
        undo.callback(_restore_timeout, conn, int(timeout))
    return True


def _restore_timeout(conn: Any, timeout: int) -> None:
    with contextlib.suppress(conn._dbf_module.ProgrammingError):  # closed by the application meanwhile
        conn._dbf_plain(f"PRAGMA busy_timeout = {timeout}")


def _database_of(conn: Any) -> str | None:
    try:
        for _seq, name, file in conn._dbf_plain("PRAGMA database_list"):
            if name == "main":
                return file or None  # "" for in-memory and temporary databases
    except conn._dbf_module.Error:
        return None
    return None


def _error_text(exc: BaseException) -> str:
    from reliability.errors import error_name  # here: a suite without chaos failures never imports the runtime

    name = error_name(exc)  # Python 3.10 gives no code name: the primary one, read from SQLite's message
    return f"{type(exc).__name__}: {exc}" + (f" ({name})" if name else "")


def _statement(sql: Any) -> str | None:
    """``write``, ``commit``, ``begin_write`` (BEGIN IMMEDIATE/EXCLUSIVE), ``rollback`` or None."""
    if not isinstance(sql, str):
        return None
    if _WRITE.match(sql):
        return "write"
    if _COMMIT.match(sql):
        return "commit"
    if _BEGIN_WRITE.match(sql):
        return "begin_write"
    return None


def _make_connection_class(base: type, chaos: ChaosInjector, module: ModuleType = sqlite3) -> type:
    """A subclass of ``base`` (``module.Connection`` or the application's factory) that meets chaos.

    ``module``: the DB-API module that makes the connection (``sqlite3``, ``pysqlite3.dbapi2``...): its
    cursor class, its errors.
    """

    class ChaosCursor(module.Cursor):  # type: ignore[name-defined,misc]
        # Bookkeeping (does the connection hold the write lock, has it read) runs between tests too:
        # a connection made by a session fixture carries its transaction into the test.
        def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
            __tracebackhide__ = True
            return self.connection._dbf_run(sql, super().execute, sql, parameters)

        def executemany(self, sql: str, seq: Any, /) -> Any:  # type: ignore[override]
            __tracebackhide__ = True
            return self.connection._dbf_run(sql, super().executemany, sql, seq)

    class ChaosConnection(base):  # type: ignore[valid-type,misc]
        _dbf_db: str | None = None  # main database file ("" in memory), read once
        _dbf_writer = False  # holds (or may hold) the write lock in the current transaction
        _dbf_read = False  # has read in the current transaction (WAL: its snapshot can go stale)
        _dbf_module = module
        _dbf_errors = (module.Error, module.Warning)

        def cursor(self, factory: Any = ChaosCursor) -> Any:
            # An application's own cursor class is left alone (its statements meet no chaos).
            return super().cursor(factory)

        # The C implementations of these do not go through a Python-level cursor(): route them.
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            __tracebackhide__ = True
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, seq: Any, /) -> Any:
            __tracebackhide__ = True
            return self.cursor().executemany(sql, seq)

        def _dbf_plain(self, sql: str) -> Any:
            """A statement of dbfault's own (PRAGMA probes): no chaos, no bookkeeping."""
            return super().cursor(module.Cursor).execute(sql)

        def _dbf_run(self, sql: Any, run: Any, *args: Any) -> Any:
            __tracebackhide__ = True
            if getattr(chaos._inside, "busy", False):
                return run(*args)  # dbfault's own statement (a fault reading the file's path): not the application's
            if not self.in_transaction:
                self._dbf_writer = self._dbf_read = False
            statement = _statement(sql)
            if statement is None or not chaos._active or statement == "begin_write" and self.in_transaction:
                result = run(*args)
            else:
                result = chaos.call(self, sql, statement, run, *args)
            if self.in_transaction:
                if statement in ("write", "begin_write"):
                    self._dbf_writer = True
                elif statement is None and not _NOT_A_READ.match(sql):
                    self._dbf_read = True
            return result

        def commit(self) -> None:
            __tracebackhide__ = True
            if not self.in_transaction or not chaos._active:
                return super().commit()
            return chaos.call(self, "COMMIT", "commit", super().commit)

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
            __tracebackhide__ = True
            # ``with conn:`` commits in C, bypassing commit() above.
            if exc_type is not None or not self.in_transaction or not chaos._active:
                return super().__exit__(exc_type, exc, tb)
            return chaos.call(self, "COMMIT", "commit", super().__exit__, exc_type, exc, tb)

    ChaosConnection.__name__ = ChaosConnection.__qualname__ = f"Chaos{base.__name__}"
    return ChaosConnection
