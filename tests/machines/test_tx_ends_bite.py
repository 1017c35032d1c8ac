"""The transactions machine judges what ends a transaction behind the application's back: ``with conn:`` on the
connection ``with db.transaction() as conn`` yields (rules ``with_conn_block``, ``with_conn_in_nested_transaction``:
an exception raised inside it reaches the caller, the block's writes are gone), and a COMMIT issued through
``db.execute()`` that fails on a deferred foreign key (rules ``manual_commit``, ``manual_commit_after_delete``: no
transaction left open, the next write is durable). Each check fails against a runtime with one realistic defect of
that kind."""

from __future__ import annotations

import logging

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability import manager as manager_module
from reliability.errors import DatabaseError
from reliability.manager import DatabaseManager
from reliability.tx_connection import TransactionConnection

BITE = bite_settings(max_examples=60, steps=15)


def test_it_bites_a_with_conn_block_that_swallows_the_applications_exception(tmp_path, monkeypatch):
    # "Database errors go up to the runtime's transaction; the application's own exception is logged here": the
    # with-block on the yielded connection suppresses it, so the half-done transaction commits as if it succeeded.
    def exit_(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, DatabaseError):
            logging.getLogger("reliability").warning("with conn: %s", exc)
            return True
        return None

    monkeypatch.setattr(TransactionConnection, "__exit__", exit_)
    with pytest.raises(AssertionError, match=r"p06_transaction_atomicity violated .*an exception raised inside "
                                             r"`with conn:` inside .*did not reach the (caller|handler)"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={6})


def test_it_bites_a_with_conn_block_that_commits_like_sqlite3(tmp_path, monkeypatch):
    # sqlite3's `with conn:` commits at the end of the block: copied here, it commits the transaction's writes so
    # far and opens a new one, so an exception later in the db.transaction() block no longer undoes them.
    def exit_(self, exc_type, exc, tb):
        if exc is None and self._raw.in_transaction:
            self._raw.execute("COMMIT")
            self._raw.execute("BEGIN IMMEDIATE")
        return None

    monkeypatch.setattr(TransactionConnection, "__exit__", exit_)
    with pytest.raises(AssertionError, match=r"p06_transaction_atomicity violated .*`with conn:` block in .*"
                                             r"\(exception raised: \w+; failed\) left"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={6})


def test_it_bites_a_failed_manual_commit_rolled_back_only_for_operational_errors(tmp_path, monkeypatch):
    # "A busy or I/O failure of a COMMIT issued through execute() is rolled back; a constraint is the caller's to
    # fix (as SQLite leaves it)": the deferred foreign key's failed COMMIT leaves the transaction open, and every
    # later autocommit write goes into it, acknowledged and never committed.
    real = DatabaseManager._autocommit_journaled

    def autocommit(self, conn, sql, params):
        if not conn.in_transaction:
            return real(self, conn, sql, params)
        self.executor.check_identity(conn)
        try:
            self._journaled_commit(conn)
        except self.connections.module.OperationalError:
            self._redo.discard()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        except BaseException:
            self._redo.discard()
            raise
        return manager_module._NO_ROWS

    monkeypatch.setattr(DatabaseManager, "_autocommit_journaled", autocommit)
    with pytest.raises(AssertionError, match=r"p07_transaction_rollback violated .*db.execute\('(COMMIT|END)'\) of a "
                                             r"transaction opened with db.execute\('BEGIN( IMMEDIATE)?'\) failed "
                                             r"\(constraint: .*\), and the runtime left the transaction open"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={7})
