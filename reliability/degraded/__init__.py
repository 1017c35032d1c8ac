"""Degraded mode: serving commands while the database is unavailable, and the writes kept meanwhile.

- :mod:`~reliability.degraded.queue`: :class:`WriteQueue`, the durable FIFO of accepted writes.
- :mod:`~reliability.degraded.commands`: :class:`CommandRegistry` (``db.commands``, the seed plan's
  ``GracefulDegradation``): commands that keep working, writes queued and replayed exactly once.
- :mod:`~reliability.degraded.damage`: :class:`DamageGate`, the one rule that keeps the runtime's own
  writes (audit fallback, command writes, replay) out of a database seen damaged.
"""

from .commands import AuditLog, Command, CommandParts, CommandRegistry, CommandResult, Needs
from .damage import DamageGate
from .queue import QueuedWrite, QueueFullError, ReplayReport, WriteQueue

__all__ = ["AuditLog", "Command", "CommandParts", "CommandRegistry", "CommandResult", "DamageGate", "Needs",
           "QueueFullError", "QueuedWrite", "ReplayReport", "WriteQueue"]
