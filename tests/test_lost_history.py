"""A file that lost its whole history with its -wal is an incident at the next start, never a healthy fresh start.

Found by ``benchmarks/recovery_fuzz.py`` (session 16): the table, its rows and the redo journal's writers table were
all only in the ``-wal``; the ``-wal`` was damaged (its salt) after the file moved away and back, so SQLite dropped
every frame. The restart found no writers table, took that as "cannot say", and reported healthy with the tables
gone, although the redo journal held every transaction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import CorruptFault, DisconnectFault
from reliability import DatabaseError, DatabaseManager


def history_only_in_a_lost_wal(path: Path, **settings: object) -> None:
    db = DatabaseManager(fast_config(path, journal_mode="WAL", **settings))
    try:
        db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        db.execute("INSERT INTO kv VALUES ('a', '1')")  # acknowledged: in the -wal only
        with DisconnectFault(db.path, mode="rename"), pytest.raises(DatabaseError):
            db.execute("INSERT INTO kv VALUES ('b', '2')")
        CorruptFault(db.path, part="wal_salt", seed=1).inject()  # every frame of the -wal is dropped
    finally:
        db.close()


def test_with_auto_recover_the_start_brings_the_history_back(tmp_path: Path) -> None:
    history_only_in_a_lost_wal(tmp_path / "app.db")
    with DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="WAL", auto_recover=True)) as db:
        assert db.monitor.recoveries == 1
        assert db.fetch_all("SELECT k, v FROM kv") == [("a", "1")]


def test_without_it_the_start_refuses_the_file_and_says_what_is_missing(tmp_path: Path) -> None:
    history_only_in_a_lost_wal(tmp_path / "app.db", auto_recover=False)
    with DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="WAL", auto_recover=False)) as db:
        report = db.health()
        assert str(report.status) == "unavailable", report
        with pytest.raises(DatabaseError) as info:
            db.fetch_all("SELECT k, v FROM kv")
        assert "committed transaction" in info.value.detail and "reliability recover" in info.value.detail
        assert db.recover().ok
        assert db.fetch_all("SELECT k, v FROM kv") == [("a", "1")]


def test_reliability_recover_sees_it_too_before_any_restart(tmp_path: Path, capsys) -> None:
    """The operator's entry point judges the file as a start does: ``recover`` replays the history, never "nothing to
    recover" (exit 0) over a file whose tables are gone."""
    import json

    from reliability import cli

    history_only_in_a_lost_wal(tmp_path / "app.db", auto_recover=False)
    code = cli.main(["--db", str(tmp_path / "app.db"), "--json", "recover"], environ={
        "RELIABILITY_JOURNAL_MODE": "WAL", "RELIABILITY_BACKUP_INTERVAL": "0", "RELIABILITY_AUTO_RECOVER": "false"})
    doc = json.loads(capsys.readouterr().out)
    assert code == cli.EXIT_OK and doc["value"]["recovered"] is True, doc
    with DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="WAL", auto_recover=False)) as db:
        assert db.fetch_all("SELECT k, v FROM kv") == [("a", "1")]
