"""What each collaborator of the facade needs from it, as structural types (no import of the facade).

The audit log, the commands and the config reload are built by
:class:`~reliability.manager.DatabaseManager` and get it passed in, but they are typed by the narrow
surface they use, declared here, so none of them imports ``manager.py`` (no import cycle) and a
stand-in with the same surface works too (:class:`~reliability.inspection.Inspector` is the audit
log's read-only host). Each protocol is the whole list of what its module reaches for: a new
reach shows up here in review. Durability gets no host at all: it is built from the runtime's parts
(:class:`~reliability.durability.parts.RuntimeParts`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .config import ReliabilityConfig
    from .connection import ConnectionManager
    from .errors import ErrorHandler
    from .observers import Observers
    from .retry import RetryPolicy
    from .transaction import TransactionManager


class Statements(Protocol):
    """Runs SQL with the runtime's retries and error handling; ``config`` is the settings in force."""

    config: ReliabilityConfig

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run one statement."""

    def fetch_one(self, sql: str, params: Any = ()) -> Any:
        """The first row of a query, or None."""

    def fetch_all(self, sql: str, params: Any = ()) -> list[Any]:
        """Every row of a query."""

    def run_in_transaction(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in a transaction, rerun on transient errors."""


class AuditHost(Statements, Protocol):
    """What the audit log (:class:`~reliability.audit.AuditLogger`) uses: statements, the observers
    (its anchor follows commits and rollbacks) and the savepoint hooks. Its health contribution is asked
    by the facade."""

    observers: Observers
    transactions: TransactionManager

    def follow_the_path(self) -> None:
        """The next read checks that the path still names the file read (a verdict judges that file)."""


class Parts(Protocol):
    """The runtime's parts every host below shares: settings, connections, transactions, errors, policy."""

    config: ReliabilityConfig
    closed: bool
    connections: ConnectionManager
    transactions: TransactionManager
    errors: ErrorHandler
    policy: RetryPolicy


class ReloadHost(Parts, Protocol):
    """What applying a new configuration (:mod:`reliability.reload`) swaps it into."""

    oplog: Any

    #: Backups, schedules and the journal (:class:`~reliability.durability.Durability`): they follow a reload.
    durability: Any

    @property
    def redo_journal(self) -> Any:
        """The redo journal this manager writes (its flushes follow ``synchronous``), or None."""

    @property
    def id_prefix(self) -> str:
        """The prefix of the manager's operation ids (a new operation log keeps it)."""
