"""A database the runtime managed before that is missing at start is an incident, never a fresh start
(issue #15 item 2). Every test deletes (or empties) the real files with ``DisconnectFault`` while the
service is stopped; one kills a writer with SIGKILL first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_helpers import CLI_ENV, cli_runner, fast_config

from pytest_dbfault.faults import DisconnectFault
from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind


def make_history(tmp_path: Path, **changes: object) -> list[tuple[int, str]]:
    """A database with a verified backup and one acknowledged write after it, closed cleanly."""
    db = DatabaseManager(fast_config(tmp_path / "app.db", **changes))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(5)])
    db.backup()
    db.execute("INSERT INTO t VALUES (100, 'after the backup')")
    rows = db.fetch_all("SELECT id, v FROM t ORDER BY id")
    db.close()
    return rows


@pytest.fixture
def deleted(tmp_path):
    """``deleted()``: delete the stopped service's database with its -wal/-shm (``DisconnectFault``, left
    in force until the test ends: nothing of it is restored). ``deleted(empty=True)`` cuts it to 0 bytes."""
    faults = []

    def delete(empty: bool = False) -> None:
        mode = {"mode": "truncate", "fraction": 0.0} if empty else {"mode": "delete"}
        faults.append(DisconnectFault(tmp_path / "app.db", **mode).inject())

    yield delete
    for fault in faults:
        fault.heal()


def test_without_auto_recover_a_deleted_database_is_refused_not_recreated(tmp_path, deleted):
    rows = make_history(tmp_path, auto_recover=False)
    deleted()
    db = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False))
    try:
        health = db.health()
        assert str(health.status) == "unavailable"
        assert any("`reliability restore`" in r and "missing" in r for r in health.reasons), health.reasons
        for call in (lambda: db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),
                     lambda: db.fetch_all("SELECT * FROM t")):
            with pytest.raises(DatabaseError) as caught:
                call()
            assert caught.value.kind is ErrorKind.UNAVAILABLE
            assert "backup exists" in caught.value.user_message and "reliability restore" in caught.value.user_message
        assert not (tmp_path / "app.db").exists()  # no empty file took its place
        assert [b.verified for b in db.backups()] == [True]
        report = db.recover()
        assert report.ok, report.problems
        assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == rows
        assert str(db.health().status) == "healthy"
        db.execute("INSERT INTO t VALUES (200, 'served again')")
    finally:
        db.close()


def test_restore_puts_the_backup_back_and_serves_again(tmp_path, deleted):
    rows = make_history(tmp_path, auto_recover=False)
    deleted()
    with DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False)) as db:
        db.restore()
        assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == rows[:-1]  # the backup alone, as restore says
        assert str(db.health().status) == "healthy"


def test_an_emptied_database_file_is_missing_too(tmp_path, deleted):
    make_history(tmp_path, auto_recover=False)
    deleted(empty=True)
    with DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False)) as db:
        assert str(db.health().status) == "unavailable"
        assert os.path.getsize(tmp_path / "app.db") == 0  # inspection changed nothing


def test_with_auto_recover_the_backup_is_restored_and_the_journal_replayed(tmp_path, deleted):
    rows = make_history(tmp_path)
    deleted()
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == rows
        assert db.monitor.recoveries == 1 and db.monitor.last_recovery["ok"]
        assert str(db.health().status) == "healthy"


def test_with_auto_recover_and_no_journal_the_loss_after_the_backup_is_reported(tmp_path, deleted):
    rows = make_history(tmp_path, redo_journal=False)
    deleted()
    with DatabaseManager(fast_config(tmp_path / "app.db", redo_journal=False)) as db:
        assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == rows[:-1]
        health = db.health()
        assert str(health.status) == "degraded"
        assert any("redo journal is off" in r for r in health.reasons), health.reasons


def test_with_auto_recover_and_no_verified_backup_it_stays_refused(tmp_path, deleted):
    make_history(tmp_path, redo_journal=False)
    deleted()
    for manifest in (tmp_path / "app.db.backups").glob("*.json"):
        manifest.unlink()  # the backup file stays, unverified: history, but nothing to restore from
    with DatabaseManager(fast_config(tmp_path / "app.db", redo_journal=False)) as db:
        assert str(db.health().status) == "unavailable"
        with pytest.raises(DatabaseError) as caught:
            db.fetch_all("SELECT * FROM t")
        assert caught.value.kind is ErrorKind.UNAVAILABLE and "no verified backup" in caught.value.user_message
        assert not (tmp_path / "app.db").exists()


def test_a_database_never_written_is_a_fresh_start(tmp_path, deleted):
    with DatabaseManager(fast_config(tmp_path / "app.db")) as first:  # a journal header, no writes, no backups
        first.fetch_one("SELECT 1")  # (the file exists, empty of data)
    deleted()
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE t (v)")
        assert str(db.health().status) == "healthy"


WRITER = """
import sys
sys.path[:0] = {paths!r}
from runtime_helpers import fast_config
from reliability import DatabaseManager
db = DatabaseManager(fast_config({db!r}))
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
db.executemany("INSERT INTO t VALUES (?, ?)", [(i, "before") for i in range(10)])
db.backup()
for i in range(10, 30):
    db.execute("INSERT INTO t VALUES (?, 'after')", (i,))
print("acknowledged", flush=True)
sys.stdin.read()
"""


def test_a_writer_killed_then_its_database_deleted_is_refused_and_recovers_every_acknowledged_row(tmp_path, deleted):
    paths = [str(Path(__file__).parent), *sys.path]
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(paths=paths, db=str(tmp_path / "app.db"))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "acknowledged"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    deleted()
    with DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False)) as db:
        assert str(db.health().status) == "unavailable"
        assert db.recover().ok
        assert db.fetch_one("SELECT count(*) FROM t") == (30,)


def test_the_cli_reports_the_incident_and_restores(tmp_path, deleted, capsys, monkeypatch):
    run = cli_runner(tmp_path, capsys, monkeypatch, env_text=CLI_ENV + "RELIABILITY_AUTO_RECOVER=false\n")
    make_history(tmp_path, auto_recover=False)
    deleted()
    code, _, err = run("health")  # the CLI's inspection: a missing database is an error naming it (exit 3)
    assert code == 3 and "does not exist" in err and "restore" in err and "recover" in err
    assert not (tmp_path / "app.db").exists()
    code, out, _ = run("recover")
    assert code == 0, out
    code, out, _ = run("health")
    assert code == 0, out


@pytest.mark.parametrize("mode", ["rename", "delete"])
def test_a_file_that_vanishes_before_a_restarted_runtime_first_uses_it_is_not_replaced_by_an_empty_one(
        tmp_path: Path, mode: str) -> None:
    """Found by the degradation machine (restart, then an outage): a runtime that had not opened its
    connection yet reopened with ``mode=rwc`` and SQLite created an empty database at the path, so
    commands answered "does not match the database structure" instead of queueing, and their writes
    were lost. A file there at start has existed: its absence is an outage."""
    from reliability.degraded import Needs

    make_history(tmp_path)
    db = DatabaseManager(fast_config(tmp_path / "app.db"))
    db.commands.recheck_interval = 0.0
    db.commands.register("store", Needs.WRITE,
                         lambda d, i, v: d.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (i, v)).rowcount)
    fault = DisconnectFault(db, mode=mode, backup_before=True)
    fault.inject()
    try:
        result = db.commands.run("store", 200, "during the outage")
        assert result.status == "queued", result
        assert not (tmp_path / "app.db").exists()  # no empty stand-in was created
    finally:
        fault.heal()
    assert db.commands.run("store", 201, "after").status == "ok"
    rows = dict(db.fetch_all("SELECT id, v FROM t"))
    assert rows[100] == "after the backup" and rows[200] == "during the outage" and rows[201] == "after"
    db.close()
