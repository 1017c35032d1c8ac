"""A damaged redo writers table is damage met, never a sequence reused (benchmarks/recovery_fuzz.py, seed 452).

The writers table (``_reliability_redo_writers``: slot -> last committed sequence) is the database's half of the
redo journal's bookkeeping: each journaled commit takes the next sequence from it. A file truncated inside that
table's page reads its rows as NULLs. The runtime used to read on: the start said "could not read the committed
sequences" and served the file, the next commit took sequence 1 again (``max()`` skips NULLs), and a recovery
later stopped replaying at the repeated number, so an acknowledged row was lost. Elsewhere the same NULL raised a
bare ``TypeError``. Now a row no writer could have written is CORRUPT: at startup the file is marked damaged (and
recovered with ``auto_recover``), and a commit meeting it is refused, with nothing acknowledged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module

from pytest_dbfault.faults import CorruptFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseError, DatabaseManager
from reliability.redo import WRITERS_TABLE

KV = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def manager(db_path: Path, **extra: object) -> DatabaseManager:
    """Rollback journal and FULL (every commit takes a sequence row), the redo journal on."""
    settings: dict[str, object] = {"journal_mode": "DELETE", "synchronous": "FULL", "redo_journal": True}
    settings.update(extra)
    return DatabaseManager(fast_config(db_path, **settings))


def rows(db_path: Path) -> dict[str, str]:
    conn = sqlite_module().connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT k, v FROM kv").fetchall())
    finally:
        conn.close()


def cut_inside_the_writers_page(db_path: Path) -> None:
    """Truncate the file a tenth of a page into the writers table's root page (its last page): the real truncate
    fault, where the seed-452 sequence put it."""
    conn = sqlite_module().connect(str(db_path))
    try:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (WRITERS_TABLE,)).fetchone()[0]
        page_size, pages = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count"))
    finally:
        conn.close()
    assert root == pages, "the layout changed: the writers table is no longer the file's last page"
    size = os.path.getsize(db_path)
    CorruptFault(db_path, part="truncate", fraction=((root - 1) * page_size + page_size // 10) / size).inject()
    conn = sqlite_module().connect(str(db_path))
    try:
        problems = " ".join(r[0] for r in conn.execute("PRAGMA quick_check"))
    finally:
        conn.close()
    assert f"NULL value in {WRITERS_TABLE}.seq" in problems, problems  # the damage the fuzzer met is in force


def prepared(db_path: Path) -> None:
    db = manager(db_path)
    db.execute(KV)
    db.close()
    cut_inside_the_writers_page(db_path)


def test_a_start_on_it_recovers_and_an_acknowledged_row_survives_the_next_writer(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    prepared(db_path)
    db = manager(db_path, auto_recover=True)
    try:
        assert db.monitor.recoveries == 1, "the start served a file whose writers table reads as NULLs"
        last = db.monitor.last_recovery or {}
        # (The start's look at the file's size sees this cut before the writers table is read; the read itself
        # meets damage in the btree case below.)
        assert last.get("ok") and "ends inside a page" in str(last.get("reason")), last
        with db.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('user-9', 'acknowledged')")
    finally:
        db.close()
    other = manager(db_path, auto_recover=True)  # the next writer (seed 452: a process started and recovered)
    try:
        assert other.monitor.recoveries == 0, other.monitor.last_recovery
        other.execute("INSERT INTO kv VALUES ('a', 'w')")
    finally:
        other.close()
    assert rows(db_path) == {"user-9": "acknowledged", "a": "w"}


def test_without_auto_recover_the_start_marks_it_and_a_commit_is_refused(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    prepared(db_path)
    db = manager(db_path, auto_recover=False)
    try:
        assert db.monitor.integrity_ok is False, "the start did not see the damage it read"
        assert db.health().status.value != "healthy"
        with pytest.raises(DatabaseError) as refused:
            db.execute("INSERT INTO kv VALUES ('user-9', 'not acknowledged')")
        assert str(refused.value.kind) == "corrupt" and WRITERS_TABLE in str(refused.value), refused.value
    finally:
        db.close()
    assert rows(db_path) == {}  # refused, and nothing was committed under a reused sequence


def test_an_unreadable_writers_page_is_damage_at_startup_too(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    db = manager(db_path)
    db.execute(KV)
    db.close()
    CorruptFault(db_path, part="btree", table=WRITERS_TABLE, page="root", seed=3).inject()
    db = manager(db_path, auto_recover=False)
    try:
        assert db.monitor.integrity_ok is False, "the start read the writers table as 'cannot say' and served it"
        assert any(WRITERS_TABLE in p for p in db.monitor.integrity_problems), db.monitor.integrity_problems
    finally:
        db.close()
