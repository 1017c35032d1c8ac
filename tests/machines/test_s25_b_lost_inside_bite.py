"""The transactions machine's ``connection_lost_inside_and_caught``: the connection is lost inside
``with db.transaction()`` after a write, the application catches the next statement's error (maybe writes once more)
and leaves the block normally. The block must fail with a DatabaseError, none of its writes in the file, nothing left
open. Called directly with fixed arguments: it passes on the runtime and bites two realistic defects: a runtime that
drops its handle after a lost-connection error inside a transaction too (the next statement then opens a connection
outside the transaction and is saved on its own), and the check before COMMIT reading a closed handle (sqlite3's raw
ProgrammingError reached the caller; a runtime defect found while writing this rule, fixed in the same change)."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import errors
from reliability.connection import ConnectionManager
from reliability.executor import Executor
from reliability.transaction import TransactionManager

GROUPS = frozenset({"transfer", "nested", "fault:disconnect_close"})


def _run(tmp_path, carry_on: bool) -> None:
    machine = started_machine("transactions", tmp_path, GROUPS)

    def call(m) -> None:
        m.connection_lost_inside_and_caught(2, 15, carry_on)
        m.p06_transaction_atomicity()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("carry_on", [False, True])
def test_passes_on_the_runtime(tmp_path, carry_on):
    _run(tmp_path, carry_on)


def test_bites_a_runtime_that_drops_its_handle_inside_a_transaction(tmp_path, monkeypatch):
    # Two defects together: either alone is harmless since a statement inside the block refuses to run once its
    # transaction is gone (ConnectionManager.transaction_ended), which a handle reopened inside the block is.
    real = Executor.surface_error

    def surface_error(self, *args, **kwargs):
        err = real(self, *args, **kwargs)
        if self.transactions.depth and errors.decide(err) is errors.Action.RECONNECT:
            self.drop()  # the defect: the open transaction's handle dropped under it
        return err

    monkeypatch.setattr(Executor, "surface_error", surface_error)
    monkeypatch.setattr(ConnectionManager, "transaction_ended", lambda self: False)  # ... and the statement run anyway
    with pytest.raises(AssertionError, match=r"p06_transaction_atomicity violated.*lost inside it failed, yet"):
        _run(tmp_path, carry_on=True)


def test_bites_a_check_before_commit_that_reads_a_closed_handle(tmp_path, monkeypatch):
    real = TransactionManager._commit

    def commit(self, conn, operation_id):
        conn.in_transaction  # noqa: B018  # the defect: read unguarded, a closed handle raises sqlite3's own error
        return real(self, conn, operation_id)

    monkeypatch.setattr(TransactionManager, "_commit", commit)
    with pytest.raises(AssertionError, match=r"p02_graceful_degradation violated.*instead of a DatabaseError"):
        _run(tmp_path, carry_on=False)
