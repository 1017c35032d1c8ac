"""The transaction machine's ``connection_lost_inside_and_caught`` when SQLite itself rolls the transaction back (P6).

Inside ``with db.transaction()``, a statement with the conflict clause ``OR ROLLBACK`` fails and SQLite rolls the
whole transaction back (as on a full disk inside it); the application catches the error and writes once more. The
handle is fine, so that write would be saved on its own at once unless the runtime refuses it: the block must fail
and leave none of its writes. The main job never met a transaction SQLite ended under a live handle (session 28's
coverage: ``ended_transaction`` in the executor and ``TransactionManager._commit``'s "SQLite rolled back" never ran).
Called directly (``first`` 1: the SQLite rollback): passes on the runtime; bites a runtime that never notices.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.connection import ConnectionManager


def machine(tmp_path):
    return started_machine("transactions", tmp_path, frozenset({"transfer", "nested"}))


@pytest.mark.parametrize("first,carry_on", [(1, True), (1, False), (10, True), (2, True)])
def test_passes_on_the_runtime(tmp_path, first, carry_on):
    run_and_tear_down(machine(tmp_path), lambda m: m.connection_lost_inside_and_caught(first, 14, carry_on))


def test_bites_a_runtime_that_does_not_notice_sqlite_rolled_back(tmp_path, monkeypatch):
    monkeypatch.setattr(ConnectionManager, "transaction_ended", lambda self: False)
    with pytest.raises(AssertionError, match="p06_transaction_atomicity violated.*SQLite rolled back inside it"):
        run_and_tear_down(machine(tmp_path), lambda m: m.connection_lost_inside_and_caught(1, 14, True))
