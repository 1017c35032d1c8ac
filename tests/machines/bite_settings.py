"""The Hypothesis settings of a bite test: a fixed search (derandomized, no database, no shrinking)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyFailure


def bite_settings(max_examples: int, steps: int) -> settings:
    """A reproducible search of ``max_examples`` runs of ``steps`` steps that reports the first failure."""
    return settings(max_examples=max_examples, stateful_step_count=steps, deadline=None, derandomize=True,
                    database=None, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
                    print_blob=False, suppress_health_check=list(HealthCheck))


def violations_raised(machine: type, monkeypatch) -> list[str]:
    """The message of every violation ``machine`` raises from now on, in order, whatever Hypothesis does next.

    For a defect that depends on timing: the machine may find it, then not again on Hypothesis' replay, and
    the error Hypothesis raises then (a flaky replay, or inconsistent data generation when the replay fails
    sooner) need not hold the violation. What counts for a bite is that the check failed on the broken
    runtime; the passing run of the same machine shows it does not fail on the real one.
    """
    raised: list[str] = []
    real = machine.check

    def check(self, number, ok, message="", faults=None):
        try:
            real(self, number, ok, message, faults)
        except AssertionError as exc:
            raised.append(str(exc))
            raise

    monkeypatch.setattr(machine, "check", check)
    return raised


def first_violation(run: Callable[[], object]) -> str | None:
    """Run a machine against a broken runtime: what it found first (one line), or None when it passed."""
    try:
        run()
    except AssertionError as exc:
        return f"found {str(exc).splitlines()[0]}"
    except FlakyFailure as exc:
        # Found, then not again on Hypothesis' replay (a defect that depends on timing): what it found first.
        found = next((e for e in exc.exceptions if isinstance(e, AssertionError)), None)
        if found is not None:
            return f"found {str(found).splitlines()[0]}"
        return f"other failure: {type(exc).__name__}: {exc}"
    except BaseException as exc:  # the planted defect may break the runtime rather than a check
        return f"other failure: {type(exc).__name__}: {exc}"
    return None


def run_streams(machine: type, *args: object, streams: tuple[int | None, ...] = (None, 1, 2),
                **kwargs: object) -> None:
    """``run_machine`` on fixed streams of examples in turn (the derandomized one, then ``@seed(s)``), raising the
    first violation any finds; returns only when none found one.

    For a bite whose machine meets its defect through files, locks and timers: under a loaded suite (fsyncs of
    other workers) one run's outcomes differ from a quiet run's, so one fixed stream may take another path and
    miss the defect it meets when run alone (four bites did in one CI run and passed alone). Each stream is
    still fixed, and the passing controls use the derandomized one.
    """
    from hypothesis import seed

    from pytest_dbfault.machines import run_machine

    for s in streams:
        cls = machine if s is None else seed(s)(type(machine.__name__, (machine,), {}))
        run_machine(cls, *args, **kwargs)  # type: ignore[arg-type]


def started_machine(name: str, tmp_path: object, groups: frozenset[str] = frozenset({"fault:locked"}),
                    **drawn: object) -> object:
    """A machine of ``MACHINES[name]`` started as a run starts one, with the first value of every drawn setting
    (``drawn`` overrides some), for a bite that calls one rule directly: no Hypothesis search involved."""
    import random

    from pytest_dbfault.machines import MACHINES, bind
    from pytest_dbfault.machines.base import CONFIG_SPACE

    machine = bind(MACHINES[name], None, base_dir=str(tmp_path))()
    machine.start(random.Random(0), {**{k: v[0] for k, v in CONFIG_SPACE.items()}, **drawn}, groups)
    return machine


def run_and_tear_down(machine: object, call: Callable[[object], object]) -> None:
    """``call(machine)``, then the machine's teardown whatever happened (the runtime closed, the files left)."""
    try:
        call(machine)
    finally:
        machine.teardown()  # type: ignore[attr-defined]
