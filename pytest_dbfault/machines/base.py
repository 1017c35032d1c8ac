"""The harness every property machine shares: a fresh database, fake time, log capture, faults, checks.

Each example gets its own temporary directory and a runtime built by ``runtime_factory``
from a fast :class:`~reliability.ReliabilityConfig`. Retry sleeps go to a fake clock, so
a retry loop costs no wall time and every delay is recorded for the properties that
judge backoff (P1, P15). Faults are real (:mod:`pytest_dbfault.faults`); they are drawn
by Hypothesis as rule arguments, with "no fault" first so shrinking removes them.

A property check is :meth:`RuntimeMachine.check`: it counts the check in
:data:`pytest_dbfault.stats.STATS` under the faults in force, and on failure records a
violation and raises ``AssertionError`` naming the property.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from ..faults.base import Fault, FaultError
from ..faults.registry import fault_names, make_fault, unknown_name_message, variant_names
from ..hang import rearm as rearm_watchdog
from ..runtime_config import FAST_TEST_SETTINGS
from ..stats import STATS, property_id
from .model import Model

#: ``runtime_factory(config) -> DatabaseManager``-like object.
RuntimeFactory = Callable[[Any], Any]

#: Settings of every machine's runtime: the tests' fast settings, with no busy wait at all, and retries
#: long enough for a fault healed mid-call to be seen.
FAST_SETTINGS: dict[str, Any] = {
    **FAST_TEST_SETTINGS,
    "busy_timeout_ms": 0,
    "retry_attempts": 4,
    "retry_base_delay": 0.01,
    "retry_max_delay": 0.08,
    "retry_budget": 5.0,
    "synchronous": "NORMAL",
}

KV_TABLE = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"
#: The index SQLite makes for kv's primary key (what an ``index_entry`` fault changes).
KV_INDEX = "sqlite_autoindex_kv_1"
PAIRS_TABLE = ("CREATE TABLE IF NOT EXISTS pairs (grp INTEGER NOT NULL, leg INTEGER NOT NULL, "
               "amount INTEGER NOT NULL, note TEXT, PRIMARY KEY (grp, leg))")

#: Faults a rule can draw; "none" first so Hypothesis shrinks toward no fault.
FAULT_KINDS = ("none", "locked", "disk_full", "disconnect_close", "disconnect_rename", "disconnect_delete")
# The registry's first use imports every fault module: do it now, before any example runs. Loaded in the
# middle of a run it made the derandomized search of a bite test (p05, schema) miss its planted bug.
fault_names()

#: The configuration drawn per example (issue #14, item 3): the first value of each is what
#: Hypothesis shrinks to. Budgets small enough to bind (0.05 s against delays up to 0.08 s) are
#: in, so "stop before the budget is exceeded" is exercised, not only "stop after N attempts".
CONFIG_SPACE: dict[str, tuple[Any, ...]] = {
    "retry_attempts": (4, 1, 2, 3, 5),
    # Rollback-journal modes too (readers and writers block each other there, COMMIT needs EXCLUSIVE);
    # the data-loss machine pins WAL, whose hazards its rules are.
    "journal_mode": ("WAL", "DELETE", "TRUNCATE"),
    "synchronous": ("NORMAL", "FULL", "EXTRA"),
    "redo_journal": (True, False),
    "backup_keep": (3, 1, 2, 4),
    "retry_base_delay": (0.01, 0.02),
    "retry_max_delay": (0.08, 0.04),
    "retry_budget": (5.0, 0.05, 0.12),
}


#: Swarm testing (Groce et al., ISSTA 2012): each example enables a random subset of these rule
#: groups and fault kinds, so some examples hammer a few features (deep sequences of one kind)
#: instead of every example spreading thin over all of them. Shrinking removes groups.
SWARM_GROUPS = ("transfer", "nested", "heal_mid_call", "commands", "outage", "audit", "backup",
                "recover", "migrate", "schema_damage", "reload", "integrity", "power_loss", "restart")
#: Rule groups held out of the default swarm (none now); ``DBFAULT_SWARM_EXTRA=a,b`` enables them.
HELD_GROUPS: tuple[str, ...] = ()


def swarm_strategy() -> st.SearchStrategy[frozenset[str]]:
    """The enabled rule groups and fault kinds of one example (at least one fault kind)."""
    kinds = [k for k in FAULT_KINDS if k != "none"]
    extra = [g for g in os.environ.get("DBFAULT_SWARM_EXTRA", "").split(",") if g in HELD_GROUPS]
    return st.builds(lambda groups, faults: frozenset(groups) | frozenset(f"fault:{k}" for k in faults),
                     st.sets(st.sampled_from(SWARM_GROUPS + tuple(extra))),
                     st.sets(st.sampled_from(kinds), min_size=1))


def swarm(group: str) -> Callable[[Any], bool]:
    """Precondition: the rule group ``group`` is enabled in this example."""
    return lambda self: group in self.enabled


def config_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """One runtime configuration per example, drawn from :data:`CONFIG_SPACE`."""
    return st.fixed_dictionaries({k: st.sampled_from(v) for k, v in CONFIG_SPACE.items()})

_fakers: dict[str, Any] = {}
#: Locales of the generated text (so unicode, umlauts and CJK reach the database and the logs).
LOCALES = ("en_US", "de_DE", "ja_JP")
#: How many values of each kind the pool holds per locale (see :func:`pooled`).
POOL_SIZE = 97
#: Faker providers pooled per locale; ``text()`` joins a name and a sentence.
POOLED = ("name", "sentence", "first_name", "user_name", "slug", "word")
_pool: dict[tuple[str, str], tuple[str, ...]] = {}


def shared_fakers() -> dict[str, Any]:
    """One single-locale Faker per locale per process (building one is slow); reseeded per example.

    Single-locale instances because a multi-locale Faker picks the locale with the global
    ``random`` module, which Hypothesis does not control.
    """
    if not _fakers:
        from faker import Faker

        for locale in LOCALES:
            _fakers[locale] = Faker(locale)
    return _fakers


def pooled(locale: str, provider: str) -> tuple[str, ...]:
    """:data:`POOL_SIZE` Faker values of ``provider`` in ``locale``, made on first use, once per process.

    The machines pick from these with the example's Hypothesis-seeded random (one draw per value)
    instead of calling Faker in the example: Faker driven by Hypothesis' random made a Hypothesis draw
    for each of its many internal choices (about 5 ms per ``text()``, the largest harness cost in a
    profile, and long choice sequences for the shrinker) for no more variety of *kinds* of text. Made
    lazily (a machine that writes no text pays nothing) from a fixed seed, with the example's random
    put back on the shared instance afterwards (the pool never consumes Hypothesis' draws).
    """
    key = (locale, provider)
    if key not in _pool:
        fake = shared_fakers()[locale]
        saved = fake.random
        try:
            # (Not seed_instance(): it reseeds the random in place, which here is an example's Hypothesis random.)
            fake.random = random.Random(f"{locale}:{provider}")
            _pool[key] = tuple(str(getattr(fake, provider)()) for _ in range(POOL_SIZE))
        finally:
            fake.random = saved
    return _pool[key]


def default_runtime_factory() -> RuntimeFactory:
    """``reliability.DatabaseManager`` (imported lazily: the plugin stays cheap when inert)."""
    from reliability import DatabaseManager

    return DatabaseManager


class FakeTime:
    """A clock that only moves when the runtime sleeps; every sleep is recorded.

    ``on_sleep`` callbacks run after each sleep with the number of sleeps so far, which lets a
    rule heal a fault "after the k-th retry" deterministically instead of on a timer.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: list[Callable[[int], None]] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for fn in list(self.on_sleep):
            fn(len(self.sleeps))


class LogCapture(logging.Handler):
    """Keeps every record of the ``reliability`` loggers emitted during one example."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class RuntimeMachine(RuleBasedStateMachine):
    """Base of every property machine (rules for the workload live in the mixins)."""

    #: How the runtime under test is built; None means ``reliability.DatabaseManager``.
    runtime_factory: ClassVar[RuntimeFactory | None] = None
    #: Parent directory of the per-example directories (None: the system temp dir).
    base_dir: ClassVar[str | None] = None
    #: Extra config settings of this machine.
    settings_overrides: ClassVar[dict[str, Any]] = {}
    #: Properties whose violations fail the run (None: all). Others are still counted and recorded.
    enforce: ClassVar[frozenset[int] | None] = None
    #: Fault kinds this machine's ``inject_fault`` rule may draw.
    fault_kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS

    def check_invariants(self, *args: Any, **kwargs: Any) -> None:
        """Hypothesis calls this after the start and after every step: the next step's clock starts here
        (:mod:`pytest_dbfault.hang`: a step that never returns is reported where it hangs, not waited for)."""
        rearm_watchdog()
        super().check_invariants(*args, **kwargs)  # type: ignore[misc]

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="dbfault-machine-", dir=self.base_dir)
        self.db_path = os.path.join(self.dir, "app.db")
        self.time = FakeTime()
        #: every retry delay the policy computed: (failed attempt, delay)
        self.delays: list[tuple[int, float]] = []
        self.logs = LogCapture()
        self._logger = logging.getLogger("reliability")
        self._logger.addHandler(self.logs)
        self.model = Model()
        self.faults: dict[str, Fault] = {}
        self.fault_history: list[str] = []
        #: the kind of the fault healed last (checks made with no fault in force are "after:<kind>")
        self.last_healed: str | None = None
        self.rng = random.Random(0)
        self.fakers = shared_fakers()
        self.fake = self.fakers["en_US"]
        self.db: Any = None
        #: runtimes left behind by a kill-style restart (their handles are closed at teardown)
        self.abandoned: list[Any] = []
        self.config: Any = None
        self.steps = 0
        import time as _time

        #: wall-clock start of the example (the bound of any latency the runtime can report)
        self.started = _time.perf_counter()

    # -- the runtime -----------------------------------------------------------------------
    #: the configuration drawn for this example (see :data:`CONFIG_SPACE`)
    drawn: dict[str, Any] = {}

    def make_config(self, **overrides: Any) -> Any:
        from reliability import ReliabilityConfig

        # The SQLite build under test (tox cells: sqlean, pysqlite3), as the runtime's own from_env reads it.
        module = {"sqlite_module": os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"}
        return ReliabilityConfig(db_path=self.db_path, **{**FAST_SETTINGS, **module, **self.drawn,
                                                          **self.settings_overrides, **overrides})

    def open_runtime(self, config: Any | None = None, **runtime_kwargs: Any) -> Any:
        """Build the runtime with the class's factory and route its retry sleeps to the fake clock.

        ``runtime_kwargs`` go to the factory as they are (``migrations=``: the runtime validates them at startup)."""
        factory = type(self).runtime_factory or default_runtime_factory()
        self.config = config or self.make_config()
        db = factory(self.config, **runtime_kwargs)
        policy = getattr(db, "policy", None)
        if policy is not None:
            policy.sleep = self.time.sleep
            policy.clock = self.time.clock
            policy.rng = random.Random(self.rng.getrandbits(32))
            self.watch_policy(policy)
        return db

    def watch_policy(self, policy: Any) -> None:
        """Observe (not replace) the policy's delay computation: which attempt each sleep followed (P1, P15)."""
        compute = type(policy).delay.__get__(policy)

        def delay(attempt: int) -> float:
            d = compute(attempt)
            self.delays.append((attempt, d))
            return d

        policy.delay = delay

    #: rule groups always on in this machine (its own properties); the others are swarmed
    core_groups: ClassVar[frozenset[str]] = frozenset()
    #: the swarm of this example: enabled rule groups and ``fault:<kind>`` entries
    enabled: frozenset[str] = frozenset(SWARM_GROUPS) | frozenset(f"fault:{k}" for k in FAULT_KINDS)

    @initialize(rnd=st.randoms(use_true_random=False), drawn=config_strategy(), enabled=swarm_strategy())
    def start(self, rnd: random.Random, drawn: dict[str, Any], enabled: frozenset[str]) -> None:
        """Seed Faker and the machine from Hypothesis, draw the configuration and the swarm, open the runtime."""
        self.rng = rnd
        self.drawn = dict(drawn)
        own = [k for k in self.fault_kinds if k != "none"]
        if not any(f"fault:{k}" in enabled for k in own):
            enabled |= {f"fault:{k}" for k in own}  # the subset missed this machine's kinds: keep them all
        self.enabled = enabled | self.core_groups
        for fake in self.fakers.values():
            fake.random = rnd
        self.db = self.open_runtime()
        self.db.execute(KV_TABLE)
        self.db.execute(PAIRS_TABLE)
        self.start_power_loss_model()
        self.after_start()

    def after_start(self) -> None:
        """Hook for machines that need more setup."""

    #: the power-loss model of the runtime's own files (None: off, e.g. not Linux)
    powerloss: Any = None

    def start_power_loss_model(self) -> None:
        """Observe fsyncs of the runtime's own files from now on (see :mod:`.powerloss`)."""
        from .powerloss import PowerLossModel, supported

        if not supported() or "power_loss" not in self.enabled:
            return
        # The backup directory too, when it lives in the example's directory (the default beside the db).
        # (Once switched off: a py310 CI-profile run found a rotated backup back after a power loss holding
        # another file's bytes. The model's fault, now fixed: it knew files by inode number, and rotation's
        # Path.unlink bypassed its hook on Python 3.10, so a new file on the freed number looked like the old
        # one; see the module docstring of .powerloss and test_powerloss.py.)
        backups = os.path.relpath(str(self.config.backup_directory), self.dir)
        self.powerloss = PowerLossModel(self.dir, subdirs=() if backups.startswith("..") else (backups,))
        self._powerloss_cm = self.powerloss.observing()
        self._powerloss_cm.__enter__()

    def simulate_power_loss(self, before_restart: Callable[[], None] | None = None) -> dict[str, str]:
        """Lose power now: the runtime stops (its later writes are discarded), the runtime's own files
        go back to what was made durable, and a new runtime starts. Returns what was lost.

        ``before_restart`` runs when the files are as the power loss left them, before the new runtime
        touches them (it may take and rotate backups of its own)."""
        lost = self.powerloss.lost()
        view = self.powerloss.durable_view()
        # Closed while the faults are still in force: a dead machine does no work, so close() must not get
        # to move queued commands or fallback entries into the database first (that would hide a lost
        # fsync); whatever close() writes to the runtime's own files is discarded below.
        try:
            self.db.close()
        finally:
            self.heal_all()
        self.powerloss.apply(view)
        if before_restart is not None:
            before_restart()
        self.fault_history.append("power_loss")
        STATS.record_fault("power_loss")
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        self.last_healed = "power_loss"
        return lost

    def reopen(self) -> None:
        """Close the runtime and build a new one on the same file (a restart)."""
        self.heal_all()
        self.db.close()
        self.db = self.open_runtime(self.config)
        self.after_reopen()

    def after_reopen(self) -> None:
        """Hook: a restart resets the runtime's counters."""

    def run_with_the_application_stopped(
            self, argv: list[str], number: int, stopped: Callable[[], None] | None = None,
            done: Callable[[], None] | None = None,
    ) -> tuple[int, dict[str, Any]] | None:
        """``reliability <argv>`` (a change: :meth:`run_command_line` with ``changes``) as an operator runs a repair or
        a migration: the application stopped first (its runtime closed; ``stopped`` runs then), started again after,
        whatever the command did. ``done`` runs after the command, before the application starts again: what the
        command alone left (a start may write, e.g. re-anchor its redo journal after a damaged backup)."""
        config = self.config
        self.db.close()
        try:
            if stopped is not None:
                stopped()
            ran = self.run_command_line(argv, number, None, changes=True)
            if done is not None:
                done()
            return ran
        finally:
            self.db = self.open_runtime(config)
            self.after_reopen()

    def run_command_line(self, argv: list[str], number: int, faults: list[str] | None, *,
                         changes: bool = False, admin: bool | None = None) -> tuple[int, dict[str, Any]] | None:
        """Run ``reliability --json <argv>`` in-process (the CLI's ``main``: the operator's entry point) on the
        machine's file: its exit code and JSON document; None for a runtime that is not this package's.

        The command reads the settings the machine's runtime has, from a ``.env`` file written from them (an
        operator's command line and the application share one ``.env``; see :meth:`cli_env_file`), and of the
        caller's environment only ``RELIABILITY_SQLITE_MODULE`` (the build every machine runs on): a project's
        own ``.env`` or ``RELIABILITY_*`` variables stay out. ``admin``: True adds the OS user (the CLI's actor)
        to the administrators, False takes it out, None leaves the list as the runtime has it. Property
        ``number`` checks that the exit code is the one the document states and, unless the command
        ``changes`` the database (``flags set``), that the file was not written (an inspection; see
        :meth:`file_fingerprint`).
        """
        import contextlib
        import io
        import json

        from reliability import ReliabilityConfig
        from reliability.cli import main

        if not isinstance(self.config, ReliabilityConfig) or not os.path.exists(self.db_path):
            return None
        env_file = self.cli_env_file(admin)
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith("RELIABILITY_") or k == "RELIABILITY_SQLITE_MODULE"}
        before = self.file_fingerprint()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--db", self.db_path, "--env", env_file, "--json", *argv], environ=environ)
        if not changes:
            after = self.file_fingerprint()
            self.check(number, after == before,
                       lambda: f"`reliability {' '.join(argv)}` changed the database file (dev, inode, size, mtime, "
                               f"ctime of the file, then of its -wal: {before} -> {after})", faults=faults)
        doc = json.loads(out.getvalue())
        self.check(number, code == doc.get("exit_code"),
                   f"`reliability {' '.join(argv)}` exited {code}, its JSON says {doc.get('exit_code')}", faults=faults)
        # Whatever the file's state, a command answers for it: an "internal" error is the CLI's own crash (the
        # README's exit codes: 3 is the database's error, never a bug's), whatever the exit code hides it under.
        error = doc.get("error") if isinstance(doc.get("error"), dict) else {}
        self.check(number, error.get("kind") != "internal",
                   lambda: f"`reliability {' '.join(argv)}` crashed inside the command line (exit {code}): "
                           f"{doc.get('message')}", faults=faults)
        return code, doc

    def file_fingerprint(self) -> tuple[int, ...] | None:
        """What changes when anything writes the database file (its identity, size, modification and change
        times), read with ``stat``: never by opening the file. Closing any descriptor of the file drops every POSIX
        lock this process holds on it, the runtime's included, and another process may then checkpoint and delete
        the WAL under the runtime (a plain ``open()``/``close()`` here made the runtime refuse its own database,
        rightly: its -wal was gone). The ``-wal`` too: in WAL mode a write beside the running application lands
        there, and the file's own ``stat`` does not change (session 16; the ``-shm`` is written by every reader). Not
        the ``-wal``'s ctime (a runtime opening the database makes its sidecars 0600, a chmod, not a write), and an
        empty ``-wal`` is no ``-wal`` (SQLite creates one at a reader's open and deletes it at the last close)."""
        try:
            st = os.stat(self.db_path)
        except FileNotFoundError:
            return None
        prints = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        try:
            wal = os.stat(self.db_path + "-wal")
        except FileNotFoundError:
            return prints
        return prints + ((wal.st_dev, wal.st_ino, wal.st_size, wal.st_mtime_ns) if wal.st_size else ())

    def cli_env_file(self, admin: bool | None = None) -> str:
        """A ``.env`` (0600) holding the runtime's settings, for the command line (see :meth:`run_command_line`).

        Every setting but the database path (given with ``--db``) and the SQLite build (from the environment):
        the same retry policy, journal, paths and administrators, so a change the command line queues carries an
        authorization the runtime's replay accepts, and its waits under a lock are the runtime's. ``admin``
        puts the OS user into the administrators (True) or takes it out (False)."""
        import dataclasses

        from reliability.cli import os_user

        values = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)
                  if f.name not in ("db_path", "sqlite_module")}
        if admin is not None:
            actors = set(self.config.admin_actor_set) - {os_user()}
            values["admin_actors"] = ",".join(sorted(actors | ({os_user()} if admin else set())))
        quoted = [k for k, v in values.items() if "'" in str(v)]
        if quoted:
            raise ValueError(f"cli_env_file: setting(s) {quoted} hold a single quote, which a .env value here cannot")
        # (Single-quoted: python-dotenv reads those literally, so a path with a space or a "#" stays whole.)
        lines = [f"RELIABILITY_{k.upper()}='{str(v).lower() if isinstance(v, bool) else v}'" for k, v in values.items()]
        path = os.path.join(self.dir, "cli.env")
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    def put_back_undamaged(self, fault: Any) -> None:
        """After an honest failed recovery: close the runtime, put the copy the corruption fault kept back
        (the acknowledged state), open a new runtime.

        The failed recovery may have installed a backup and re-anchored the audit log it rewound; the
        copy put back ends before that re-anchoring entry, as a file replaced by an operator would. The
        operator's answer is the harness's: re-anchor (a public admin call) and expect that entry.
        """
        self.db.close()
        fault.heal()
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        audit = getattr(self.db, "audit", None)
        if audit is None or not hasattr(self.model, "audit_ids"):
            return
        report = self.absorb(audit.verify)
        if not report.ok and "shortened" in str(report.reason):
            entry = self.absorb(audit.reanchor, "dbfault", "the harness put the undamaged copy back")
            # Entries still waiting in the fallback file follow it once reconciled.
            waiting = set(self.fallback_ids()) if hasattr(self, "fallback_ids") else set()
            ids = self.model.audit_ids
            self.model.audit_ids = ([i for i in ids if i not in waiting] + [entry.entry_id]
                                    + [i for i in ids if i in waiting])

    def kill_and_reopen(self) -> None:
        """A kill -9 style restart: the old runtime is abandoned without ``close()`` (nothing flushed,
        nothing released by it), and a new one opens the same files."""
        self.heal_all()
        self.abandoned.append(self.db)
        self.db = self.open_runtime(self.config)
        self.after_reopen()

    def teardown(self) -> None:
        for fault in list(self.faults.values()):
            try:
                fault.heal()
            except Exception:  # pragma: no cover - teardown must release what it can
                pass
        self.faults.clear()
        if self.powerloss is not None:
            self._powerloss_cm.__exit__(None, None, None)
            self.powerloss = None
        for old in self.abandoned:
            conn = getattr(getattr(old, "connections", None), "_conn", None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pragma: no cover
                    pass
                # Gone with its (killed) process: the runtime keeps a registry of the process's managers by file
                # identity, and the next example's file may get this one's inode number. Left holding a closed
                # handle, the abandoned manager passed for a live one on that file (a removed -wal's rescue then
                # asked its closed handle whether it was in a transaction: a raw ProgrammingError, flaky).
                old.connections._conn = None
        if self.db is not None:
            try:
                self.db.close()
            except Exception:  # pragma: no cover
                pass
        self._logger.removeHandler(self.logs)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- checks ----------------------------------------------------------------------------
    @property
    def active_fault_names(self) -> list[str]:
        return sorted(self.faults)

    def labels(self) -> list[str]:
        """What is in force now, as the report labels it (issue #14, item 1).

        The faults in force; with none in force, ``after:<kind>`` of the fault healed last (the
        check judges what that fault left behind); with no fault ever healed, nothing ("none").
        A post-heal check is never labelled with the healed fault itself.
        """
        if self.faults:
            return self.active_fault_names
        return [f"after:{self.last_healed}"] if self.last_healed else []

    def check(self, number: int, ok: bool, message: str | Callable[[], str] = "",
              faults: list[str] | None = None) -> None:
        """Count a check of property ``number``; on failure record a violation and fail with its id.

        ``faults``: the kinds in force while the judged behaviour happened (a call that started
        under a fault which healed during it); None means what is in force now (:meth:`labels`).
        """
        active = self.labels() if faults is None else (faults or self.labels())
        STATS.record_check(number, active)
        if not ok:
            STATS.record_violation(number, active)
            if self.enforce is not None and number not in self.enforce:
                return
            text = message() if callable(message) else message
            raise AssertionError(f"{property_id(number)} violated (faults: {', '.join(active) or 'none'}): {text}")

    # -- faults ----------------------------------------------------------------------------
    def make_fault(self, kind: str, param: int) -> Fault | None:
        """A real fault of ``kind`` aimed at this machine's runtime (not injected yet), made by the fault
        registry under the kind's own name, counted in :data:`STATS` when injected."""
        if kind == "none":
            return None
        known = [*fault_names(), *variant_names()]
        if kind not in known:  # a typo in fault_kinds must not pass for "this fault cannot apply now"
            raise ValueError(f"{type(self).__name__}.fault_kinds: " + unknown_name_message("fault", kind, known))
        target, params = self.fault_target(kind, param)
        return make_fault(kind, target, counted_in=STATS, **params)

    def fault_target(self, kind: str, param: int) -> tuple[Any, dict[str, Any]]:
        """What a fault of ``kind`` acts on, and the parameters ``param`` (drawn by Hypothesis) chooses."""
        if kind == "locked":
            # The runtime itself, not its path: the holder thread then uses the runtime's SQLite build (a
            # holder of another build in this process is not seen, and its close drops the runtime's locks).
            return self.db, {"mode": "exclusive" if param % 2 else "write"}
        if kind == "disk_full":
            return self.db, {"headroom": param % 3}
        if kind == "disconnect_close":
            return self.db, {}  # closes the runtime's own connection
        # disconnect_rename, disconnect_delete and other file faults: the database file
        return self.db.path, {}

    def inject(self, kind: str, param: int = 0) -> bool:
        """Inject a fault of ``kind`` unless one of that kind is active; True when injected."""
        if kind == "none" or kind in self.faults:
            return False
        file_faults = ("disconnect_rename", "disconnect_delete")
        if kind in file_faults and ("locked" in self.faults or any(f in self.faults for f in file_faults)):
            return False  # the lock holder would keep the moved file; one file fault at a time
        if kind == "locked" and any(f in self.faults for f in file_faults):
            return False
        try:
            fault = self.make_fault(kind, param)
            if fault is None:
                return False
            fault.inject()
        except (FaultError, sqlite3.Error, self.sqlite_module().Error):
            return False  # not possible right now (e.g. the file is away): the rule does nothing
        self.faults[kind] = fault
        self.fault_history.append(kind)
        return True

    def heal(self, kind: str) -> None:
        """Heal the fault ``kind``. In a rollback-journal mode a lock still in force can keep it from healing
        (disk_full restores its page limit with a pragma that needs a read lock): then the faults injected
        after it are healed first, as an operator would release a lock to undo the other fault."""
        fault = self.faults.pop(kind, None)
        if fault is None:
            return
        self.last_healed = kind
        try:
            fault.heal()
        except (sqlite3.OperationalError, self.sqlite_module().OperationalError) as exc:
            if "locked" not in str(exc) or not self.faults:
                raise
            for other in reversed(list(self.faults)):
                self.heal(other)
            self.last_healed = kind
            fault.heal()

    def heal_all(self) -> None:
        """Heal every fault in force, the last injected first: a lock taken after a disk-full fault would
        keep the disk-full fault's own connection from putting its page limit back (rollback journals)."""
        for kind in reversed(list(self.faults)):
            self.heal(kind)

    def heal_after_sleeps(self, kinds: list[str], sleeps: int) -> None:
        """Heal ``kinds`` once the runtime has slept ``sleeps`` more times (a retry-time heal)."""
        target = len(self.time.sleeps) + sleeps

        def maybe(n: int) -> None:
            if n >= target:
                for kind in kinds:
                    self.heal(kind)
                self.time.on_sleep.remove(maybe)

        self.time.on_sleep.append(maybe)

    def clear_sleep_hooks(self) -> None:
        self.time.on_sleep.clear()

    @rule(data=st.data(), param=st.integers(0, 5))
    def inject_fault(self, data: st.DataObject, param: int) -> None:
        """Fault rule: Hypothesis picks one of the kinds this example enables (none first) and its parameter."""
        kinds = ["none"] + [k for k in self.fault_kinds if k != "none" and f"fault:{k}" in self.enabled]
        kind = data.draw(st.sampled_from(kinds), label="kind")
        self.inject(kind, param)

    @precondition(lambda self: bool(self.faults))
    @rule(data=st.data())
    def heal_fault(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(sorted(self.faults)), label="heal")
        self.heal(kind)

    # -- reading the truth -----------------------------------------------------------------
    @contextmanager
    def raw(self) -> Iterator[sqlite3.Connection]:
        """A plain connection to the file, independent of the runtime under test, on the runtime's SQLite build:
        a second copy of SQLite in the process would not see the runtime's POSIX locks, and closing its last
        connection would checkpoint and delete the WAL the runtime still writes to."""
        module = self.sqlite_module()
        # A lock the machine holds itself (the "locked" fault in force) is not waited for: in a rollback journal
        # mode it keeps this reader out until healed, so the busy timeout only made every check under it cost a
        # second (the audit machine spent 7 of its 8 s there). Other locks (the runtime's own threads) are waited for.
        timeout = 0.05 if "locked" in self.faults else 1.0
        conn = module.connect(self.db_path, timeout=timeout, isolation_level=None)
        try:
            yield conn
        except module.Error as exc:
            if module is sqlite3:
                raise
            # Callers catch sqlite3's classes: another build's error is raised as the class of the same
            # name (OperationalError for a lock, as the stdlib would), with the same text.
            cls = getattr(sqlite3, type(exc).__name__, None)
            if not (isinstance(cls, type) and issubclass(cls, sqlite3.Error)):
                cls = sqlite3.DatabaseError
            raise cls(str(exc)) from exc
        finally:
            conn.close()

    def sqlite_module(self) -> Any:
        """The DB-API module of the runtime under test (``RELIABILITY_SQLITE_MODULE``, default ``sqlite3``)."""
        from reliability.connection import load_sqlite_module

        return load_sqlite_module(self.config.sqlite_module if self.config is not None else "sqlite3")

    def stored_kv(self) -> dict[str, str]:
        with self.raw() as conn:
            return dict(conn.execute("SELECT k, v FROM kv").fetchall())

    def stored_pairs(self) -> dict[int, list[tuple[int, int]]]:
        with self.raw() as conn:
            return self._pairs(conn)

    @staticmethod
    def _pairs(conn: Any) -> dict[int, list[tuple[int, int]]]:
        out: dict[int, list[tuple[int, int]]] = {}
        for grp, leg, amount in conn.execute("SELECT grp, leg, amount FROM pairs ORDER BY grp, leg"):
            out.setdefault(grp, []).append((leg, amount))
        return out

    def stored_rows(self) -> tuple[dict[str, str], dict[int, list[tuple[int, int]]]]:
        """``stored_kv()`` and ``stored_pairs()`` read in one read transaction of one connection (the
        check after every step: one connection instead of two, and both tables from one snapshot)."""
        with self.raw() as conn:
            conn.execute("BEGIN")
            try:
                return dict(conn.execute("SELECT k, v FROM kv").fetchall()), self._pairs(conn)
            finally:
                if conn.in_transaction:  # (a failed read may have ended it: the first error is the one to see)
                    conn.execute("COMMIT")

    # -- data ------------------------------------------------------------------------------
    def text(self) -> str:
        """Free text with unicode (names and sentences in several locales)."""
        locale = self.rng.choice(LOCALES)
        return f"{self.pick('name', locale)}: {self.pick('sentence', locale)}"

    def pick(self, provider: str, locale: str = "en_US") -> str:
        """A Faker value of ``provider`` (one of :data:`POOLED`) chosen by the example's random."""
        return self.rng.choice(pooled(locale, provider))
