"""P6 transaction atomicity and P7 rollback: multi-leg writes struck by faults half way."""

from __future__ import annotations

from .workload import Workload


class TransactionMachine(Workload):
    """The workload's ``transfer`` rule does the work; faults also come between transactions."""

    core_groups = frozenset(("transfer", "nested"))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close")
