"""The shared retry policy: full-jitter bounds, attempt and time budgets, checked with a fake clock."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runtime_helpers import LockHolder, sqlite_module

from reliability.errors import Action, decide, is_transient
from reliability.retry import RetryExhausted, RetryPolicy


class FakeClock:
    """A clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **kw: object) -> RetryPolicy:
    values: dict[str, object] = dict(attempts=6, base_delay=0.1, max_delay=1.0, budget=100.0)
    values.update(kw)
    return RetryPolicy(clock=clock, sleep=clock.sleep, rng=random.Random(1), **values)  # type: ignore[arg-type]


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise TimeoutError(f"failure {self.calls}")
        return "done"


@given(attempts=st.integers(1, 10), base=st.floats(0.001, 1.0), factor=st.floats(1.0, 50.0),
       seed=st.integers(0, 2**32))
def test_every_delay_lies_within_the_full_jitter_bounds(attempts: int, base: float, factor: float, seed: int) -> None:
    clock = FakeClock()
    p = RetryPolicy(attempts=attempts, base_delay=base, max_delay=base * factor, budget=1e9,
                    clock=clock, sleep=clock.sleep, rng=random.Random(seed))
    with pytest.raises(RetryExhausted) as info:
        p.call(Flaky(1000), should_retry=lambda e: True)
    assert info.value.attempts == attempts
    assert len(clock.sleeps) == attempts - 1
    for n, slept in enumerate(clock.sleeps, start=1):
        assert 0.0 <= slept <= min(base * factor, base * 2 ** (n - 1))


def test_ceilings_grow_exponentially_until_the_cap() -> None:
    p = RetryPolicy(base_delay=0.1, max_delay=1.0)
    assert [p.ceiling(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_it_returns_as_soon_as_a_try_succeeds() -> None:
    clock = FakeClock()
    flaky = Flaky(2)
    assert policy(clock).call(flaky, should_retry=lambda e: True) == "done"
    assert flaky.calls == 3 and len(clock.sleeps) == 2


def test_non_retryable_errors_propagate_unchanged_at_once() -> None:
    clock = FakeClock()
    flaky = Flaky(5)
    with pytest.raises(TimeoutError, match="failure 1"):
        policy(clock).call(flaky, should_retry=lambda e: False)
    assert flaky.calls == 1 and clock.sleeps == []


def test_the_time_budget_stops_retries_before_the_attempt_cap() -> None:
    clock = FakeClock()
    p = policy(clock, attempts=1000, base_delay=1.0, max_delay=1.0, budget=5.0)
    with pytest.raises(RetryExhausted) as info:
        p.call(Flaky(10_000), should_retry=lambda e: True)
    assert clock.now <= 5.0
    assert info.value.attempts < 1000
    assert isinstance(info.value.last, TimeoutError)


def test_hooks_see_each_retry_in_order() -> None:
    clock = FakeClock()
    seen: list[tuple[int, float, str]] = []
    before: list[str] = []
    policy(clock).call(Flaky(3), should_retry=lambda e: True,
                       on_retry=lambda n, d, e: seen.append((n, d, str(e))),
                       before_retry=lambda e: before.append(str(e)))
    assert [n for n, _d, _e in seen] == [1, 2, 3]
    assert [d for _n, d, _e in seen] == clock.sleeps
    assert before == ["failure 1", "failure 2", "failure 3"]


def test_a_reconnect_decision_reopens_before_the_next_try_and_a_surface_decision_stops_at_once() -> None:
    clock = FakeClock()
    actions = iter([Action.RECONNECT, Action.RETRY, Action.SURFACE])
    events: list[str] = []
    with pytest.raises(TimeoutError, match="failure 3"):
        policy(clock).call(Flaky(10), decide=lambda e: next(actions), reconnect=lambda: events.append("reopen"),
                           before_retry=lambda e: events.append(f"before {e}"))
    assert events == ["reopen", "before failure 1", "before failure 2"]
    assert len(clock.sleeps) == 2


def test_call_takes_exactly_one_rule() -> None:
    with pytest.raises(TypeError, match="exactly one"):
        policy(FakeClock()).call(Flaky(0), decide=decide, should_retry=is_transient)
    with pytest.raises(TypeError, match="exactly one"):
        policy(FakeClock()).call(Flaky(0))


def test_from_config_uses_the_configured_numbers() -> None:
    from reliability.config import ReliabilityConfig

    p = RetryPolicy.from_config(ReliabilityConfig(retry_attempts=9, retry_base_delay=0.2, retry_max_delay=3,
                                                  retry_budget=7))
    assert (p.attempts, p.base_delay, p.max_delay, p.budget) == (9, 0.2, 3, 7)


def test_a_real_lock_released_during_backoff_is_absorbed(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    sqlite3.connect(path).execute("CREATE TABLE t (v)").connection.commit()
    victim = sqlite_module().connect(path, timeout=0, isolation_level=None)
    holder = LockHolder(path).__enter__()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            holder.__exit__()  # the other writer finishes while we back off

    p = RetryPolicy(attempts=5, base_delay=0.001, max_delay=0.002, budget=5, sleep=sleep)
    p.call(lambda: victim.execute("INSERT INTO t VALUES (1)"), decide=decide)
    assert len(sleeps) == 2
    assert victim.execute("SELECT count(*) FROM t").fetchone()[0] == 1
