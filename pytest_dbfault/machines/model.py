"""The oracle: what the database must contain, and what the runtime must have counted and logged.

Machines update the model only from what the runtime *acknowledged* (a call that
returned, a command that answered "ok" or "queued"), then compare the real file with it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ledger:
    """Every call a machine made and how it ended (the expectation behind P10 and P17)."""

    #: successful operations by the runtime's operation type (execute, fetch_one, transaction...)
    ok: Counter = field(default_factory=Counter)
    #: DatabaseErrors seen by a caller (top level or inside a transaction body), by kind
    errors: Counter = field(default_factory=Counter)
    #: expected operation-log records: (operation type, outcome) -> n
    oplog: Counter = field(default_factory=Counter)
    #: transactions ended by the application's own exception (no database outcome to log)
    app_aborts: int = 0


@dataclass
class Model:
    """What the database must hold."""

    #: acknowledged key/value rows
    kv: dict[str, str] = field(default_factory=dict)
    #: acknowledged multi-leg groups: grp -> [(leg, amount)]
    pairs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    #: feature flags set through commands (acknowledged: ok or queued)
    flags: dict[str, Any] = field(default_factory=dict)
    #: audit entry ids in the order they were recorded
    audit_ids: list[str] = field(default_factory=list)
    #: applied schema version and the versions applied, in order
    schema_version: int = 0
    applied_versions: list[int] = field(default_factory=list)
    #: writes accepted into the durable queue, not yet known to be replayed (queue keys)
    queued: list[str] = field(default_factory=list)
    #: the next multi-leg group number
    next_group: int = 1
    ledger: Ledger = field(default_factory=Ledger)

    def new_group(self) -> int:
        grp = self.next_group
        self.next_group += 1
        return grp
