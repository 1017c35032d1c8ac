"""A write that changed no rows is journaled too: whether it changes rows is decided on the file it ran on.

recovery_fuzz seed 906: an index entry changed in place (no error, ``quick_check`` passes) hid a row from
lookups by key. An acknowledged ``DELETE ... WHERE k = ?`` then changed nothing, so it left no redo record, and
the recovery that restored the last backup brought the deleted row back and said ok. The same holds for an
``UPDATE`` by key (the restored row keeps its old value) and for a batch. Every form of write is checked here
with the real fault: the row must end as the application asked once recovery has run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module

from pytest_dbfault.faults import CorruptFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager
from reliability.redo import journal_files, read_journal

KV = "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"
KEYS = [f"user-{i}" for i in range(5)]


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def manager(db_path: Path, journal_mode: str) -> DatabaseManager:
    return DatabaseManager(fast_config(db_path, journal_mode=journal_mode, synchronous="FULL", redo_journal=True,
                                       auto_recover=False))


def rows(db_path: Path) -> dict[str, str]:
    conn = sqlite_module().connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT k, v FROM kv NOT INDEXED"))
    finally:
        conn.close()


def hidden_row(db_path: Path, journal_mode: str) -> str:
    """Five rows and a backup; then the real fault changes one key of the primary key's index in place.
    Returns the key a lookup no longer finds (the row is still in the table)."""
    db = manager(db_path, journal_mode)
    try:
        db.execute(KV)
        for k in KEYS:
            db.execute("INSERT INTO kv VALUES (?, ?)", (k, "old"))
        db.backup()
    finally:
        db.close()
    CorruptFault(db_path, part="index_entry", index="sqlite_autoindex_kv_1", seed=3, checkpoint=True).inject()
    db = manager(db_path, journal_mode)
    try:
        hidden = [k for k in KEYS if db.fetch_one("SELECT k FROM kv WHERE k = ?", (k,)) is None]
    finally:
        db.close()
    assert len(hidden) == 1, hidden  # (the fault's documented effect, else the test would prove nothing)
    assert set(rows(db_path)) == set(KEYS)
    return hidden[0]


def _execute(db: DatabaseManager, sql: str, params: tuple[str, ...]) -> None:
    db.execute(sql, params)


def _transaction(db: DatabaseManager, sql: str, params: tuple[str, ...]) -> None:
    with db.transaction() as conn:
        conn.execute(sql, params)


def _run_in_transaction(db: DatabaseManager, sql: str, params: tuple[str, ...]) -> None:
    db.run_in_transaction(lambda: db.execute(sql, params))


def _executemany(db: DatabaseManager, sql: str, params: tuple[str, ...]) -> None:
    db.executemany(sql, [params])


FORMS: dict[str, Callable[[DatabaseManager, str, tuple[str, ...]], None]] = {
    "execute": _execute, "transaction": _transaction, "run_in_transaction": _run_in_transaction,
    "executemany": _executemany}


#: Each way of writing the statement: its verb must be found behind a leading comment or a common table
#: expression, or the write is taken for a query and left out of the journal when it changes nothing.
WRITES = {
    "delete": "DELETE FROM kv WHERE k = ?",
    "update": "UPDATE kv SET v = ? WHERE k = ?",
    "cte_delete": "WITH gone(k) AS (SELECT ?) DELETE FROM kv WHERE k IN (SELECT k FROM gone)",
    "commented_update": "/* set by the app */ UPDATE kv SET v = ? WHERE k = ?",
}


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_that_missed_its_row_through_a_damaged_index_is_replayed(
        tmp_path: Path, journal_mode: str, form: str, write: str) -> None:
    db_path = tmp_path / "app.db"
    key = hidden_row(db_path, journal_mode)
    sql = WRITES[write]
    params = (key,) if write.endswith("delete") else ("new", key)
    db = manager(db_path, journal_mode)
    try:
        FORMS[form](db, sql, params)  # acknowledged
        assert rows(db_path)[key] == "old"  # (through the damaged index it missed its row)
        report = db.recover()
    finally:
        db.close()
    assert report.ok, report.problems
    after = rows(db_path)
    if write.endswith("delete"):
        assert key not in after, f"recovery brought back {key}, which the application deleted"
    else:
        assert after[key] == "new", f"recovery kept {key}'s old value over an acknowledged update"
    assert {k: v for k, v in after.items() if k != key} == {k: "old" for k in KEYS if k != key}


def test_a_write_that_changes_nothing_on_a_sound_file_is_recorded_and_replays_as_nothing(tmp_path: Path) -> None:
    """The record costs a sequence; replayed at its place it changes nothing, as it did."""
    db_path = tmp_path / "app.db"
    db = manager(db_path, "WAL")
    try:
        db.execute(KV)
        db.execute("INSERT INTO kv VALUES ('a', '1')")
        db.backup()
        db.execute("DELETE FROM kv WHERE k = 'nobody'")
        db.execute("UPDATE kv SET v = '2' WHERE k = 'a'")
        db.execute("DELETE FROM kv WHERE k = 'a' AND v = '1'")  # (changes nothing: v is '2' now)
        entries = [sql for _slot, path in journal_files(db.config.redo_journal_file)
                   for _seq, ops in read_journal(path).entries for sql, *_ in ops]
        assert entries.count("DELETE FROM kv WHERE k = 'nobody'") == 1, entries
        assert entries.count("DELETE FROM kv WHERE k = 'a' AND v = '1'") == 1, entries
        # A query through execute() is no write: nothing recorded for it.
        db.execute("SELECT * FROM kv")
        assert not any(sql.startswith("SELECT") for _s, p in journal_files(db.config.redo_journal_file)
                       for _q, ops in read_journal(p).entries for sql, *_ in ops)
        report = db.recover()
    finally:
        db.close()
    assert report.ok, report.problems
    assert rows(db_path) == {"a": "2"}
