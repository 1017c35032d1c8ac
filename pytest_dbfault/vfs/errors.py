"""Exceptions of the VFS shim, all subclasses of :class:`~pytest_dbfault.faults.base.FaultError`."""

from __future__ import annotations

from ..faults.base import FaultError


class VfsUnavailable(FaultError):
    """The VFS shim cannot be registered here; ``reason`` says why (tests skip with it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the dbfault VFS shim is unavailable: {reason}")
        self.reason = reason


class VfsUsageError(FaultError, ValueError):
    """A shim control (rule, recorder, sweep) was given a bad value; the message names it."""
