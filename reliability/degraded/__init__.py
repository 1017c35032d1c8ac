"""Degraded mode: serving commands while the database is unavailable, and the writes kept meanwhile.

- :mod:`~reliability.degraded.queue`: :class:`WriteQueue`, the durable FIFO of accepted writes.
- :mod:`~reliability.degraded.commands`: :class:`CommandRegistry` (``db.commands``, the seed plan's
  ``GracefulDegradation``): commands that keep working, writes queued and replayed exactly once.
"""

from .commands import AuditLog, Command, CommandParts, CommandRegistry, CommandResult, Needs
from .queue import QueuedWrite, QueueFullError, ReplayReport, WriteQueue

__all__ = ["AuditLog", "Command", "CommandParts", "CommandRegistry", "CommandResult", "Needs", "QueueFullError",
           "QueuedWrite", "ReplayReport", "WriteQueue"]
