"""The degradation machine's rule ``a_transaction_replays_the_backlog_first``: write commands queued during an outage,
the fault healed, then a transaction (``db.transaction()`` or ``db.run_in_transaction``) that reads those rows first,
writes its own, and maybe raises. The backlog is replayed before the transaction begins (nothing queued inside it,
the rows read are the acknowledged values) and committed on its own (the application's exception rolls back only its
own write). Called with fixed arguments on a fresh machine, the rule passes on the runtime and fails against a runtime
with one realistic defect of that class."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.manager import DatabaseManager

NOT_FIRST = (r"p14_command_continuity violated \(faults: [^)]*\): \d write\(s\) queued during .* inside it \d "
             r"write\(s\) were still queued")
CASES = [("locked", 0, 1, "transaction", False, 0), ("locked", 4, 2, "transaction", True, 1),
         ("disconnect_rename", 8, 2, "run_in_transaction", False, 2),
         ("disconnect_delete", 11, 1, "run_in_transaction", True, 3), ("disconnect_rename", 5, 1, "transaction",
                                                                        True, 4)]


def run_rule(tmp_path, outage, n, writes, form, raises, param):
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))

    def call(m):
        m.a_transaction_replays_the_backlog_first(outage, n, writes, form, raises, param)
        m.p14_command_continuity()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("outage", "n", "writes", "form", "raises", "param"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, outage, n, writes, form, raises, param):
    run_rule(tmp_path, outage, n, writes, form, raises, param)


def test_it_bites_a_with_block_that_does_not_replay_first(tmp_path, monkeypatch):
    # ``db.transaction()`` (the with-block) forgets the backlog; only db.execute and db.run_in_transaction replay it:
    # the queued write is replayed later, over what the transaction committed.
    real_tx = DatabaseManager.transaction

    def transaction(self):
        self.executor.replay_backlog = lambda *a: None
        try:
            cm = real_tx(self)
            conn = cm.__enter__()
        finally:
            del self.executor.replay_backlog
        return _Reentered(cm, conn)

    class _Reentered:
        def __init__(self, cm, conn):
            self.cm, self.conn = cm, conn

        def __enter__(self):
            return self.conn

        def __exit__(self, *exc):
            return self.cm.__exit__(*exc)

    monkeypatch.setattr(DatabaseManager, "transaction", transaction)
    with pytest.raises(AssertionError, match=NOT_FIRST):
        run_rule(tmp_path, "locked", 4, 2, "transaction", False, 1)


def test_it_bites_a_replay_inside_the_new_transaction(tmp_path, monkeypatch):
    # run_in_transaction replays the backlog inside the transaction it opens (after BEGIN), so the queued writes
    # share its fate: the application's exception rolls them back too, yet the queue marked them done.
    real = DatabaseManager.run_in_transaction

    def run_in_transaction(self, fn, *args, **kwargs):
        if self.transactions.depth:
            return real(self, fn, *args, **kwargs)

        def inside(*a, **k):
            self.commands.replay()
            return fn(*a, **k)

        return self._transact(inside, *args, **kwargs)

    monkeypatch.setattr(DatabaseManager, "run_in_transaction", run_in_transaction)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated .* the file holds .*whatever becomes"):
        run_rule(tmp_path, "disconnect_delete", 11, 1, "run_in_transaction", True, 3)
