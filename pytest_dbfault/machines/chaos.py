"""The combined machine: every operation and every fault may interleave.

Backups during a lock, audit entries during disk full, migrations during a disconnect,
recovery after corruption with writes queued... Feature calls make operations of their
own, so the ledger-based properties (P10, P17) absorb those and check the rest exactly.
"""

from __future__ import annotations

from .audit import AuditMixin
from .backup import BackupMixin
from .base import FAULT_KINDS
from .config import ConfigMixin
from .connection import ConnectionMixin
from .degradation import DegradationMixin
from .errors_logging import OperationLogMixin
from .health import HealthMixin
from .schema import SchemaMixin


class ChaosMachine(ConnectionMixin, HealthMixin, SchemaMixin, BackupMixin, DegradationMixin, AuditMixin,
                   ConfigMixin, OperationLogMixin):
    """All property groups on one runtime, under every fault kind."""

    fault_kinds = FAULT_KINDS
    settings_overrides = {**OperationLogMixin.settings_overrides, **BackupMixin.settings_overrides,
                          **HealthMixin.settings_overrides}
