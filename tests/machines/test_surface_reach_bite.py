"""Bite tests of the surface machine's rules for public entry points the rest of the main job never executed
(``benchmarks/surface_reach.py``): adapted SQL parameters through the redo journal, ``… RETURNING`` outside a
transaction, the cursor and ``executemany`` of ``db.transaction()``'s connection, and ``db.executemany`` rerun
after a lock. Each rule, called with fixed arguments, fails naming its property against a runtime with one
realistic defect of the class it guards against, and passes against the real runtime; one search of the whole
machine (fixed, derandomized) finds a defect of each class but the last.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import test_surface as surface_tests
from bite_settings import bite_settings

import reliability.redo as redo_module
from pytest_dbfault.machines import MACHINES, run_machine
from reliability import manager as manager_module
from reliability import tx_connection

BITE = bite_settings(max_examples=40, steps=15)
#: The searches of the RETURNING and flags rules: more examples, since the surface machine's rules grew (session 22:
#: the flags rule also draws bad input, fresh-runtime reads were added) and 40 no longer met either defect.
WIDE = bite_settings(max_examples=120, steps=15)


def bites(rule: str, args: tuple[Any, ...], prefix: str, match: str, base: Path, monkeypatch: pytest.MonkeyPatch,
          defect: Any, **drawn: Any) -> None:
    """``rule(*args)`` passes against the real runtime, then fails with ``prefix`` … ``match`` once ``defect``
    (a function of ``monkeypatch``) is planted."""
    machine = surface_tests.machine_with("surface", None, base / "good", **drawn)
    assert surface_tests.violated(machine, rule, *args) == ""
    defect(monkeypatch)
    machine = surface_tests.machine_with("surface", None, base / "broken", **drawn)
    found = surface_tests.violated(machine, rule, *args)
    assert found.startswith(prefix) and match in found, found


# -- item 3: parameters sqlite3 binds through an adapter or __conform__, through the redo journal ----------
def base_type_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal reduces a parameter to the int/str it subclasses before asking its adapter (the order
    sqlite3 does not use): an IntEnum stored by name is journaled as its number, a normalized str as typed."""
    real = redo_module._reduce_value

    def reduce(value: Any) -> Any:
        if type(value) not in redo_module._PLAIN and not isinstance(value, type):
            for base in (int, float, str):
                if isinstance(value, base):
                    return base, (base(value),)
        return real(value)

    monkeypatch.setattr(redo_module, "_reduce_value", reduce)


def unknown_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal asks only the adapter registry and stringifies any other object (``__conform__`` unseen)."""
    real = redo_module._reduce_value

    def reduce(value: Any) -> Any:
        if (type(value) not in redo_module._PLAIN and not isinstance(value, (type, int, float, str, bytes))
                and (type(value), sqlite3.PrepareProtocol) not in sqlite3.adapters):
            return str, (str(value),)
        return real(value)

    monkeypatch.setattr(redo_module, "_reduce_value", reduce)


@pytest.mark.parametrize("how", ["execute", "named", "executemany"])
def test_adapted_parameters_base_type_first_bites(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("adapted_parameters_then_damage", (["enum", "str_subclass"], 2, how, "header", 3), "p13_",
          "acknowledged writes are missing or changed", tmp_path, monkeypatch, base_type_first)


def test_adapted_parameters_conform_ignored_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("adapted_parameters_then_damage", (["conform"], 2, "execute", "btree_root", 3), "p13_",
          "SKU-00042", tmp_path, monkeypatch, unknown_as_text)


def test_adapted_parameters_search_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base_type_first(monkeypatch)
    # (WIDE since session 29: restore_backup's draw of a second manager moved the surface machine's search, and 40
    # examples no longer met this rule with damage after it; the direct-call bites above judge the same check.)
    with pytest.raises(AssertionError, match=r"p13_.*acknowledged writes are missing or changed"):
        run_machine(MACHINES["surface"], settings_=WIDE, base_dir=str(tmp_path), enforce={13})


# -- item 2: INSERT/UPDATE/DELETE … RETURNING outside a transaction (the journaled autocommit path) -----------
def fetchmany_keeps_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fetchmany`` returns the next rows without moving past them."""
    monkeypatch.setattr(manager_module._Rows, "fetchmany", lambda self, size=1: self._rows[:size])


def rowcount_before_stepping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows' ``rowcount`` is read from the cursor before its rows are stepped (sqlite3 counts as it steps)."""
    def init(self: Any, cur: sqlite3.Cursor) -> None:
        self.description, self.rowcount, self.lastrowid = cur.description, cur.rowcount, cur.lastrowid
        self._rows = cur.fetchall()

    monkeypatch.setattr(manager_module._Rows, "__init__", init)


def test_returning_fetchmany_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("write_returning", (4, 3, "insert", "fetchmany", 2), "p06_", "expected each changed row once", tmp_path,
          monkeypatch, fetchmany_keeps_rows)


def test_returning_rowcount_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (What the cursor says before stepping depends on the driver: 0 on the stdlib's, another number on pysqlite3's.)
    bites("write_returning", (4, 2, "insert", "fetchall", 1), "p06_", "and 2 (the rows it changed)", tmp_path,
          monkeypatch, rowcount_before_stepping)


def test_returning_search_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rowcount_before_stepping(monkeypatch)
    with pytest.raises(AssertionError, match=r"p06_.*RETURNING .*rowcount"):
        run_machine(MACHINES["surface"], settings_=WIDE, base_dir=str(tmp_path), enforce={6})


# -- item 1: the connection and cursor of `with db.transaction() as conn:` ------------------------------------
def executemany_on_the_raw_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """``conn.executemany`` goes straight to the sqlite3 connection (commits with the transaction, never journaled:
    the defect the module docstring of ``reliability.tx_connection`` describes, for executemany)."""
    monkeypatch.setattr(tx_connection.TransactionConnection, "executemany",
                        lambda self, sql, seq: self._raw.executemany(sql, seq))


def cursor_executemany_forgets_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cursor's ``executemany`` runs the batch but keeps the previous statement's result."""
    def executemany(self: Any, sql: str, seq: Any) -> Any:
        self.connection.executemany(sql, seq)
        return self

    monkeypatch.setattr(tx_connection.TransactionCursor, "executemany", executemany)


def test_transaction_executemany_unjournaled_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("transaction_cursor", (5, 2, "conn_executemany", "fetchall", 1, "header", 3), "p13_",
          "acknowledged writes are missing or changed", tmp_path, monkeypatch, executemany_on_the_raw_connection)


def test_transaction_cursor_executemany_rowcount_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("transaction_cursor", (5, 3, "cursor_executemany", "fetchone", 1, None, 3), "p06_", "rowcount [-1]",
          tmp_path, monkeypatch, cursor_executemany_forgets_result)


def test_transaction_cursor_search_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executemany_on_the_raw_connection(monkeypatch)
    with pytest.raises(AssertionError, match=r"p13_.*acknowledged writes are missing or changed"):
        run_machine(MACHINES["surface"], settings_=BITE, base_dir=str(tmp_path), enforce={13})


# -- item 4: db.executemany rerun after a lock --------------------------------------------------------------
def batch_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """``db.executemany`` hands the caller's iterable to the transaction as it is: a rerun after a failed COMMIT
    finds a generator consumed by the attempt that failed, and commits an empty batch."""
    def executemany(self: Any, sql: str, seq_of_params: Any) -> Any:
        with self._lock:
            if not self.transactions.depth:
                return self.run_in_transaction(self.executemany, sql, seq_of_params)
            return self.executor.executemany(sql, seq_of_params)

    monkeypatch.setattr(manager_module.DatabaseManager, "executemany", executemany)


def test_executemany_rerun_after_a_lock_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    # (Met through a writer's lock instead, BEGIN fails before the generator is read: the batch commits, but the
    # redo journal cannot record a consumed generator and a later recovery loses it, which P13 finds.)
    # (A few draws of the lock, as the machine would make them: the rule does nothing when its fault cannot be put
    # in force at that moment, which a loaded CI worker met once on pysqlite3; each draw passes on the runtime.)
    found = ""
    for attempt, (param, sleeps) in enumerate(((0, 1), (1, 1), (2, 2), (3, 1))):
        args = (2, 3, True, param, sleeps, True)
        good = surface_tests.machine_with("surface", None, tmp_path / f"good{attempt}", journal_mode="DELETE")
        assert surface_tests.violated(good, "executemany_under_a_lock", *args) == ""
        with monkeypatch.context() as planted:
            batch_not_kept(planted)
            broken = surface_tests.machine_with("surface", None, tmp_path / f"broken{attempt}", journal_mode="DELETE")
            found = surface_tests.violated(broken, "executemany_under_a_lock", *args)
        if found:
            break
    if not found:
        # Seen only in the loaded pysqlite3 tox cell: no draw made the first COMMIT fail, so nothing was rerun and
        # the rule's P6 check had nothing to judge. The planted defect still showed, on the other route the comment
        # above names: the consumed generator reached the redo journal, which refused it (P13 then finds the loss
        # at the next recovery). Accepted as that route's evidence, and named here as the weaker of the two.
        refused = [r.getMessage() for r in caplog.records if "cannot journal a parameter of type generator" in
                   r.getMessage()]
        assert refused, "the planted defect left no trace: neither the P6 check nor the journal's refusal"
        return
    assert found.startswith("p06_") and "all or nothing" in found, found


# -- item 5: `reliability flags list` / `flags get NAME` and admin.list_flags ---------------------------------
def inspector_keeps_json_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-only inspector returns each flag's stored JSON text instead of its value (``true``, ``"on"``)."""
    from reliability import inspection
    from reliability.admin import Flag

    real = inspection.Inspector.flags

    def flags(self: Any, name: str | None = None) -> list[Any]:
        return [Flag(f.name, json.dumps(f.value, ensure_ascii=False), f.updated_at, f.updated_by)
                for f in real(self, name)]

    monkeypatch.setattr(inspection.Inspector, "flags", flags)


def flags_get_reads_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """``flags get NAME`` reads every flag and shows the first (the name's filter forgotten)."""
    from reliability import inspection

    real = inspection.Inspector.flags
    monkeypatch.setattr(inspection.Inspector, "flags", lambda self, name=None: real(self))


def list_flags_drops_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin API's listing pages its rows and drops the last one (an off-by-one ``LIMIT``)."""
    from reliability import admin

    real = admin._list_flags
    monkeypatch.setattr(admin, "_list_flags", lambda db: real(db)[:-1])


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_flags_list_shows_values_bites(journal_mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("flags_from_the_command_line", ({"beta": True, "größe": "日本語 ✓"}, None, 0), "p14_",
          "`reliability flags list` exited 0 showing", tmp_path, monkeypatch, inspector_keeps_json_text,
          journal_mode=journal_mode)


def test_flags_get_names_its_flag_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (under a writer's lock in WAL mode: a read still answers, and must answer exactly: P8)
    bites("flags_from_the_command_line", ({"beta": 1, "ops:maintenance": "off"}, "write", 1), "p08_",
          "`reliability flags get ops:maintenance` under a write lock exited 0 showing 1", tmp_path, monkeypatch,
          flags_get_reads_the_first, journal_mode="WAL")


def test_admin_list_flags_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bites("flags_from_the_command_line", ({"beta": False, "checkout.v2": 7}, None, 0), "p14_",
          "admin.list_flags answered 'ok'", tmp_path, monkeypatch, list_flags_drops_the_last)


def test_flags_search_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inspector_keeps_json_text(monkeypatch)
    with pytest.raises(AssertionError, match=r"p14_.*`reliability flags (list|get .*)` exited 0 showing"):
        run_machine(MACHINES["surface"], settings_=WIDE, base_dir=str(tmp_path), enforce={14})

