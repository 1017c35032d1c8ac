"""The transaction machine's ``connection_lost_inside_and_caught`` when SQLite itself rolls the transaction back
(``first`` 1, 4, 7, 10: ``INSERT OR ROLLBACK`` hitting the row the block just wrote), the error swallowed by the
application: what the block runs after it, and the block, fail as ``rolled_back``, whose user message (P8) says the
change was not saved and does not ask to try again later (sent again, the same change meets the same conflict).
Called directly: passes on the runtime; bites a runtime whose message invites a retry, and one that answers with the
generic ``unknown`` kind ("Please try again later")."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import errors, transaction
from reliability.errors import ErrorKind, KindInfo


def run_rule(tmp_path, first, carry_on):
    machine = started_machine("transactions", tmp_path, frozenset({"transfer", "nested"}))
    run_and_tear_down(machine, lambda m: m.connection_lost_inside_and_caught(first, 14, carry_on))


@pytest.mark.parametrize(("first", "carry_on"), [(1, True), (4, False), (7, True)])
def test_passes_on_the_runtime(tmp_path, first, carry_on):
    run_rule(tmp_path, first, carry_on)


def test_bites_a_message_that_asks_to_try_again_later(tmp_path, monkeypatch):
    info = errors.KIND_INFO[ErrorKind.ROLLED_BACK]
    monkeypatch.setitem(errors.KIND_INFO, ErrorKind.ROLLED_BACK, KindInfo(
        info.transient, info.action, "Your change was not saved. Please try again later."))
    with pytest.raises(AssertionError, match=r"p08_\w+ violated .*rolled_back error .* invites a retry"):
        run_rule(tmp_path, 1, True)


def test_bites_the_generic_unknown_kind(tmp_path, monkeypatch):
    real = transaction.ended_transaction

    def ended_transaction(detail="", operation_id=""):
        err = real(detail, operation_id)
        return transaction.TransactionError(ErrorKind.UNKNOWN, err.detail, operation_id=err.operation_id)

    monkeypatch.setattr(transaction, "ended_transaction", ended_transaction)
    with pytest.raises(AssertionError, match=r"error kind 'unknown' is not one the faults \['sqlite_rollback'\]"):
        run_rule(tmp_path, 1, True)
