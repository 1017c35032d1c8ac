"""A step that never returns is a finding, not a run that never ends.

A runtime that hangs (a loop whose index never moves, a ``flock`` waited for on a lock the same process
still holds through a leaked descriptor, a wait nothing will end) used to keep ``pytest --dbfault``
running until CI's own limit killed it, with no verdict and no traceback. Under :func:`step_watchdog`
every step of a machine (a rule, the invariants after it, the teardown) must return within a bound;
one that does not is interrupted where it hangs by ``SIGALRM`` with :class:`StepHung`, a failure
Hypothesis shrinks and reports like any violation, its traceback pointing at the line that hung.

The bound (:data:`STEP_SECONDS_ENV`, default :data:`DEFAULT_STEP_SECONDS`) is far above any legitimate
step: the slowest steps (real processes, a whole fault sweep) take seconds on a loaded machine. The
alarm is only set where it can work and harms no one: on the main thread of a platform with
``setitimer``, and only when nothing else handles ``SIGALRM`` (pytest-timeout's signal method does:
then its own timeout stands instead).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

#: Seconds a step may take before it counts as hung (``0`` turns the watchdog off).
STEP_SECONDS_ENV = "DBFAULT_STEP_SECONDS"
DEFAULT_STEP_SECONDS = 120.0

#: The bound in force (None: no watchdog armed in this process).
_ARMED: list[float | None] = [None]


class StepHung(AssertionError):
    """A step of a property machine did not return within the watchdog's bound."""


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


def _usable() -> bool:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    # Someone else's SIGALRM handler (pytest-timeout's signal method, an application's): leave it alone.
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)


@contextmanager
def step_watchdog(machine_name: str, seconds: float | None = None) -> Iterator[None]:
    """While inside: :func:`rearm` starts a step's clock; a step past ``seconds`` raises :class:`StepHung`."""
    bound = step_seconds() if seconds is None else seconds
    if bound <= 0 or _ARMED[0] is not None or not _usable():
        yield
        return

    def hung(signum: int, frame: Any) -> None:
        raise StepHung(f"a step of the {machine_name} machine did not return within {bound:.0f} s: the runtime hung "
                       f"(the traceback shows where). {STEP_SECONDS_ENV} sets the bound (0 turns it off).")

    previous = signal.signal(signal.SIGALRM, hung)
    _ARMED[0] = bound
    try:
        rearm()
        yield
    finally:
        _ARMED[0] = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def rearm() -> None:
    """A step begins: its clock starts from now (no-op unless a watchdog is armed)."""
    bound = _ARMED[0]
    if bound is not None:
        signal.setitimer(signal.ITIMER_REAL, bound)
