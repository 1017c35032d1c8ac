"""A database file that ends inside a page is damage, though no PRAGMA sees it (benchmarks/recovery_fuzz.py, seed 1024).

SQLite writes, extends and truncates the main file by whole pages only. Truncated to 90% of its size, the file ended
1228 bytes into its last page, the kv leaf holding one 3000-byte row. SQLite counts a partial page as a page and
reads its missing bytes as zeros, so ``quick_check`` and ``integrity_check`` both said ``ok`` while the acknowledged
row read as its first 139 characters followed by zeros, and ``reliability recover`` said "nothing to recover" (exit
0). Now every integrity check (the runtime's, and the read-only one ``recover`` and ``check`` use) reports a file
whose size is no whole number of pages, so recovery runs and replays the row from the redo journal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module

from pytest_dbfault.faults import CorruptFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager, cli

KV = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"
VALUE = "v918446" + "x" * 3000  # (the seed's row: too big to share a page, so it is alone on the last one)


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def manager(db_path: Path, **extra: object) -> DatabaseManager:
    """The seed's file: rollback journal, FULL, the redo journal on (replays what the backup lacks)."""
    settings: dict[str, object] = {"journal_mode": "DELETE", "synchronous": "FULL", "redo_journal": True}
    settings.update(extra)
    return DatabaseManager(fast_config(db_path, **settings))


def query(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite_module().connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def cut_inside_the_last_page(db_path: Path) -> None:
    """A backup, then two acknowledged rows past it; the real truncate fault then cuts the file a little after the
    start of user-5's value, inside the last page (where the seed-1024 sequence put it)."""
    cut(db_path, write_the_rows(db_path))


def write_the_rows(db_path: Path) -> float:
    """The seed's file, closed; the fraction of its size that ends it inside user-5's page."""
    db = manager(db_path)
    try:
        db.execute(KV)
        db.backup()
        db.execute("INSERT INTO kv VALUES ('user-6', ?)", ("v770472" + "x" * 3000,))
        db.execute("INSERT INTO kv VALUES ('user-5', ?)", (VALUE,))
    finally:
        db.close()
    page_size, pages = (query(db_path, f"PRAGMA {p}")[0][0] for p in ("page_size", "page_count"))
    size = os.path.getsize(db_path)
    assert size == pages * page_size
    at = Path(db_path).read_bytes().find(VALUE.encode())
    assert at >= (pages - 1) * page_size, "the layout changed: user-5's value is no longer on the file's last page"
    return (at + 132.5) / size


def cut(db_path: Path, fraction: float) -> None:
    page_size = query(db_path, "PRAGMA page_size")[0][0]
    CorruptFault(db_path, part="truncate", fraction=fraction).inject()
    # The damage the fuzzer met is in force: the file ends inside a page, SQLite finds nothing wrong with it,
    # and the acknowledged value reads cut short by zeros.
    assert os.path.getsize(db_path) % page_size
    assert query(db_path, "PRAGMA quick_check") == [("ok",)]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    read = dict(query(db_path, "SELECT k, v FROM kv"))["user-5"]
    assert read != VALUE and read.startswith("v918446") and read.endswith("\0"), read[:20]


def test_reliability_recover_does_not_call_it_nothing_to_recover(tmp_path: Path, capsys) -> None:
    db_path = tmp_path / "app.db"
    cut_inside_the_last_page(db_path)
    code = cli.main(["--db", str(db_path), "--json", "recover"], environ={
        "RELIABILITY_JOURNAL_MODE": "DELETE", "RELIABILITY_SYNCHRONOUS": "FULL", "RELIABILITY_BACKUP_INTERVAL": "0",
        "RELIABILITY_AUTO_RECOVER": "false", "RELIABILITY_SQLITE_MODULE": SQLITE_MODULE_NAME})
    doc = json.loads(capsys.readouterr().out)
    assert doc["value"]["recovered"] is True, doc  # (was: exit 0, "nothing to recover", the row zero-filled)
    assert code == cli.EXIT_OK and doc["value"]["ok"] is True, doc
    assert dict(query(db_path, "SELECT k, v FROM kv"))["user-5"] == VALUE
    assert os.path.getsize(db_path) % query(db_path, "PRAGMA page_size")[0][0] == 0


def test_the_runtimes_check_finds_it_and_recovers(tmp_path: Path) -> None:
    """Cut under a running manager (a start sees it by itself: the test below)."""
    db_path = tmp_path / "app.db"
    fraction = write_the_rows(db_path)
    db = manager(db_path, auto_recover=True)
    try:
        cut(db_path, fraction)
        report = db.check_integrity()
        assert not report.ok and any("ends inside a page" in p for p in report.problems), report
        assert db.monitor.recoveries == 1 and (db.monitor.last_recovery or {}).get("ok"), db.monitor.last_recovery
        assert dict(db.fetch_all("SELECT k, v FROM kv"))["user-5"] == VALUE
    finally:
        db.close()


def test_a_backup_cut_inside_its_last_page_is_not_verified(tmp_path: Path) -> None:
    """The backup's check (``verify_file``: every verified backup, every restore) sees the cut too."""
    from reliability.durability.backup import verify_file

    db_path = tmp_path / "app.db"
    db = manager(db_path)
    try:
        db.execute(KV)
        db.execute("INSERT INTO kv VALUES ('user-5', ?)", (VALUE,))
        info = db.backup()
    finally:
        db.close()
    assert verify_file(info.path, module=sqlite_module()) == []
    CorruptFault(info.path, part="truncate", fraction=0.97).inject()
    page_size = query(Path(info.path), "PRAGMA page_size")[0][0]
    assert os.path.getsize(info.path) % page_size  # (inside a page, as the fault's fraction puts it)
    problems = verify_file(info.path, module=sqlite_module())
    assert any("ends inside a page" in p for p in problems), problems


@pytest.mark.parametrize("auto_recover", [True, False], ids=["auto_recover", "no_auto_recover"])
def test_a_start_on_a_file_cut_inside_a_page_sees_the_damage(tmp_path: Path, auto_recover: bool) -> None:
    """No statement errs on the cut file, so a start looks at its size: the damage is the verdict at once, and
    with ``auto_recover`` the row is back before the application's first read (it read zeros before)."""
    db_path = tmp_path / "app.db"
    cut_inside_the_last_page(db_path)
    db = manager(db_path, auto_recover=auto_recover)
    try:
        if auto_recover:
            assert db.monitor.recoveries == 1 and (db.monitor.last_recovery or {}).get("ok"), db.monitor.last_recovery
            assert dict(db.fetch_all("SELECT k, v FROM kv"))["user-5"] == VALUE
            assert db.health().integrity_ok is not False
        else:
            health = db.health()
            assert health.integrity_ok is False and not health.healthy, health
            assert any("ends inside a page" in r for r in health.reasons), health.reasons
    finally:
        db.close()


def test_stray_bytes_appended_after_the_last_page_are_not_called_a_cut(tmp_path: Path) -> None:
    """Bytes appended to a sound file also end it inside a page; the problem says so instead of claiming a cut
    (the runtime cannot tell the two apart without reading the header behind SQLite's back: see
    ``cut_off_problems``), and SQLite still reads every row whole."""
    from reliability.health import check_integrity

    db_path = tmp_path / "app.db"
    db = manager(db_path)
    try:
        db.execute(KV)
        db.execute("INSERT INTO kv VALUES ('user-5', ?)", (VALUE,))
    finally:
        db.close()
    with open(db_path, "ab") as f:  # (hand-made: no fault appends; the file is closed, nobody holds a lock)
        f.write(b"\x5a" * 100)
    assert query(db_path, "PRAGMA quick_check") == [("ok",)]
    assert dict(query(db_path, "SELECT k, v FROM kv"))["user-5"] == VALUE
    report = check_integrity(str(db_path))
    problem = next(p for p in report.problems if "ends inside a page" in p)
    assert "appended" in problem and "cut off" in problem, problem
