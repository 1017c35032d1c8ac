"""Run a checked :class:`~.parse.Scenario` against a fresh runtime, step by step.

Plain Python; the pytest item is a thin shell around :func:`run_scenario`::

    parsed = parse_file("scenarios/p06_transaction_atomicity.dbfault.yaml")
    run_scenario(parsed.scenarios[0], tmp_path, seed=1)  # raises ScenarioFailure on a broken promise

Every fault injected is healed at the end, even when a step fails; each ``expect`` step
counts a check of the scenario's properties in :mod:`pytest_dbfault.stats` (a violation
when it fails), with the faults active at that moment.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..faults.base import FaultError
from ..hang import rearm as rearm_watchdog
from ..hang import step_watchdog
from ..per_test import FaultFactory, InjectCallback
from ..runtime_config import FAST_TEST_SETTINGS
from ..stats import STATS, Stats
from .checks import CHECKS, matches, normalise, property_holds
from .confine import confine_settings
from .context import RuntimeUnsupported, ScenarioContext
from .errors import ScenarioFailure
from .parse import Scenario, Step, property_numbers
from .registry import ScenarioCommandRegistry, default_registry

#: Settings every scenario starts from (fast failure, no background threads, an ``admin`` actor);
#: the file's and scenario's ``config:`` override them.
SCENARIO_SETTINGS: dict[str, Any] = {**FAST_TEST_SETTINGS, "admin_actors": "admin"}


@dataclass(frozen=True)
class StepOutcome:
    """What a command did: ``status`` ok/queued/error/rejected/unavailable/exception, and details."""

    status: str
    value: Any = None
    kind: str | None = None
    message: str = ""

    def describe(self) -> str:
        """``error busy: The database is busy...`` / ``ok, returned [[1]]``."""
        if self.status == "ok":
            return f"ok, returned {_short(normalise(self.value))}"
        head = self.status + (f" ({self.kind})" if self.kind and self.kind != self.status else "")
        return f"{head}: {self.message}" if self.message else head


def scenario_seed(scenario: Scenario, run_seed: int, explicit: bool) -> int:
    """The seed of one scenario: the file's ``seed:`` when it has one (it pins the file, as a marker's
    ``seed=`` pins a test, so replaying a run with its ``--dbfault-seed`` reruns the same values), else the run's.

    Mixed with the scenario's file name and name, so each scenario draws its own values,
    the same on every machine and xdist worker. ``explicit`` is kept for callers; it no longer matters.
    """
    base = run_seed if scenario.file_seed is None else scenario.file_seed
    return random.Random(f"dbfault-scenario:{base}:{scenario.file.name}:{scenario.name}").getrandbits(32)


def run_scenario(
    scenario: Scenario,
    tmp_path: Path,
    *,
    seed: int,
    replay_seed: int | None = None,
    make_runtime: Callable[[Any], Any] | None = None,
    commands: ScenarioCommandRegistry | None = None,
    stats: Stats | None = None,
    on_inject: Iterable[InjectCallback] = (),
) -> ScenarioContext:
    """Run ``scenario`` in ``tmp_path`` (a fresh directory); raise :class:`ScenarioFailure` on the first
    step that does not get what it expects. Returns the (closed) context for inspection.

    :param seed: this scenario's seed (see :func:`scenario_seed`); seeds Faker and the faults.
    :param replay_seed: the ``--dbfault-seed`` that reproduces it, shown in failure reports (default ``seed``).
    :param make_runtime: builds the runtime from a ``ReliabilityConfig`` (default ``DatabaseManager``).
    :param commands: the command registry (default: the built-ins plus process-wide registrations).
    """
    from reliability import ReliabilityConfig
    from reliability.config import ConfigError

    if make_runtime is None:
        from reliability import DatabaseManager as make_runtime  # type: ignore[no-redef]
    stats = STATS if stats is None else stats
    commands = commands if commands is not None else default_registry()
    faults = FaultFactory(tmp_path, seed, random.Random(seed), on_inject=on_inject, stats=stats)
    run = _Run(scenario, seed if replay_seed is None else replay_seed, stats, commands)
    # The SQLite build under test (tox cells: sqlean, pysqlite3), as the runtime's from_env reads it; a file's
    # config: can still name one.
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"
    try:
        # Every path the scenario names is confined to its tmp directory (see .confine).
        settings = confine_settings({**SCENARIO_SETTINGS, "sqlite_module": module, **scenario.config}, tmp_path)
    except ConfigError as exc:
        raise run.failure(scenario.line, "config", "every path setting inside the scenario's tmp directory",
                          str(exc)) from None
    config = ReliabilityConfig(db_path=str(tmp_path / "app.db"), **settings)
    with _path_faults_on(config.sqlite_module):
        _run(run, scenario, make_runtime, config, tmp_path, seed, faults)
    return run.ctx


@contextlib.contextmanager
def _path_faults_on(module: str) -> Iterator[None]:
    # Faults aimed at a bare path open helper connections with $DBFAULT_SQLITE_MODULE: make it the runtime's
    # build for this scenario (unless the user set it). Two copies of SQLite in one process do not see each
    # other's POSIX locks, and one copy's last connection closing deletes the WAL the other writes to.
    from ..faults.target import MODULE_ENV

    if module == "sqlite3" or os.environ.get(MODULE_ENV, "").strip():
        yield
        return
    os.environ[MODULE_ENV] = module
    try:
        yield
    finally:
        os.environ.pop(MODULE_ENV, None)


def _run(run: _Run, scenario: Scenario, make_runtime: Any, config: Any, tmp_path: Path, seed: int,
         faults: FaultFactory) -> None:
    try:
        run.ctx = ScenarioContext(make_runtime=make_runtime, config=config, tmp_path=tmp_path, seed=seed,
                                  faults=faults, migrations=scenario.migrations, scenario_dir=scenario.file.parent)
    except Exception as exc:
        raise run.failure(scenario.line, "start the runtime", "the runtime starts", _exception(exc)) from None
    # Every step must return within the main job's bound (pytest_dbfault.hang): a runtime that hangs fails the
    # scenario where it hangs instead of keeping the run going with no verdict.
    with step_watchdog(f"scenario {scenario.name!r}"):
        try:
            run.setup()
            for step in scenario.steps:
                rearm_watchdog()
                run.step(step)
            rearm_watchdog()
        finally:
            run.finish()


class _Run:
    def __init__(self, scenario: Scenario, seed: int, stats: Stats, commands: ScenarioCommandRegistry) -> None:
        self.scenario = scenario
        self.seed = seed
        self.stats = stats
        self.commands = commands
        self.ctx: ScenarioContext = None  # type: ignore[assignment]
        self.history: list[str] = []

    # -- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        s = self.scenario
        if s.migrations is not None:
            from .commands import to_migrations

            try:
                self.ctx.require("migrate")(to_migrations(self.ctx))
            except Exception as exc:
                raise self.failure(s.line, "setup: migrations", "the setup migrations apply", _exception(exc)) \
                    from None
            self.history.append("setup: migrations applied")
        if s.data:
            try:
                from .data import insert_data

                counts = insert_data(self.ctx, s.data)
            except Exception as exc:
                raise self.failure(s.line, "setup: data", "the setup data is inserted", _exception(exc)) from None
            self.history.append("setup: data " + ", ".join(f"{t}={n}" for t, n in counts.items()))

    # -- steps ------------------------------------------------------------------------------
    def step(self, step: Step) -> None:
        getattr(self, f"_{step.kind}")(step)
        self.history.append(f"line {step.line}: {step.describe()}")

    def _command(self, step: Step) -> None:
        data = step.data
        spec = self.commands.get(data["command"])
        assert spec is not None  # checked by the parser
        try:
            outcome = outcome_of(spec.fn(self.ctx, **(data.get("args") or {})))
        except Exception as exc:
            outcome = outcome_of_exception(exc)
        expected = data.get("expect", "ok")
        problem = expectation_problem(expected, outcome)
        if problem is not None:
            raise self.failure(step.line, step.describe(), describe_expectation(expected), problem)

    def _fault(self, step: Step) -> None:
        name, label = step.data["fault"], step.label
        current = self.ctx.labels.get(label)
        if current is not None and current.active:
            raise self.failure(step.line, step.describe(), f"fault {label!r} is injected",
                               f"a fault labelled {label!r} is still active; heal it first or use `as:`")
        target = self._target_for(name)
        try:
            fault = self.ctx.faults.make(name, target, **(step.data.get("params") or {}))
        except (FaultError, TypeError, ValueError, OSError) as exc:
            raise self.failure(step.line, step.describe(), f"fault {name!r} is injected", _exception(exc)) from None
        except Exception as exc:  # e.g. the VFS is unavailable here
            raise self.failure(step.line, step.describe(), f"fault {name!r} is injected", _exception(exc)) from None
        self.ctx.labels[label] = fault

    def _heal(self, step: Step) -> None:
        label = step.data["heal"]
        targets = list(self.ctx.labels.values()) if label == "all" else [self.ctx.labels[label]]
        for fault in targets:
            try:
                fault.heal()
            except Exception as exc:
                raise self.failure(step.line, step.describe(), f"fault {fault.name!r} heals", _exception(exc)) \
                    from None

    def _expect(self, step: Step) -> None:
        checks = step.data["expect"]
        active = self.ctx.active_names()
        numbers = tuple(dict.fromkeys(self.scenario.properties + (
            property_numbers(checks["property"]) if "property" in checks else ())))
        found: list[str] = []
        for key, check in CHECKS.items():
            if key in checks:
                try:
                    problem = check(self.ctx, checks[key])
                except Exception as exc:
                    problem = f"the {key} check could not run: {_exception(exc)}"
                if problem:
                    found.append(f"{key}: {problem}")
        if "property" in checks:
            for number in property_numbers(checks["property"]):
                try:
                    problem = property_holds(self.ctx, number)
                except Exception as exc:
                    problem = f"could not check: {_exception(exc)}"
                if problem:
                    found.append(f"property {number}: {problem}")
        for number in numbers:
            self.stats.record_check(number, active)
            if found:
                self.stats.record_violation(number, active)
        if found:
            raise self.failure(step.line, step.describe(), _short(checks, 300), "\n".join(found))

    # -- helpers ----------------------------------------------------------------------------
    def _target_for(self, name: str) -> Any:
        import inspect

        from ..faults.registry import get_fault_class

        params = list(inspect.signature(get_fault_class(name)).parameters)
        # Faults taking a `path` get the database file; the others get the runtime itself
        # (a path and a live connection, matched by duck typing).
        return str(self.ctx.path) if params and params[0] == "path" else self.ctx.db

    def failure(self, line: int, step: str, expected: str, actual: str) -> ScenarioFailure:
        active = self.ctx.describe_active() if self.ctx is not None else []
        return ScenarioFailure(self.scenario.name, self.scenario.file, line, step, expected, actual, active,
                               self.seed, list(self.history), self.scenario.source)

    def finish(self) -> None:
        if self.ctx is None:
            return
        try:
            self.ctx.faults.close()
        finally:
            self.ctx.close_runtime()


# -- outcomes and expectations -----------------------------------------------------------------
def outcome_of(value: Any) -> StepOutcome:
    """A command's return value → :class:`StepOutcome` (``CommandResult``-like objects keep their status)."""
    status = getattr(value, "status", None)
    if isinstance(status, str) and hasattr(value, "message"):
        kind = getattr(value, "fault", None)
        return StepOutcome(status, getattr(value, "value", None), str(kind) if kind else None, str(value.message))
    return StepOutcome("ok", value)


def outcome_of_exception(exc: BaseException) -> StepOutcome:
    """An exception → :class:`StepOutcome`: database errors are ``error`` with their kind; refused settings are
    ``rejected``; anything else (a bug in a command) is ``exception`` and satisfies no expectation."""
    import sqlite3

    from reliability.config import ConfigError
    from reliability.errors import DatabaseError, classify

    if isinstance(exc, DatabaseError):
        return StepOutcome("error", None, str(exc.kind), exc.user_message + (f" [{exc.detail}]" if exc.detail else ""))
    if isinstance(exc, sqlite3.Error):
        return StepOutcome("error", None, str(classify(exc)), str(exc))
    if isinstance(exc, ConfigError):
        return StepOutcome("rejected", None, None, str(exc))
    if isinstance(exc, RuntimeUnsupported):
        return StepOutcome("exception", None, None, str(exc))
    return StepOutcome("exception", None, None, _exception(exc))


_ERRORISH = ("error", "rejected", "unavailable", "denied")  # a denied admin command is refused too


def expectation_problem(expected: Any, outcome: StepOutcome) -> str | None:
    """``None`` when ``outcome`` satisfies ``expected`` (a word or a mapping), else what happened."""
    if isinstance(expected, str):
        expected = {"outcome": expected}
    word = expected.get("outcome")
    if word is None:
        word = "error" if "error" in expected else "ok" if "message" not in expected else None
    if "error" in expected and expected["error"] != "any":
        word = expected["error"]
    if word is not None and not _word_matches(word, outcome):
        return outcome.describe()
    if "message" in expected and not re.search(expected["message"], outcome.message or ""):
        return f"{outcome.describe()} (message does not match /{expected['message']}/)"
    if "result" in expected and not matches(expected["result"], outcome.value):
        return outcome.describe()
    return None


def _word_matches(word: str, outcome: StepOutcome) -> bool:
    if word in ("ok", "queued"):
        return outcome.status == word
    if word == "error":
        return outcome.status in _ERRORISH
    if word == "rejected":
        return outcome.status == "rejected"
    return outcome.status in _ERRORISH and (outcome.kind == word or outcome.status == word)


def describe_expectation(expected: Any) -> str:
    """How a report states an expectation: ``error busy``, ``ok with result [[1]]``..."""
    if isinstance(expected, str):
        return expected if expected in ("ok", "queued", "error", "rejected") else f"error {expected}"
    parts = []
    if "outcome" not in expected and "error" not in expected and "message" not in expected:
        parts.append("ok")
    if "outcome" in expected:
        parts.append(describe_expectation(expected["outcome"]))
    if "error" in expected:
        parts.append("any error" if expected["error"] == "any" else f"error {expected['error']}")
    if "message" in expected:
        parts.append(f"a message matching /{expected['message']}/")
    if "result" in expected:
        parts.append(f"result {_short(expected['result'])}")
    return ", ".join(parts) if parts else "ok"


def _exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
