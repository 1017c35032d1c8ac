"""Health counters, integrity checks on really damaged files, and the maintenance schedule."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliability import DatabaseManager, ReliabilityConfig
from reliability.durability.upkeep import Scheduler
from reliability.errors import DatabaseError
from reliability.health import HealthMonitor, check_integrity


def config(tmp_path: Path | str, **changes: object) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(Path(tmp_path) / "app.db"), backup_interval=0, quick_check_interval=0,
                             integrity_check_interval=0, busy_timeout_ms=50, auto_recover=False,
                             redo_journal=False).replace(**changes)


@pytest.fixture(scope="module")
def healthy_db(tmp_path_factory) -> Path:
    """A database with a table spanning many pages and an index, closed cleanly."""
    path = tmp_path_factory.mktemp("healthy") / "base.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"value-{i:06d}" * 3,) for i in range(3000)])
    conn.execute("COMMIT")
    conn.close()
    return path


def damaged_copy(src: Path, dest: Path, *, page: int | str, offset: int, data: bytes) -> Path:
    shutil.copy(src, dest)
    conn = sqlite3.connect(dest)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    if isinstance(page, str):  # the root page of a named table or index
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (page,)).fetchone()[0]
    conn.close()
    with open(dest, "r+b") as f:
        f.seek((int(page) - 1) * page_size + offset)
        f.write(data)
    return dest


def test_a_healthy_file_passes_both_checks(healthy_db):
    assert check_integrity(str(healthy_db)).ok
    full = check_integrity(str(healthy_db), full=True)
    assert (full.ok, full.problems, full.kind) == (True, [], "full")


def test_header_damage_fails_the_quick_check(healthy_db, tmp_path):
    bad = damaged_copy(healthy_db, tmp_path / "h.db", page=1, offset=0, data=b"\x00" * 16)
    report = check_integrity(str(bad))
    assert not report.ok and "file is not a database" in report.problems[0]


def test_btree_page_damage_fails_the_quick_check(healthy_db, tmp_path):
    conn = sqlite3.connect(healthy_db)
    leaf = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0] + 5
    conn.close()
    bad = damaged_copy(healthy_db, tmp_path / "b.db", page=leaf, offset=100, data=os.urandom(200))
    report = check_integrity(str(bad))
    assert not report.ok and any("tree page" in p or "malformed" in p for p in report.problems)


def test_index_content_damage_is_found_by_the_full_check(healthy_db, tmp_path):
    conn = sqlite3.connect(healthy_db)
    leaf = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't_v'").fetchone()[0] + 1
    conn.close()
    # Change key bytes inside index cells: the page stays well-formed, its entries no longer match rows.
    bad = damaged_copy(healthy_db, tmp_path / "i.db", page=leaf, offset=4000, data=b"zzzz")
    report = check_integrity(str(bad), full=True)
    assert not report.ok and any("missing from index" in p or "t_v" in p for p in report.problems)


def test_foreign_key_violations_are_reported(tmp_path):
    path = tmp_path / "fk.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE p (id INTEGER PRIMARY KEY); "
                       "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id)); "
                       "INSERT INTO c VALUES (1, 42);")
    conn.close()
    report = check_integrity(str(path))
    assert not report.ok and report.problems == ["foreign key violation: c rowid 1 references missing p row"]


def test_a_failed_check_marks_the_database_unavailable_in_health(healthy_db, tmp_path):
    damaged_copy(healthy_db, tmp_path / "app.db", page="t", offset=0, data=b"\xff" * 64)
    with DatabaseManager(config(tmp_path)) as db:
        report = db.check_integrity()
        assert not report.ok
        health = db.health()
        assert str(health.status) == "unavailable"
        assert health.integrity_ok is False and health.last_integrity_check_at is not None
        assert any("marked corrupt" in r for r in health.reasons)


simple_ops = st.lists(st.sampled_from(["execute", "fetch_one", "fetch_all", "executemany", "transaction",
                                       "constraint"]), max_size=40)


@settings(max_examples=30, deadline=None)
@given(ops=simple_ops)
def test_health_counters_equal_the_operations_actually_performed(ops):
    with tempfile.TemporaryDirectory() as tmp, DatabaseManager(config(tmp)) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t (id, v) VALUES (1, 'one')")
        db.monitor.reset()
        expected: dict[str, int] = {}
        errors = 0
        for op in ops:
            if op == "execute":
                db.execute("UPDATE t SET v = 'x' WHERE id = 1")
            elif op == "fetch_one":
                db.fetch_one("SELECT v FROM t WHERE id = 1")
            elif op == "fetch_all":
                db.fetch_all("SELECT * FROM t")
            elif op == "executemany":
                # Outside a transaction the manager wraps it in one: both are counted.
                db.executemany("INSERT OR REPLACE INTO t (id, v) VALUES (?, ?)", [(2, "a"), (3, "b")])
                expected["transaction"] = expected.get("transaction", 0) + 1
            elif op == "transaction":
                with db.transaction():
                    pass
            else:
                with pytest.raises(DatabaseError):
                    db.execute("INSERT INTO t (id, v) VALUES (1, 'duplicate')")
                errors += 1
                continue
            expected[op] = expected.get(op, 0) + 1
        report = db.health()
        assert report.operations == expected
        assert report.errors == ({"constraint": errors} if errors else {})
        assert report.retries == 0
        if expected:
            lat = report.latency_ms
            assert 0 <= lat["p50"] <= lat["p95"] <= lat["p99"]


def test_latency_percentiles_come_from_the_recorded_samples():
    m = HealthMonitor()
    for ms in range(1, 101):
        m.observe("execute", ms / 1000)
    assert m.latency_percentiles() == {"p50": 51.0, "p95": 96.0, "p99": 100.0}


def test_the_health_report_carries_backup_redo_and_schema_details(tmp_path):
    with DatabaseManager(config(tmp_path, redo_journal=True)) as db:
        db.execute("CREATE TABLE t (x)")
        info = db.backup()
        report = db.health().to_dict()
    assert report["last_backup_at"] == info.created_at
    assert report["redo"]["owned"] and report["redo"]["base"] == info.last_seq
    assert report["status"] == "healthy" and report["wal_size"] is not None


def test_the_scheduler_runs_tasks_and_survives_a_failing_one_then_stops():
    calls: list[str] = []

    def boom() -> None:
        calls.append("boom")
        raise RuntimeError("scheduled task failure")

    scheduler = Scheduler([("ok", 0.01, lambda: calls.append("ok")), ("boom", 0.01, boom), ("off", 0, boom)])
    scheduler.start()
    deadline = time.monotonic() + 5
    while (calls.count("ok") < 3 or calls.count("boom") < 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert calls.count("ok") >= 3 and calls.count("boom") >= 3
    assert not scheduler.running
    assert "reliability-maintenance" not in [t.name for t in threading.enumerate()]


def test_a_task_added_after_start_runs():
    """Scheduler.add after start (Trust.database_back's schema re-check, the one such caller: a restore or recovery
    whose schema check met a lock) runs the task, also when the schedule started empty (no thread yet).
    (No machine can tell: every task a machine configures is added before start, so add's restart is judged here.)"""
    for first in ([], [("ok", 0.01, lambda: None)]):
        scheduler = Scheduler(list(first))
        scheduler.start()
        calls: list[str] = []
        scheduler.add("late", 0.01, lambda calls=calls: calls.append("late"))
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        scheduler.stop()
        assert len(calls) >= 2, f"a task added after start (schedule {first!r}) ran {len(calls)} time(s) in 5 s"


def test_close_stops_the_maintenance_thread(tmp_path):
    db = DatabaseManager(config(tmp_path, quick_check_interval=0.01))
    db.execute("CREATE TABLE t (x)")
    deadline = time.monotonic() + 5
    while db.monitor.last_integrity_check_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.monitor.integrity_ok is True
    db.close()
    assert not db.durability.scheduler.running
