"""Verified online backups, rotation, restore and the backup schedule — real files, real writers."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from reliability import DatabaseManager, ReliabilityConfig
from reliability.durability.backup import BackupError, read_sequence


def config(tmp_path: Path, **changes: object) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(tmp_path / "app.db"), backup_interval=0, quick_check_interval=0,
                             integrity_check_interval=0, busy_timeout_ms=50, auto_recover=False).replace(**changes)


def rows(path: str | Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def seeded(tmp_path: Path, **changes: object) -> DatabaseManager:
    db = DatabaseManager(config(tmp_path, **changes))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t (v) VALUES (?)", [(f"row {i}",) for i in range(50)])
    return db


def damage_leaf(path: Path) -> None:
    """Garbage into the first table leaf page: quick_check fails, the header stays valid."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size + 8)
        f.write(os.urandom(64))


def test_a_backup_is_verified_private_listed_and_holds_the_data(tmp_path):
    with seeded(tmp_path) as db:
        info = db.backup()
        assert info.verified and info.size > 0
        assert stat.S_IMODE(os.stat(info.path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(Path(info.path).parent).st_mode) == 0o700
        assert not any(Path(info.path).parent.glob(".*tmp*"))
        assert db.backups() == [info]
        assert rows(info.path) == db.fetch_all("SELECT id, v FROM t ORDER BY id")
        assert db.health().last_backup_at == info.created_at
        assert not Path(info.path + "-wal").exists()  # self-contained: safe to copy as one file


def test_rotation_keeps_the_configured_number_newest_first(tmp_path):
    with seeded(tmp_path, backup_keep=2) as db:
        made = []
        for i in range(4):
            db.execute("INSERT INTO t (v) VALUES (?)", (f"extra {i}",))
            made.append(db.backup())
        listed = db.backups()
    assert [b.path for b in listed] == [made[3].path, made[2].path]
    assert not Path(made[0].path).exists() and not Path(made[1].path).exists()


def test_a_backup_that_fails_verification_is_discarded_and_reported(tmp_path):
    db = seeded(tmp_path)
    good = db.backup()
    db.close()
    damage_leaf(tmp_path / "app.db")
    with DatabaseManager(config(tmp_path)) as db:
        with pytest.raises(BackupError, match="failed integrity_check and was discarded"):
            db.backup()
        assert db.backups() == [good]
        assert [p.name for p in Path(good.path).parent.iterdir() if p.suffix != ".json"] == [Path(good.path).name]
        report = db.health()
        assert any("the last backup failed" in r for r in report.reasons)
        # The failed copy sent the source to the full check, which found the damaged leaf: the file is damaged.
        assert db.monitor.integrity_ok is False and str(report.status) == "unavailable", report


def test_a_backup_completes_while_another_connection_commits_every_few_ms(tmp_path):
    db = seeded(tmp_path)
    db.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 500,) for _ in range(2000)])
    stop = threading.Event()
    commits = []

    def writer() -> None:
        conn = sqlite3.connect(tmp_path / "app.db", timeout=5, isolation_level=None)
        while not stop.is_set():
            conn.execute("INSERT INTO t (v) VALUES ('concurrent')")
            commits.append(1)
            time.sleep(0.003)
        conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while len(commits) < 5:
            time.sleep(0.005)
        infos = [db.backup() for _ in range(3)]
    finally:
        stop.set()
        thread.join()
        db.close()
    assert all(i.verified for i in infos)
    assert len(commits) > 5
    assert len(rows(infos[-1].path)) >= 2050


def test_restore_puts_back_the_state_at_backup_time_and_keeps_the_replaced_files(tmp_path):
    with seeded(tmp_path) as db:
        info = db.backup()
        snapshot = db.fetch_all("SELECT id, v FROM t ORDER BY id")
        db.execute("DELETE FROM t WHERE id < 10")
        db.execute("INSERT INTO t (v) VALUES ('after the backup')")
        # Another reader keeps the WAL alive, so its frames would leak into a restored file left beside it.
        reader = sqlite3.connect(db.path)
        reader.execute("SELECT count(*) FROM t").fetchone()
        restored = db.restore()
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (42,)  # it still sees the old file
        reader.close()
        assert restored.path == info.path
        assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == snapshot
        db.execute("INSERT INTO t (v) VALUES ('writes work after restore')")
        assert db.check_integrity(full=True).ok
    kept = sorted(p.name for p in tmp_path.iterdir() if ".replaced-" in p.name)
    assert kept and any(name.endswith("-wal") for name in kept)
    assert rows(tmp_path / "app.db")[-1][1] == "writes work after restore"


def test_restore_by_name_refuses_a_damaged_backup_and_changes_nothing(tmp_path):
    with seeded(tmp_path) as db:
        info = db.backup()
        damage_leaf(Path(info.path))
        db.execute("INSERT INTO t (v) VALUES ('kept')")
        with pytest.raises(BackupError, match="fails integrity_check"):
            db.restore(info.path)
        assert db.fetch_one("SELECT count(*) FROM t") == (51,)
        assert not db.backups()[0].verified  # its size still matches, but restore re-checked it
        with pytest.raises(BackupError, match="does not exist"):
            db.restore(tmp_path / "nope.sqlite")


def test_a_backup_records_the_redo_sequence_it_contains(tmp_path):
    with seeded(tmp_path) as db:
        info = db.backup()
        assert info.last_seq == read_sequence(info.path) == db.durability.redo.seq  # type: ignore[union-attr]
    with seeded(tmp_path / "off", redo_journal=False) if (tmp_path / "off").mkdir() is None else None as db2:
        assert db2.backup().last_seq is None


def test_backups_run_on_schedule_from_a_daemon_thread_that_stops_on_close(tmp_path):
    db = seeded(tmp_path, backup_interval=0.05)
    thread = db.durability.scheduler._thread
    assert thread is not None and thread.daemon
    deadline = time.monotonic() + 5
    while len(db.backups()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    db.close()
    assert len(db.backups()) >= 2
    assert not thread.is_alive()


def test_backup_inside_a_transaction_is_refused(tmp_path):
    with seeded(tmp_path) as db:
        with pytest.raises(BackupError, match="inside a transaction"), db.transaction():
            db.execute("INSERT INTO t (v) VALUES ('uncommitted')")
            db.backup()
        assert db.fetch_one("SELECT count(*) FROM t") == (50,)
