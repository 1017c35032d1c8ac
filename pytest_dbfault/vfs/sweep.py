"""SQLite's own fault sweep, for any callable that takes a database path.

:func:`sweep` runs ``fn(path)`` on a fresh copy of the database once per fault point: the Nth
I/O call fails, N = 1, 2, ... until ``fn`` completes without reaching N; each N once transient
(that call only) and once persistent (every call from then on). For ``power_loss`` the power is
cut just before sync N+1, N = 0, 1, ..., and the surviving files (unsynced writes dropped, or
torn) are checked instead. After every run:

- ``fn`` either returned or raised an error ``allowed`` accepts (default: any ``sqlite3.Error``, or the
  ``Error`` of the build ``$DBFAULT_SQLITE_MODULE`` names);
- ``PRAGMA integrity_check`` is ``ok`` after reopening;
- the state ``check(conn)`` reads equals the state before ``fn`` or after a fault-free run of
  ``fn`` — never something in between; and if ``fn`` returned normally, it equals "after".

Example::

    def add_order(path):
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("INSERT INTO orders(item) VALUES ('x')")

    result = sweep(add_order, "shop.db")
    assert result.ok, result.summary()

Each failure names the fault, N and mode that reproduce it with :func:`run_once`. The faults act on the
SQLite build ``$DBFAULT_SQLITE_MODULE`` names (the stdlib's when unset), as every fault given a bare
path: ``fn`` must open its connections with that build, and the checks read the copies with it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..faults.registry import make_fault
from ..faults.target import path_module
from .errors import VfsUnavailable, VfsUsageError
from .faults import PowerLossFault, RuleFault
from .powerloss import copy_database
from .rules import family_paths
from .shim import get_shim, vfs_available

#: Sweepable faults: name -> the registered fault each run injects (:mod:`pytest_dbfault.faults.registry`).
#: ``disk_full`` is an alias of ``enospc`` here (the sweep works at the file-system level only). The fault's
#: own operations are counted for N: ``io_error`` reads, writes, truncates and syncs, ``enospc`` writes,
#: ``short_read`` reads, ``power_loss`` syncs.
SWEEP_FAULTS: dict[str, str] = {
    "io_error": "io_error",
    "enospc": "enospc",
    "disk_full": "enospc",
    "short_read": "short_read",
    "power_loss": "power_loss",
}
IO_MODES = ("transient", "persistent")
POWER_MODES = ("drop", "torn")

State = Callable[[sqlite3.Connection], Any]


@dataclass(frozen=True)
class SweepRun:
    """One run of the callable under one fault point."""

    fault: str
    n: int
    mode: str
    fired: bool
    error: str | None
    problems: tuple[str, ...]


@dataclass(frozen=True)
class SweepFailure:
    """A run that broke a rule; ``fault``, ``n`` and ``mode`` reproduce it with :func:`run_once`."""

    fault: str
    n: int
    mode: str
    problem: str
    error: str | None

    def __str__(self) -> str:
        raised = f" (fn raised {self.error})" if self.error else ""
        return f"{self.fault} n={self.n} {self.mode}: {self.problem}{raised}"


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: the N reached per fault, every run, every failure."""

    reached: dict[str, int]
    runs: tuple[SweepRun, ...]
    failures: tuple[SweepFailure, ...]

    @property
    def ok(self) -> bool:
        """True when no run broke a rule."""
        return not self.failures

    def summary(self, limit: int = 20) -> str:
        """Human-readable result, one line per failure (up to ``limit``)."""
        reached = ", ".join(f"{fault} N={n}" for fault, n in self.reached.items())
        lines = [f"sweep: {len(self.runs)} runs, reached {reached}, {len(self.failures)} failures"]
        lines += [f"  {failure}" for failure in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"  ... and {len(self.failures) - limit} more")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with :meth:`summary` if any run failed."""
        if self.failures:
            raise AssertionError(self.summary())


def table_contents(conn: sqlite3.Connection) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The default state: every user table with its rows (as sorted reprs)."""
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return tuple((t, tuple(sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{t}"')))) for t in tables)


def any_sqlite_error(exc: BaseException) -> bool:
    """The default ``allowed`` predicate: any ``sqlite3.Error`` (or the swept build's) is an acceptable outcome."""
    return isinstance(exc, (sqlite3.Error, path_module().Error))


def sweep(
    fn: Callable[[str], object],
    db_path: str | os.PathLike[str],
    *,
    faults: Iterable[str] = ("io_error", "enospc"),
    check: State | None = table_contents,
    allowed: Callable[[BaseException], bool] = any_sqlite_error,
    modes: Iterable[str] | None = None,
    max_n: int = 10_000,
    work_dir: str | os.PathLike[str] | None = None,
) -> SweepResult:
    """Sweep fault points over ``fn(path)`` run on copies of ``db_path``; see the module docstring.

    :param fn: called with the path of a fresh copy of the database; must close what it opens.
    :param faults: any of :data:`SWEEP_FAULTS`.
    :param check: reads the state that must be all-or-nothing; None checks integrity only.
    :param allowed: says whether an exception ``fn`` raised is an acceptable outcome.
    :param modes: default ``transient`` and ``persistent`` (I/O faults), ``drop`` and ``torn`` (power loss).
    :param max_n: stop a fault's sweep there even if ``fn`` still reaches the fault.
    :param work_dir: where the copies go (default: a temporary directory, removed afterwards).
    """
    ok, reason = vfs_available(path_module())
    if not ok:
        raise VfsUnavailable(reason)
    faults = tuple(faults)
    for fault in faults:
        _check_fault(fault)
    if not os.path.isfile(db_path):
        raise VfsUsageError(f"sweep: database {os.fspath(db_path)!r} does not exist")
    own_dir = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="dbfault-sweep-")) if work_dir is None else Path(work_dir)
    try:
        before, after = _reference_states(fn, db_path, check, root)
        runs: list[SweepRun] = []
        reached: dict[str, int] = {}
        for fault in faults:
            fault_modes = tuple(modes) if modes is not None else _default_modes(fault)
            n = 0 if fault == "power_loss" else 1
            while n <= max_n:
                fired = False
                for mode in fault_modes:
                    run = _run(fn, db_path, fault, n, mode, check, allowed, before, after, root)
                    runs.append(run)
                    fired = fired or run.fired
                reached[fault] = n
                if not fired:
                    break
                n += 1
        failures = tuple(SweepFailure(r.fault, r.n, r.mode, p, r.error) for r in runs for p in r.problems)
        return SweepResult(reached, tuple(runs), failures)
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


def run_once(
    fn: Callable[[str], object],
    db_path: str | os.PathLike[str],
    fault: str,
    n: int,
    mode: str,
    *,
    check: State | None = table_contents,
    allowed: Callable[[BaseException], bool] = any_sqlite_error,
    work_dir: str | os.PathLike[str] | None = None,
) -> SweepRun:
    """Replay one sweep point (the ``fault``, ``n`` and ``mode`` of a :class:`SweepFailure`)."""
    _check_fault(fault)
    if mode not in _default_modes(fault):
        raise VfsUsageError(f"run_once: mode {mode!r} does not apply to {fault}; use {_default_modes(fault)}")
    ok, reason = vfs_available(path_module())
    if not ok:
        raise VfsUnavailable(reason)
    root = Path(work_dir or tempfile.mkdtemp(prefix="dbfault-run-"))
    before, after = _reference_states(fn, db_path, check, root)
    return _run(fn, db_path, fault, n, mode, check, allowed, before, after, root)


# ---------------------------------------------------------------------- internals
def _check_fault(fault: str) -> None:
    if fault not in SWEEP_FAULTS:
        raise VfsUsageError(f"sweep: unknown fault {fault!r}; use any of {', '.join(SWEEP_FAULTS)}")


def _default_modes(fault: str) -> tuple[str, ...]:
    return POWER_MODES if fault == "power_loss" else IO_MODES


def _reference_states(fn: Callable[[str], object], db_path: Any, check: State | None,
                      root: Path) -> tuple[Any, Any]:
    """The state before ``fn`` and after a fault-free run of it."""
    copy = copy_database(db_path, root / "reference")
    before = _read_state(copy, check)
    with get_shim(path_module()).installed():
        try:
            fn(copy)
        except Exception as exc:
            raise VfsUsageError(
                f"sweep: {_name(fn)} fails with no fault injected: {type(exc).__name__}: {exc}") from exc
        finally:
            _close_leaked_connections(copy)
    return before, _read_state(copy, check)


def _run(fn: Callable[[str], object], db_path: Any, fault: str, n: int, mode: str, check: State | None,
         allowed: Callable[[BaseException], bool], before: Any, after: Any, root: Path) -> SweepRun:
    copy = copy_database(db_path, root / f"{fault}-{n}-{mode}")
    shim = get_shim(path_module())
    error: str | None = None
    problems: list[str] = []
    with shim.installed():
        if fault == "power_loss":
            after_dir = root / f"{fault}-{n}-{mode}-after"
            power = make_fault("power_loss", copy, after_syncs=n, dest=after_dir, mode=mode, seed=n)
            assert isinstance(power, PowerLossFault)
            with power:
                error, exc_ok = _call(fn, copy, allowed)
            fired = power.recorder.crashed
            images = power.images if fired else power.cut(after_dir)
            target = (images or {}).get(os.path.realpath(copy))
            # After a crash the process is gone: what fn raised then is an artifact of the model.
            if not exc_ok and not fired:
                problems.append(f"fn raised an error that is not allowed: {error}")
            outcome_ok = False  # durability is not promised across power loss: before or after
        else:
            io = make_fault(SWEEP_FAULTS[fault], copy, nth=n, persistent=mode == "persistent", kind=fault)
            assert isinstance(io, RuleFault)
            with io:
                error, exc_ok = _call(fn, copy, allowed)
            fired = io.rule.tripped
            target = copy
            if not exc_ok:
                problems.append(f"fn raised an error that is not allowed: {error}")
            outcome_ok = error is None
        _close_leaked_connections(copy)
        if target is None:
            problems.append("the database file did not survive")
        else:
            problems += _verify(target, check, before, after, outcome_ok)
    return SweepRun(fault, n, mode, fired, error, tuple(problems))


def _call(fn: Callable[[str], object], path: str, allowed: Callable[[BaseException], bool]) -> tuple[str | None, bool]:
    """Run ``fn``; returns (error description or None, whether the outcome is acceptable)."""
    try:
        fn(path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        from reliability.errors import error_name  # here: importing the runtime costs a sweep without errors nothing

        code = error_name(exc)  # Python 3.10 gives no code name: the primary one, read from SQLite's message
        return f"{type(exc).__name__}: {exc}" + (f" [{code}]" if code else ""), allowed(exc)
    return None, True


def _close_leaked_connections(path: str) -> None:
    # A full collection costs milliseconds in a big test process: only pay it when a connection
    # fn left behind (in a traceback, a cycle...) still holds the database open.
    paths = family_paths(path)
    if any(f.path in paths for f in get_shim(path_module()).open_files()):
        gc.collect()


def _verify(path: str, check: State | None, before: Any, after: Any, succeeded: bool) -> list[str]:
    problems: list[str] = []
    module = path_module()  # the swept build: another copy of SQLite would not see its files' state the same way
    try:
        with contextlib.closing(module.connect(path)) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if rows != ["ok"]:
                problems.append(f"integrity_check: {'; '.join(map(str, rows[:5]))}")
            if check is not None:
                state = check(conn)
                if succeeded and state != after:
                    problems.append("fn returned normally but the state is not the after-state "
                                    f"({_short(state)})")
                elif state != before and state != after:
                    problems.append(f"state is neither before nor after (not atomic): {_short(state)}")
    except module.Error as exc:
        problems.append(f"reopening failed: {type(exc).__name__}: {exc}")
    return problems


def _read_state(path: str, check: State | None) -> Any:
    if check is None:
        return None
    with contextlib.closing(path_module().connect(path)) as conn:
        return check(conn)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
