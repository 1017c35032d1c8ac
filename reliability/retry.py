"""The one retry policy of the runtime: exponential backoff with full jitter, capped by attempts and time.

Connections (reconnect), statements, whole transactions and the audit log all
retry through :meth:`RetryPolicy.call`, so one set of settings governs them all::

    policy = RetryPolicy(attempts=5, base_delay=0.05, max_delay=2.0, budget=10.0)
    policy.call(fn, decide=lambda exc: decide(exc))   # errors.decide: the one rule

The clock, the sleep function and the random source are injectable so tests can
check every delay without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import Action

T = TypeVar("T")


class RetryExhausted(Exception):
    """Raised by :meth:`RetryPolicy.call` when attempts or time ran out; ``last`` is the final error."""

    def __init__(self, last: BaseException, attempts: int, elapsed: float) -> None:
        self.last = last
        self.attempts = attempts
        self.elapsed = elapsed
        super().__init__(f"gave up after {attempts} attempt(s) in {elapsed:.3f}s: {last}")


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter (AWS architecture blog's "Full Jitter").

    Attempt ``n`` (1-based) that failed is followed by a sleep drawn uniformly from
    ``[0, min(max_delay, base_delay * 2 ** (n - 1))]``. Retrying stops after
    ``attempts`` tries in all, or earlier when the next sleep would end past
    ``budget`` seconds since the first try.
    """

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0
    budget: float = 10.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    #: Told ``(attempt, delay, exc)`` before every sleep of every :meth:`call` (statements, transactions,
    #: maintenance alike): the runtime's health counts its retries here, once, wherever they happen.
    listeners: list[Callable[[int, float, BaseException], None]] = field(default_factory=list, repr=False,
                                                                        compare=False)

    @classmethod
    def from_config(cls, config: object, **kwargs: object) -> RetryPolicy:
        """The policy described by a :class:`~reliability.config.ReliabilityConfig`."""
        return cls(
            attempts=config.retry_attempts,  # type: ignore[attr-defined]
            base_delay=config.retry_base_delay,  # type: ignore[attr-defined]
            max_delay=config.retry_max_delay,  # type: ignore[attr-defined]
            budget=config.retry_budget,  # type: ignore[attr-defined]
            **kwargs,  # type: ignore[arg-type]
        )

    def ceiling(self, attempt: int) -> float:
        """The largest delay that may follow failed attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))

    def delay(self, attempt: int) -> float:
        """A jittered delay to sleep after failed attempt ``attempt``."""
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def call(
        self,
        fn: Callable[[], T],
        *,
        should_retry: Callable[[BaseException], bool] | None = None,
        decide: Callable[[BaseException], Action] | None = None,
        on_retry: Callable[[int, float, BaseException], None] | None = None,
        before_retry: Callable[[BaseException], None] | None = None,
        reconnect: Callable[[], None] | None = None,
    ) -> T:
        """Run ``fn`` until it succeeds, a non-retryable error occurs, or the budget is spent.

        :param decide: :func:`reliability.errors.decide` bound to the caller's situation, asked once
            per failed attempt: ``SURFACE`` re-raises the error, ``RETRY`` runs ``fn`` again after a
            backoff, ``RECONNECT`` also calls ``reconnect`` before the next try.
        :param should_retry: instead of ``decide``, for work that opens its own connection on each try
            (maintenance): True is ``RETRY``.
        :param on_retry: called as ``(attempt, delay, exc)`` before each sleep (for logging).
        :param before_retry: called after the sleep, before the next try (e.g. reconnect, rollback).
        :param reconnect: called after the sleep when the decision was ``RECONNECT``.
        :raises RetryExhausted: when attempts or time ran out on a retryable error.
        Non-retryable exceptions propagate unchanged.
        """
        if (decide is None) == (should_retry is None):
            raise TypeError("RetryPolicy.call takes exactly one of decide= and should_retry=")
        start = self.clock()
        attempt = 1
        while True:
            try:
                return fn()
            except BaseException as exc:
                if decide is not None:
                    action = decide(exc)
                elif should_retry(exc):  # type: ignore[misc]
                    action = Action.RETRY
                else:
                    action = Action.SURFACE
                if action is Action.SURFACE:
                    raise
                elapsed = self.clock() - start
                if attempt >= self.attempts:
                    raise RetryExhausted(exc, attempt, elapsed) from exc
                wait = self.delay(attempt)
                if elapsed + wait > self.budget:
                    raise RetryExhausted(exc, attempt, elapsed) from exc
                if on_retry is not None:
                    on_retry(attempt, wait, exc)
                for listener in self.listeners:
                    listener(attempt, wait, exc)
                self.sleep(wait)
                if action is not Action.RETRY and reconnect is not None:  # RECONNECT (or a late REOPEN)
                    reconnect()
                if before_retry is not None:
                    before_retry(exc)
                attempt += 1
