"""dbfault's SQLite reliability runtime.

Example::

    from reliability import DatabaseManager, ReliabilityConfig

    with DatabaseManager(ReliabilityConfig(db_path="app.db")) as db:
        db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (1)"))
"""

from .config import ConfigError, ReliabilityConfig
from .connection import ConnectionManager, ConnectionState
from .errors import KIND_INFO, DatabaseError, ErrorHandler, ErrorKind, RecoveryAction, classify
from .health import HealthMonitor, HealthReport, HealthStatus
from .manager import DatabaseManager
from .retry import RetryExhausted, RetryPolicy
from .transaction import TransactionError, TransactionManager

__all__ = [
    "KIND_INFO",
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
    "RecoveryAction",
    "ReliabilityConfig",
    "RetryExhausted",
    "RetryPolicy",
    "TransactionError",
    "TransactionManager",
    "classify",
]
