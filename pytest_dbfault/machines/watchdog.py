"""A step that never returns is a finding, not a run that never ends.

A runtime that hangs (a loop whose index never moves, a ``flock`` waited for on a lock the same process
still holds through a leaked descriptor, a wait nothing will end) used to keep ``pytest --dbfault``
running until CI's own limit killed it, with no verdict and no traceback. Under :func:`step_watchdog`
every step of a machine (a rule, the invariants after it, the teardown) must return within a bound;
one that does not is interrupted where it hangs with :class:`StepHung`, a failure Hypothesis shrinks and
reports like any violation, its traceback pointing at the line that hung. The watchdog is the plugin's one
(:class:`pytest_dbfault.hang.HangWatchdog`, chaos mode's too); here a unit of work is a step.

The bound (:data:`STEP_SECONDS_ENV`, default :data:`DEFAULT_STEP_SECONDS`) is far above any legitimate
step: the slowest steps (real processes, a whole fault sweep) take seconds on a loaded machine.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..hang import HangWatchdog

#: Seconds a step may take before it counts as hung (``0`` turns the watchdog off).
STEP_SECONDS_ENV = "DBFAULT_STEP_SECONDS"
DEFAULT_STEP_SECONDS = 120.0

#: The watchdog of the machine running now (None: none armed in this process).
_ARMED: list[_StepWatchdog | None] = [None]


class StepHung(AssertionError):
    """A step of a property machine did not return within the watchdog's bound."""


class _StepWatchdog(HangWatchdog):
    exception = StepHung
    thread_name = "dbfault-step-watchdog"

    def __init__(self, machine_name: str, timeout: float) -> None:
        super().__init__(timeout)
        self.machine_name = machine_name

    def fire(self, subject: object) -> str | None:
        return (f"a step of the {self.machine_name} machine did not return within {self.timeout:g} s: the runtime "
                f"hung (the traceback shows where). {STEP_SECONDS_ENV} sets the bound (0 turns it off).")


def step_seconds(env: Mapping[str, str] | None = None) -> float:
    """The bound :data:`STEP_SECONDS_ENV` sets (``0`` or ``off``: no watchdog)::

        step_seconds({})                                  # -> 120.0
        step_seconds({"DBFAULT_STEP_SECONDS": "30"})      # -> 30.0
        step_seconds({"DBFAULT_STEP_SECONDS": "off"})     # -> 0.0
    """
    raw = (os.environ if env is None else env).get(STEP_SECONDS_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_STEP_SECONDS
    if raw in ("0", "off"):
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):  # (NaN fails both comparisons)
        raise ValueError(f"{STEP_SECONDS_ENV}={raw!r}: expected a positive number of seconds, or 0/off")
    return value


@contextmanager
def step_watchdog(machine_name: str, seconds: float | None = None) -> Iterator[None]:
    """While inside: :func:`rearm` starts a step's clock; a step past ``seconds`` raises :class:`StepHung` where it
    hangs. Inert off the main thread, with another watchdog already armed, or when someone else's handler holds the
    watchdog's signal (chaos mode's own watchdog, during a chaos run)."""
    bound = step_seconds() if seconds is None else seconds
    if bound <= 0 or _ARMED[0] is not None or not _signal_free():
        yield
        return
    watchdog = _StepWatchdog(machine_name, bound)
    watchdog.start()
    if not watchdog.can_interrupt:
        watchdog.stop()
        yield
        return
    _ARMED[0] = watchdog
    try:
        rearm()
        yield
    finally:
        _ARMED[0] = None
        watchdog.disarm()
        watchdog.stop()


def _signal_free() -> bool:
    sig = getattr(signal, "SIGUSR2", None)
    return sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None)


def rearm() -> None:
    """A step begins: its clock starts from now (no-op unless a watchdog is armed)."""
    watchdog = _ARMED[0]
    if watchdog is not None:
        watchdog.arm()
