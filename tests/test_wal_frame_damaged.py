"""A WAL frame damaged under an open connection is damage found by every integrity check (recovery fuzzer, seeds
628 and 1122).

SQLite checks a WAL frame's checksum only when it rebuilds the WAL index (``-shm``) from the file. Garbage written
into the page data of a committed frame while the runtime had the database open was read through the index its
connection kept, unchecked: ``quick_check`` passed over a row no reader could decode. Every integrity check now
verifies the committed frames' chained checksums, and the recovery restores the backup and replays the redo
journal.

Not covered, on purpose: a close that is SQLite's last one still checkpoints the damaged frame into the database
file, where nothing tells it from data. Keeping such a handle open instead (tried: a parked handle) kept the
damaged -wal alive under the next connections, whose acknowledged commits were appended after the damaged frame and
dropped at the next rebuild of the index (recovery_fuzz seeds 759, 1027, 1326, 1455, 1493: worse than the damage
it kept visible).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config

from pytest_dbfault.faults import CorruptFault, outside
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager

KV = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"
#: Rows whose values fill overflow pages: garbage in such a page's data keeps every b-tree well formed.
ACKNOWLEDGED = {f"user-{i}": f"v{i}" + "x" * 10000 for i in range(3)}


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def manager(db_path: Path, **extra: object) -> DatabaseManager:
    """WAL, FULL, the redo journal on (the fuzzer's seed 1122)."""
    settings: dict[str, object] = {"journal_mode": "WAL", "synchronous": "FULL", "redo_journal": True,
                                   "auto_recover": False}
    settings.update(extra)
    return DatabaseManager(fast_config(db_path, **settings))


def overflow_frame(db_path: Path) -> int:
    """The last WAL frame holding only text of a value (an overflow page: a next-page number, then the text)."""
    wal = Path(f"{db_path}-wal").read_bytes()  # (SQLite locks no byte of the -wal: this close drops nothing)
    page_size = struct.unpack(">I", wal[8:12])[0]
    frames = (len(wal) - 32) // (24 + page_size)
    found = [n for n in range(1, frames + 1)
             if wal[32 + (n - 1) * (24 + page_size) + 24 + 4:][:page_size - 4] == b"x" * (page_size - 4)]
    assert found, "no WAL frame holds an overflow page of a value: the layout changed"
    return found[-1]


def damaged_while_open(db_path: Path) -> DatabaseManager:
    """Acknowledged rows committed into the WAL, then the real ``wal_frame`` fault in one of their frames while the
    runtime keeps the database open; checked to be the damage the fuzzer met (quick_check passes, a row does not
    decode)."""
    db = manager(db_path)
    db.execute(KV)
    db.backup()
    for key, value in ACKNOWLEDGED.items():
        db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
    CorruptFault(db_path, part="wal_frame", frame=overflow_frame(db_path), seed=5).inject()
    assert outside.query(db_path, "PRAGMA quick_check") == [["ok"]]
    with pytest.raises(outside.OutsideSQLError, match="Could not decode"):
        outside.query(db_path, "SELECT k, v FROM kv")
    return db


def rows(db_path: Path) -> dict[str, Any]:
    """The rows as another process reads them."""
    return dict(map(tuple, outside.query(db_path, "SELECT k, v FROM kv")))  # type: ignore[arg-type]


def test_an_integrity_check_finds_the_damaged_frame_and_a_recovery_brings_the_rows_back(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    db = damaged_while_open(db_path)
    try:
        report = db.check_integrity()
        assert not report.ok and "fails its checksum" in " ".join(report.problems), report
        recovery = db.recover()
        assert recovery.ok and recovery.replayed >= len(ACKNOWLEDGED), recovery
        assert db.check_integrity().ok
    finally:
        db.close()
    assert rows(db_path) == ACKNOWLEDGED
