"""The one hang watchdog of the plugin: chaos mode's per-test one, and the per-step one of the main job.

Work runs on the main thread in units (a test under chaos, a step of a property machine or of a scenario);
:meth:`HangWatchdog.arm` starts a unit's clock. A daemon thread waits for the deadline; when a unit outlives it,
:meth:`HangWatchdog.fire` (on the watchdog thread) decides what to say, and the main thread is interrupted where it
hangs with that message: ``SIGUSR2`` sent to it runs a handler there that raises the watchdog's exception (a blocked
system call returns ``EINTR`` and Python runs the handler; a Python loop sees it at its next instruction). A thread
and a signal of its own, not ``SIGALRM``: the alarm belongs to whoever else times tests (pytest-timeout's signal
method), and the thread can dump every thread's stack before it interrupts.

The main job's steps (:func:`step_watchdog`): a runtime that hangs (a loop whose index never moves, a ``flock``
waited for on a lock the same process still holds through a leaked descriptor, a wait nothing will end) used to keep
``pytest --dbfault`` running until CI's own limit killed it, with no verdict and no traceback. Every step of a machine
(a rule, the invariants after it, the teardown) and of a scenario must return within a bound; one that does not is
interrupted where it hangs with :class:`StepHung`, a failure reported like any other (a machine's is shrunk), its
traceback pointing at the line that hung. The bound (:data:`STEP_SECONDS_ENV`, default :data:`DEFAULT_STEP_SECONDS`)
is far above any legitimate step: the slowest (real processes, a whole fault sweep) take seconds on a loaded machine.
Once a step of a run hung, the rest of that run (shrinking, the final replay) gets a bound measured on the run
itself, so a found hang is reported with its shrunk example in seconds per candidate, not minutes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


class HangWatchdog:
    """One daemon thread; :meth:`arm` per unit of work, :meth:`disarm` after it; :meth:`stop` at the end."""

    #: The exception raised on the main thread when a unit hangs.
    exception: type[BaseException] = RuntimeError
    #: The watchdog thread's name (it shows in stack dumps).
    thread_name = "dbfault-hang-watchdog"

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._subject: Any = None
        #: How often the running unit has been interrupted (a unit that ignores interruptions fires again).
        self.fired = 0
        self._main = threading.main_thread()
        self._previous: Any = None
        self._signal = getattr(signal, "SIGUSR2", None)
        self._thread: threading.Thread | None = None
        #: The pending hang message for the signal handler to raise.
        self.pending: str | None = None
        self._armed = False

    @property
    def can_interrupt(self) -> bool:
        """True once :meth:`start` installed the handler that interrupts the main thread."""
        return self._previous is not None

    def start(self) -> None:
        """Start the thread (no-op for a timeout of 0) and, on the main thread, install the interrupting handler."""
        if self.timeout <= 0:
            return
        if self._signal is not None and threading.current_thread() is self._main:
            self._previous = signal.signal(self._signal, self._on_signal)
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and put the previous handler back."""
        with self._cond:
            self._deadline = None
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)  # (it only has to see the notification: gone before the caller goes on)
        if self._previous is not None:
            with contextlib.suppress(ValueError):
                signal.signal(self._signal, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def arm(self, subject: Any = None) -> None:
        """A unit of work (``subject``, handed to :meth:`fire`) starts now: its clock starts."""
        with self._cond:
            self._armed = True
            self._subject, self.fired, self.pending = subject, 0, None
            self._deadline = time.monotonic() + self.timeout if self.timeout > 0 else None
            self._cond.notify_all()

    def disarm(self) -> None:
        """The unit returned: nothing is interrupted any more."""
        self._armed = False  # first, without the lock: a late signal must not hit the code after the unit
        with self._cond:
            self._subject, self._deadline, self.pending = None, None, None

    def fire(self, subject: Any) -> str | None:
        """On the watchdog thread, when ``subject`` outlived the timeout: the message to raise on the main thread
        (None: do not interrupt). Subclasses record the hang here."""
        return f"still running after {self.timeout:g} s"

    def _on_signal(self, signum: int, frame: Any) -> None:
        message, self.pending = self.pending, None
        if message is not None and self._armed:
            raise self.exception(message)

    def _loop(self) -> None:
        me = threading.current_thread()
        with self._cond:
            while self._thread is me:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                subject = self._subject
                self.fired += 1
                self._deadline = time.monotonic() + self.timeout
                message = self.fire(subject)
                if message is not None and self.can_interrupt:
                    self.pending = message
                    signal.pthread_kill(self._main.ident, self._signal)  # type: ignore[arg-type]


#: Seconds a step may take before it counts as hung (``0`` turns the watchdog off).
STEP_SECONDS_ENV = "DBFAULT_STEP_SECONDS"
DEFAULT_STEP_SECONDS = 120.0

#: The watchdog of the machine running now (None: none armed in this process).
_ARMED: list[_StepWatchdog | None] = [None]


class StepHung(AssertionError):
    """A step of a property machine did not return within the watchdog's bound."""


#: After a step of a machine hung, later steps of that machine (Hypothesis shrinking the example, then replaying it)
#: get this many times the longest step that returned, at least :data:`AFTER_HANG_FLOOR` s, never more than the bound.
AFTER_HANG_FACTOR = 4.0
AFTER_HANG_FLOOR = 15.0


class _StepWatchdog(HangWatchdog):
    """The per-step watchdog of one machine or scenario run.

    Once a step has hung, the run's verdict is already a failure; what is left is Hypothesis shrinking the example
    and replaying it, and each candidate that hangs again would cost the whole bound (two minutes by default, far
    above any legitimate step so a loaded machine never trips it). So after the first hang the bound drops to a few
    times the longest step that did return in this run (:data:`AFTER_HANG_FACTOR`, at least
    :data:`AFTER_HANG_FLOOR` s): measured on this run, it stays above what the machine legitimately does here, and a
    found hang ends with its shrunk example in seconds instead of minutes per candidate."""

    exception = StepHung
    thread_name = "dbfault-step-watchdog"

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(timeout)
        self.what = what
        self.bound = timeout
        #: Whether a step of this run hung (then later steps get the shorter bound).
        self.hung = False
        #: The longest step of this run that returned (seconds).
        self.longest = 0.0
        self._began: float | None = None

    def arm(self, subject: Any = None) -> None:
        now = time.monotonic()
        if self._began is not None and not self.fired:  # (the step before this one returned: how long it took)
            self.longest = max(self.longest, now - self._began)
        self._began = now
        if self.hung:
            self.timeout = min(self.bound, max(AFTER_HANG_FLOOR, AFTER_HANG_FACTOR * self.longest))
        super().arm(subject)

    def fire(self, subject: object) -> str | None:
        self.hung = True
        return (f"a step of {self.what} did not return within {self.timeout:g} s: the runtime hung (the traceback "
                f"shows where). {STEP_SECONDS_ENV} sets the bound (0 turns it off).")


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
    from .profiles import positive_seconds

    return positive_seconds(STEP_SECONDS_ENV, raw, ", or 0/off")


@contextmanager
def step_watchdog(what: str, seconds: float | None = None) -> Iterator[None]:
    """``what`` (``"the schema machine"``, ``"scenario 'x'"``) runs in steps. While inside: :func:`rearm` starts a
    step's clock; a step past ``seconds`` raises :class:`StepHung` where it
    hangs. Inert off the main thread, with another watchdog already armed, or when someone else's handler holds the
    watchdog's signal (chaos mode's own watchdog, during a chaos run)."""
    bound = step_seconds() if seconds is None else seconds
    if bound <= 0 or _ARMED[0] is not None or not _signal_free():
        yield
        return
    watchdog = _StepWatchdog(what, bound)
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
