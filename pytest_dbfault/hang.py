"""The one hang watchdog of both wings of the plugin: chaos mode's per-test one and the machines' per-step one.

Work runs on the main thread in units (a test under chaos, a step of a property machine); :meth:`HangWatchdog.arm`
starts a unit's clock. A daemon thread waits for the deadline; when a unit outlives it, :meth:`HangWatchdog.fire`
(on the watchdog thread) decides what to say, and the main thread is interrupted where it hangs with that
message: ``SIGUSR2`` sent to it runs a handler there that raises the watchdog's exception (a blocked system call
returns ``EINTR`` and Python runs the handler; a Python loop sees it at its next instruction). A thread and a
signal of its own, not ``SIGALRM``: the alarm belongs to whoever else times tests (pytest-timeout's signal
method), and the thread can dump every thread's stack before it interrupts.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
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
