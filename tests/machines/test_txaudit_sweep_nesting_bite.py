"""The transactions machine judges every nesting of ``db.transaction()`` and ``db.run_in_transaction(fn)`` two or
three levels deep, an inner failure caught by the level around it (rules ``nested_forms``, ``nested_once``: a failed
level undoes its own writes and those of the levels inside it, nothing else; ``db.transactions.depth`` is the level's
depth). Each check fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.transaction import TransactionManager

BITE = bite_settings(max_examples=60, steps=15)


def test_it_bites_a_savepoint_released_instead_of_rolled_back(tmp_path, monkeypatch):
    # A failed nested level "ends its savepoint": RELEASE without ROLLBACK TO keeps its writes in the outer
    # transaction, which commits them when the application caught the failure and carried on.
    real = TransactionManager._rollback

    def rollback(self, conn, level, name):
        if level == 0:
            return real(self, conn, level, name)
        for hook in self.savepoint_hooks:
            hook("rollback", level)
        if conn.in_transaction:
            conn.execute(f"RELEASE {name}")
        return None

    monkeypatch.setattr(TransactionManager, "_rollback", rollback)
    # (The older rules with_conn_in_nested_transaction and nested_transaction meet it too, each with its own message:
    # any is a catch; which one comes first moves with the machine's rules.)
    with pytest.raises(AssertionError, match=r"p06_transaction_atomicity violated .*(nested .*raises.*the file holds|"
                                             r"in a nested db.transaction\(\)|"
                                             r"nested transaction \(inner fails: True.*left)"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={6})


def test_it_bites_a_nested_run_in_transaction_run_inline(tmp_path, monkeypatch):
    # "Inside another transaction there is nothing to retry": the nested run_in_transaction calls fn directly, in
    # the enclosing transaction (no savepoint of its own), so a failure of fn the caller catches keeps its writes.
    real = TransactionManager.run

    def run(self, fn, args=(), kwargs=None, **options):
        if self.depth:
            return fn(*args, **(kwargs or {}))
        return real(self, fn, args, kwargs, **options)

    monkeypatch.setattr(TransactionManager, "run", run)
    with pytest.raises(AssertionError, match=r"(p06_transaction_atomicity|p07_transaction_rollback) violated .*"
                                             r"nested .*run_in_transaction"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={6, 7})


def test_it_bites_a_deferred_begin(tmp_path, monkeypatch):
    # "BEGIN is enough, the first write takes the lock": a deferred BEGIN lets another writer in between the
    # transaction's start and its first write (and a read-then-write transaction then fails at its first write).
    import inspect
    import textwrap

    from reliability import transaction as module

    source = textwrap.dedent(inspect.getsource(TransactionManager.transaction))
    assert source.count('conn.execute("BEGIN IMMEDIATE" if level == 0') == 1
    namespace: dict[str, object] = {}
    deferred = source.replace('conn.execute("BEGIN IMMEDIATE" if', 'conn.execute("BEGIN" if')
    exec(compile(deferred, module.__file__, "exec"), module.__dict__, namespace)
    monkeypatch.setattr(TransactionManager, "transaction", namespace["transaction"])
    with pytest.raises(AssertionError, match=r"p06_transaction_atomicity violated .*holds no write lock before its "
                                             r"first statement"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={6})
