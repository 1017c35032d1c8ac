"""The transactions machine judges that the connection ``with db.transaction() as conn`` yields is the live one for
every attribute the runtime does not take over (session 26, surviving mutant ``tx_connection.py:38``: the live
connection was never stored, and every such attribute raised; no rule read one).

Rules ``with_conn_block`` / ``with_conn_in_nested_transaction`` read ``conn.in_transaction`` after the block's first
write: True (the docstring of :class:`~reliability.tx_connection.TransactionConnection` names ``in_transaction``
among the live connection's attributes). Called directly, no Hypothesis search."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.stats import property_id
from reliability.tx_connection import TransactionConnection


def with_conn(tmp_path, nested: bool = False, inside: bool = False) -> None:
    machine = started_machine("transactions", tmp_path)
    if nested:
        run_and_tear_down(machine, lambda m: m.with_conn_in_nested_transaction(1, 14, inside, False))
    else:
        run_and_tear_down(machine, lambda m: m.with_conn_block(1, 14, inside, False))


@pytest.mark.parametrize(("nested", "inside"), [(False, False), (True, False), (False, True)])
def test_the_real_runtime_yields_the_live_connections_attributes(tmp_path, nested, inside):
    with_conn(tmp_path, nested, inside)


def test_it_bites_attributes_read_from_the_connection_class(tmp_path, monkeypatch):
    # The fallback looks attributes up on the connection's class instead of the connection: methods still work when
    # called with it, but a property such as in_transaction answers its descriptor, not the live state.
    real = TransactionConnection.__getattr__

    def getattr_(self, name):
        if name == "in_transaction":
            return getattr(type(object.__getattribute__(self, "_raw")), name)
        return real(self, name)

    monkeypatch.setattr(TransactionConnection, "__getattr__", getattr_)
    with pytest.raises(AssertionError, match=f"{property_id(6)}.*conn.in_transaction"):
        with_conn(tmp_path)


def test_it_bites_a_yielded_connection_that_lost_the_live_one(tmp_path, monkeypatch):
    # The constructor keeps the statement callables but not the connection: every other attribute raises.
    real = TransactionConnection.__init__

    def init(self, raw, execute, executemany):
        real(self, raw, execute, executemany)
        del self._raw

    monkeypatch.setattr(TransactionConnection, "__init__", init)
    with pytest.raises(AssertionError, match=f"{property_id(6)}.*conn.in_transaction"):
        with_conn(tmp_path, nested=True)
