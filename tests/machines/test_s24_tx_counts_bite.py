"""The transactions machine judges ``db.transactions``' counts of outermost transactions (rules ``nested_once``,
``nested_forms``, ``with_conn_block``, ``interrupted_transaction``): one outermost transaction adds one to ``commits``
when it committed, one to ``rollbacks`` when it was rolled back, and a nested level (a savepoint) adds to neither.
Each rule is called with fixed arguments on a fresh machine: it passes on the runtime and fails against a runtime
with one realistic defect of that class."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.transaction import TransactionManager

COUNTED = r"p07_transaction_rollback violated \(faults: none\): .*db\.transactions counted"

#: (form, key, inner form, inner raises, outer raises) of ``nested_once``
NESTINGS = [("transaction", 1, "transaction", False, True), ("run_in_transaction", 2, "transaction", True, False),
            ("transaction", 3, "run_in_transaction", True, True), ("run_in_transaction", 4, "run_in_transaction",
                                                                   False, False)]


def run_nested(tmp_path, form, first, inner, inner_fails, outer_fails):
    machine = started_machine("transactions", tmp_path, frozenset({"transfer", "nested"}))

    def call(m):
        m.nested_once(form, first, first + 7, inner, inner_fails, outer_fails)
        m.p06_transaction_atomicity()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("form", "first", "inner", "inner_fails", "outer_fails"), NESTINGS)
def test_the_counts_pass_on_the_runtime(tmp_path, form, first, inner, inner_fails, outer_fails):
    run_nested(tmp_path, form, first, inner, inner_fails, outer_fails)


@pytest.mark.parametrize(("interrupt", "nested"), [("KeyboardInterrupt", False), ("SystemExit", True)])
def test_an_interrupt_counts_one_rollback_on_the_runtime(tmp_path, interrupt, nested):
    machine = started_machine("transactions", tmp_path, frozenset({"transfer", "nested"}))
    run_and_tear_down(machine, lambda m: m.interrupted_transaction(2, 5, interrupt, nested, False))


def test_it_bites_a_rollback_that_is_not_counted(tmp_path, monkeypatch):
    # The rollback of the outermost transaction is done and the observers told, but the counter is left as it was
    # (a rolled-back transaction no longer shows in the runtime's numbers).
    real = TransactionManager._rollback

    def rollback(self, conn, level, name):
        n = self.rollbacks
        real(self, conn, level, name)
        self.rollbacks = n

    monkeypatch.setattr(TransactionManager, "_rollback", rollback)
    with pytest.raises(AssertionError, match=COUNTED + r" 0 commit\(s\) and 0 rollback\(s\), expected 0 and 1"):
        run_nested(tmp_path, "transaction", 1, "transaction", False, True)


def test_it_bites_a_savepoint_rollback_counted_as_a_transaction(tmp_path, monkeypatch):
    # Every level's rollback is counted, the savepoint of a nested level too: an inner failure the application
    # caught, in a transaction that then committed, shows as a rollback.
    real = TransactionManager._rollback

    def rollback(self, conn, level, name):
        real(self, conn, level, name)
        if level:
            self.rollbacks += 1

    monkeypatch.setattr(TransactionManager, "_rollback", rollback)
    with pytest.raises(AssertionError, match=COUNTED + r" 1 commit\(s\) and 1 rollback\(s\), expected 1 and 0"):
        run_nested(tmp_path, "run_in_transaction", 2, "transaction", True, False)
