"""A write given to ``fetch_one``/``fetch_all`` (``INSERT … RETURNING``) takes the write path: journaled like any write.

On the read path it committed with no redo record (inside a block it was left out of the block's record), and a
recovery from damage then reported ``ok`` without the row: silent loss (found in session 26). A read, ``WITH``
included, stays on the read path: it never waits for the write lock.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, LockHolder, fast_config

from pytest_dbfault.faults import make_fault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager
from reliability.executor import reads_only


def config(tmp_path: Path):
    return fast_config(tmp_path / "app.db", backup_dir=str(tmp_path / "backups"), audit_hmac_key="k")


@pytest.mark.parametrize("how", ["fetch_one", "fetch_all", "fetch_one in a block", "fetch_all in a block"])
def test_a_write_with_returning_through_fetch_is_recovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           how: str) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    db = DatabaseManager(config(tmp_path))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.backup()
        fetch = getattr(db, how.split()[0])
        sql = "INSERT INTO t (v) VALUES ('acknowledged') RETURNING id"
        if how.endswith("block"):
            with db.transaction():
                got = fetch(sql)
        else:
            got = fetch(sql)
        assert got in ((1,), [(1,)]), got  # (the caller got its rows: the write was acknowledged)
    finally:
        db.close()
    make_fault("corrupt", str(tmp_path / "app.db"), part="header", seed=1).inject()
    logging.disable(logging.CRITICAL)  # (the damaged file's startup complaints are not what is judged)
    try:
        db = DatabaseManager(config(tmp_path))
    finally:
        logging.disable(logging.NOTSET)
    try:
        report = db.recover()
        rows = db.fetch_all("SELECT v FROM t")
        assert rows == [("acknowledged",)], f"recovery ok={report.ok} {report.problems} left {rows}"
        assert report.ok, report.problems
    finally:
        db.close()


def test_reads_stay_on_the_read_path_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    db = DatabaseManager(fast_config(tmp_path / "app.db"))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (1)")
        with LockHolder(tmp_path / "app.db", mode="IMMEDIATE"):
            assert db.fetch_all("WITH x AS (SELECT id FROM t) SELECT id FROM x") == [(1,)]
            assert db.fetch_one("SELECT id FROM t") == (1,)
    finally:
        db.close()


@pytest.mark.parametrize(("sql", "read"), [
    ("SELECT 1", True), ("  -- why\n select 1", True), ("VALUES (1)", True), ("PRAGMA user_version", True),
    ("WITH x AS (SELECT 1) SELECT * FROM x", True),
    ("INSERT INTO t VALUES (1) RETURNING id", False), ("/* c */ DELETE FROM t RETURNING id", False),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING id", False),
    ("UPDATE t SET v = 1 RETURNING id", False), ("REPLACE INTO t VALUES (1) RETURNING id", False),
])
def test_which_statements_only_read(sql: str, read: bool) -> None:
    assert reads_only(sql) is read
