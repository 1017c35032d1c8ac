"""Hypothesis stateful machines for the 17 reliability properties, run against a real runtime.

Each machine keeps a model of what the database must hold, drives the runtime with
realistic data (a pool of Faker values picked by Hypothesis' random) and real faults drawn as rule arguments,
and checks its properties as invariants and postconditions named after them
(``p06_transaction_atomicity``...). Every check is counted in
:data:`pytest_dbfault.stats.STATS` under the faults in force.

Run one against any runtime::

    from pytest_dbfault.machines import MACHINES, run_machine
    run_machine(MACHINES["transactions"], my_runtime_factory)   # raises on a violation

Profiles: ``dbfault`` (fast default) and ``dbfault-ci`` (longer), registered here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from ..hang import step_watchdog
from .audit import AuditMachine
from .backup import BackupMachine
from .base import RuntimeFactory, RuntimeMachine
from .cells import UnderFaultMachine
from .chaos import ChaosMachine
from .commitpath import CommitPathMachine
from .config import ConfigMachine
from .connection import ConnectionMachine
from .dataloss import DataLossMachine
from .degradation import DegradationMachine
from .errors_logging import ErrorsLoggingMachine
from .health import HealthMachine
from .reload_effects import ReloadEffectsMachine
from .restart import RestartMachine
from .schema import SchemaMachine
from .surface import SurfaceMachine
from .transactions import TransactionMachine

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
#: ``DBFAULT_NO_SHRINK=1`` (benchmarks/bug_finding.py --no-shrink): report the first failing example
#: unshrunk, to measure *whether* a bug is caught without paying for the shrink.
_PHASES = ([Phase.explicit, Phase.reuse, Phase.generate] if os.environ.get("DBFAULT_NO_SHRINK")
           else [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
settings.register_profile("dbfault", max_examples=10, stateful_step_count=15, deadline=None, phases=_PHASES,
                          suppress_health_check=_SUPPRESS, print_blob=True, report_multiple_bugs=False)
settings.register_profile("dbfault-ci", max_examples=60, stateful_step_count=30, deadline=None, phases=_PHASES,
                          suppress_health_check=_SUPPRESS, print_blob=True, report_multiple_bugs=False)
#: Machine name → class; the names are the property groups of the issue.
MACHINES: dict[str, type[RuntimeMachine]] = {
    "connection": ConnectionMachine,
    "transactions": TransactionMachine,
    "schema": SchemaMachine,
    "errors_logging": ErrorsLoggingMachine,
    "health_integrity": HealthMachine,
    "backup_recovery": BackupMachine,
    "degradation_queue": DegradationMachine,
    "audit": AuditMachine,
    "config": ConfigMachine,
    "chaos": ChaosMachine,
    "commit_path": CommitPathMachine,  # issue #17: kill -9 at each point of the journaled commit path
    "under_fault": UnderFaultMachine,
    "restart": RestartMachine,
    "surface": SurfaceMachine,
    "dataloss": DataLossMachine,
    "reload_effects": ReloadEffectsMachine,  # reloads needing a new connection, wal_size, stale snapshot
}

#: Which properties each machine checks (the chaos machine checks them all).
PROPERTIES_BY_MACHINE: dict[str, tuple[int, ...]] = {
    "connection": (1, 2, 6, 8, 9, 10),
    "transactions": (2, 6, 7, 8, 9),
    "schema": (3, 4, 5, 8, 9),
    "errors_logging": (2, 8, 9, 10, 17),
    "health_integrity": (10, 11),
    "backup_recovery": (12, 13),
    "degradation_queue": (14, 15),
    "audit": (6, 15),
    "config": (1, 9, 16, 17),
    "chaos": tuple(range(1, 18)),
    "commit_path": (13,),
    "under_fault": tuple(range(1, 18)),
    "restart": (2, 3, 6, 8, 9, 10, 11, 12, 13, 14, 15),
    "surface": (1, 2, 4, 6, 8, 9, 12, 13, 14),
    "dataloss": (10, 11, 12, 13, 14),
    "reload_effects": (2, 8, 10, 16),
}


#: Property number -> fault families (``pytest_dbfault.stats.FAMILIES``) under which the machines
#: check it *while the fault is in force*, in every default run. The main job fails when one of
#: these cells is empty. All 68 cells of the 17 x 4 matrix: the under-fault machine's sweep
#: (``cells.py``) puts each family in force once per example and checks every property under it,
#: so no cell depends on a draw. Measured (h14-cells, session 4): every cell filled in each default
#: run of seeds 1, 31 and 33-40 while the sweep was built; seed 32 left P5 x disk_full empty before
#: the sweep's full disk lost its headroom, and the lowest count of a cell in a run was 2 before the
#: sweep moved to the start of every example (it now runs in every example, not only in those with
#: enough steps). Re-measure with 8+ seeds before declaring a new cell.
_ALL_FAMILIES = frozenset({"locked", "disk_full", "corrupt", "disconnect"})
APPLICABLE: dict[int, frozenset[str]] = {number: _ALL_FAMILIES for number in range(1, 18)}


def bind(machine: type[RuntimeMachine], runtime_factory: RuntimeFactory | None = None,
         base_dir: str | None = None, enforce: Iterable[int] | None = None) -> type[RuntimeMachine]:
    """A subclass of ``machine`` that builds its runtime with ``runtime_factory`` (None: DatabaseManager).

    ``enforce`` limits which properties fail the run (the others are still counted).
    """
    attrs: dict[str, Any] = {"base_dir": base_dir, "__module__": machine.__module__,
                             "enforce": None if enforce is None else frozenset(enforce)}
    if runtime_factory is not None:
        attrs["runtime_factory"] = staticmethod(runtime_factory)
    return type(machine.__name__, (machine,), attrs)


#: Seconds the failing machines of this process have spent (generation included: an upper bound of
#: their shrinking), against the profile's total shrink budget (:func:`pytest_dbfault.profiles.shrink_seconds`).
SHRINK_SPENT = [0.0]
_STOPPED_WARNING = "WARNING: Hypothesis has spent more than five minutes working to shrink"


@contextmanager
def shrink_limit(seconds: float) -> Iterator[None]:
    """Hypothesis shrinks a failing example for up to 300 s and has no setting for it: its engine's
    constant is set to ``seconds`` for one machine's run and restored after it (a user's own Hypothesis
    tests in the same process keep Hypothesis' limit). Its warning when the limit stops shrinking says
    "five minutes" and asks for a bug report; it is reworded to say what stopped it and how to shrink further."""
    try:
        from hypothesis.internal.conjecture import engine
        old_limit, old_report = engine.MAX_SHRINKING_SECONDS, engine.report
    except (ImportError, AttributeError):  # pragma: no cover - a Hypothesis without these internals
        yield
        return

    def report(text: str) -> None:
        if isinstance(text, str) and text.startswith(_STOPPED_WARNING):
            from ..profiles import SHRINK_ENV

            text = (f"NOTE: dbfault stopped shrinking after {seconds:.0f} s (the profile's bound, so that a found "
                    f"bug does not keep the run shrinking for minutes). The example below is replayable but may "
                    f"not be minimal; {SHRINK_ENV}=300 shrinks for longer.")
        old_report(text)

    engine.MAX_SHRINKING_SECONDS, engine.report = seconds, report
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS, engine.report = old_limit, old_report


#: ``DBFAULT_REPRODUCE="<machine> <hypothesis version> <blob>"`` replays one failing example of one machine.
REPRODUCE_ENV = "DBFAULT_REPRODUCE"
_HYPOTHESIS_HINT = "You can reproduce this test case by temporarily adding @reproduce_failure("


def machine_name(machine: type[RuntimeMachine]) -> str:
    """The machine's key in :data:`MACHINES` (its class name for a machine not listed there)."""
    base = next((c for c in machine.__mro__ if c in MACHINES.values()), machine)
    return next((k for k, v in MACHINES.items() if v is base), machine.__name__)


def reproduce_from_env(machine: type[RuntimeMachine], bound: type[RuntimeMachine],
                       env: Any = os.environ) -> type[RuntimeMachine]:
    """``bound`` with Hypothesis' ``@reproduce_failure`` applied when :data:`REPRODUCE_ENV` names this machine.

    Hypothesis' own hint ("add @reproduce_failure to your test function") cannot be followed for a machine
    the plugin runs; this is the way to follow it. A malformed value is an error naming the variable; the
    main job also refuses a machine name it does not run.
    """
    raw = env.get(REPRODUCE_ENV, "").strip()
    if not raw:
        return bound
    parts = raw.split()
    if len(parts) != 3:
        raise ValueError(f"{REPRODUCE_ENV}={raw[:60]!r}: expected '<machine> <hypothesis version> <blob>', "
                         f"machines: {', '.join(MACHINES)}")
    name, version, blob = parts
    if name != machine_name(machine):  # another machine's example (the main job runs them all)
        return bound
    from hypothesis import reproduce_failure

    blob = blob[2:-1] if blob[:2] in ("b'", 'b"') else blob
    return reproduce_failure(version, blob.encode())(bound)  # type: ignore[no-any-return]


def _reword_hint(exc: BaseException, machine: type[RuntimeMachine]) -> None:
    """Replace Hypothesis' decorator hint in the failure's notes by the command that replays the example."""
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, list):
        return
    for i, note in enumerate(notes):
        if not isinstance(note, str) or _HYPOTHESIS_HINT not in note:
            continue
        args = note.split("@reproduce_failure(", 1)[1].split(")", 1)[0]
        version, _, blob = (a.strip().strip("'\"") for a in args.partition(","))
        blob = blob.strip().removeprefix("b").strip("'\"")
        notes[i] = (f"\nReplay this example: {REPRODUCE_ENV}=\"{machine_name(machine)} {version} {blob}\" "
                    f"pytest --dbfault -k {machine_name(machine)} (or run_machine() with that variable set)")


def run_machine(machine: type[RuntimeMachine], runtime_factory: RuntimeFactory | None = None, *,
                settings_: settings | None = None, base_dir: str | None = None,
                enforce: Iterable[int] | None = None) -> None:
    """Run ``machine`` against the runtime built by ``runtime_factory``; raises on a violation.

    A step that does not return within :func:`~pytest_dbfault.hang.step_seconds` fails the run
    where it hangs (:mod:`pytest_dbfault.hang`). A failing example shrinks for as long as the chosen
    profile allows (see
    :func:`pytest_dbfault.profiles.shrink_seconds`; ``DBFAULT_SHRINK_SECONDS`` overrides it). Its failure
    says how to replay it (:data:`REPRODUCE_ENV`).
    """
    from ..profiles import current_profile, shrink_seconds

    bound = reproduce_from_env(machine, bind(machine, runtime_factory, base_dir, enforce))
    phases = (settings_ if settings_ is not None else settings.default).phases
    limit = shrink_seconds(current_profile()[0], SHRINK_SPENT[0], os.environ)
    t0 = time.perf_counter()
    try:
        with step_watchdog(f"the {machine_name(machine)} machine"):
            if Phase.shrink not in phases:
                run_state_machine_as_test(bound, settings=settings_)
            else:
                with shrink_limit(limit):
                    run_state_machine_as_test(bound, settings=settings_)
    except BaseException as exc:
        if Phase.shrink in phases:
            SHRINK_SPENT[0] += time.perf_counter() - t0
        _reword_hint(exc, machine)
        raise


def test_case(machine: type[RuntimeMachine], runtime_factory: RuntimeFactory | None = None,
              name: str | None = None) -> type:
    """The ``unittest.TestCase`` for a bound machine (what pytest collects)."""
    bound = bind(machine, runtime_factory)
    case = bound.TestCase
    case.__name__ = name or f"Test{machine.__name__}"
    return case


__all__ = [
    "APPLICABLE",
    "MACHINES",
    "REPRODUCE_ENV",
    "PROPERTIES_BY_MACHINE",
    "AuditMachine",
    "BackupMachine",
    "ChaosMachine",
    "ConfigMachine",
    "ConnectionMachine",
    "DataLossMachine",
    "DegradationMachine",
    "ErrorsLoggingMachine",
    "HealthMachine",
    "RuleBasedStateMachine",
    "RuntimeFactory",
    "RestartMachine",
    "RuntimeMachine",
    "SchemaMachine",
    "SurfaceMachine",
    "TransactionMachine",
    "UnderFaultMachine",
    "bind",
    "run_machine",
    "test_case",
]

_: Callable[..., Any] = run_state_machine_as_test  # re-exported for the bite tests
