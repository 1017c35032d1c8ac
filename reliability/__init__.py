"""dbfault's SQLite reliability runtime.

Example::

    from reliability import DatabaseManager, ReliabilityConfig

    with DatabaseManager(ReliabilityConfig(db_path="app.db")) as db:
        db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (1)"))
"""

from .backup import BackupError, BackupInfo
from .config import ConfigError, ReliabilityConfig
from .connection import ConnectionManager, ConnectionState
from .errors import KIND_INFO, DatabaseError, ErrorHandler, ErrorKind, RecoveryAction, classify
from .health import HealthMonitor, HealthReport, HealthStatus, IntegrityReport
from .manager import DatabaseManager
from .recovery import RecoveryReport
from .retry import RetryExhausted, RetryPolicy
from .schema import Migration, MigrationError, MigrationResult, SchemaReport
from .transaction import TransactionError, TransactionManager

__all__ = [
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
