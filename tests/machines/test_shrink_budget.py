"""How long a failing machine shrinks (issue #14: a found bug ends the run with its shrunk example in two minutes).

No timing is asserted: these check the budget arithmetic, that the limit is scoped to the machine's run,
that the stop is reported truthfully, and that a failed run is charged to the process's budget.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import engine
from hypothesis.reporting import with_reporter
from hypothesis.stateful import RuleBasedStateMachine, rule

from pytest_dbfault import profiles
from pytest_dbfault.machines import SHRINK_SPENT, run_machine, shrink_limit


def test_budget_per_profile_and_total() -> None:
    one, total = profiles.SHRINK_SECONDS[profiles.FAST]
    assert profiles.shrink_seconds(profiles.FAST, 0.0, {}) == one
    assert profiles.shrink_seconds(profiles.FAST, total - 3.0, {}) == max(profiles.SHRINK_FLOOR, 3.0)
    # Budget used up: every later failure still shrinks a little (a replayable example is reported).
    assert profiles.shrink_seconds(profiles.FAST, total + 100.0, {}) == profiles.SHRINK_FLOOR
    assert profiles.shrink_seconds(profiles.CI, 0.0, {}) == profiles.SHRINK_SECONDS[profiles.CI][0]
    assert profiles.shrink_seconds("someone-elses", 0.0, {}) == one
    # The variable overrides the figure and lifts the total cap.
    assert profiles.shrink_seconds(profiles.FAST, 10_000.0, {profiles.SHRINK_ENV: "300"}) == 300.0


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf"])
def test_bad_shrink_seconds_named(raw: str) -> None:
    with pytest.raises(profiles.ProfileError, match=f"{profiles.SHRINK_ENV}='{raw}'"):
        profiles.shrink_seconds(profiles.FAST, 0.0, {profiles.SHRINK_ENV: raw})


def test_limit_is_scoped_and_its_warning_says_what_stopped_it() -> None:
    before = engine.MAX_SHRINKING_SECONDS
    seen: list[str] = []
    with shrink_limit(7.0):
        assert engine.MAX_SHRINKING_SECONDS == 7.0
        with with_reporter(seen.append):
            engine.report("WARNING: Hypothesis has spent more than five minutes working to shrink a failing "
                          "test case, and stopped")
            engine.report("something else")
    assert before == engine.MAX_SHRINKING_SECONDS  # a user's own Hypothesis tests keep Hypothesis' limit
    assert seen[0].startswith("NOTE: dbfault stopped shrinking after 7 s") and "five minutes" not in seen[0]
    assert profiles.SHRINK_ENV in seen[0]
    assert seen[1] == "something else"


class FailsAtThree(RuleBasedStateMachine):
    """Fails on the third step: a failure Hypothesis finds and shrinks at once."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    @rule()
    def step(self) -> None:
        self.n += 1
        assert self.n < 3, "third step"


SHRINKING = settings(max_examples=20, stateful_step_count=5, deadline=None, database=None, derandomize=True,
                     phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
                     print_blob=False)


def test_failed_run_is_charged_and_limit_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(profiles.SHRINK_ENV, raising=False)
    before_limit, before_spent = engine.MAX_SHRINKING_SECONDS, SHRINK_SPENT[0]
    with pytest.raises(AssertionError, match="third step"):
        run_machine(FailsAtThree, settings_=SHRINKING)  # type: ignore[arg-type]
    assert SHRINK_SPENT[0] > before_spent
    assert before_limit == engine.MAX_SHRINKING_SECONDS


def test_bad_variable_fails_the_machine_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(profiles.SHRINK_ENV, "soon")
    with pytest.raises(profiles.ProfileError, match=profiles.SHRINK_ENV):
        run_machine(FailsAtThree, settings_=SHRINKING)  # type: ignore[arg-type]


def test_a_failure_says_how_to_replay_it_and_the_setting_replays_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis' hint (decorate your test function) cannot be followed for a machine the plugin runs: the
    failure names ``DBFAULT_REPRODUCE`` instead, and that value replays the same failing example."""
    from pytest_dbfault.machines import REPRODUCE_ENV, reproduce_from_env

    monkeypatch.delenv(REPRODUCE_ENV, raising=False)
    blob_settings = settings(SHRINKING, print_blob=True)
    with pytest.raises(AssertionError, match="third step") as first:
        run_machine(FailsAtThree, settings_=blob_settings)  # type: ignore[arg-type]
    notes = "\n".join(getattr(first.value, "__notes__", []))
    assert "@reproduce_failure" not in notes and f'{REPRODUCE_ENV}="FailsAtThree ' in notes
    value = notes.split(f'{REPRODUCE_ENV}="', 1)[1].split('"', 1)[0]
    monkeypatch.setenv(REPRODUCE_ENV, value)
    # Replayed: generation off, so only the blob can make it fail.
    replay = settings(SHRINKING, phases=[Phase.explicit], print_blob=False)
    with pytest.raises(AssertionError, match="third step"):
        run_machine(FailsAtThree, settings_=replay)  # type: ignore[arg-type]
    monkeypatch.setenv(REPRODUCE_ENV, "FailsAtThree only-two-parts")
    with pytest.raises(ValueError, match=REPRODUCE_ENV):
        run_machine(FailsAtThree, settings_=replay)  # type: ignore[arg-type]
    # Another machine's example leaves this one as it is (the main job runs every machine).
    other = {REPRODUCE_ENV: value.replace("FailsAtThree", "connection")}
    assert reproduce_from_env(FailsAtThree, FailsAtThree, other) is FailsAtThree  # type: ignore[arg-type]
