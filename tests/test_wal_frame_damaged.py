"""A WAL frame damaged under an open connection is damage found by every integrity check (recovery fuzzer, seeds
628 and 1122).

SQLite checks a WAL frame's checksum only when it rebuilds the WAL index (``-shm``) from the file. Garbage written
into the page data of a committed frame while the runtime had the database open was read through the index its
connection kept, unchecked: ``quick_check`` passed over a row no reader could decode. Every integrity check now
verifies the committed frames' chained checksums, and the recovery restores the backup and replays the redo
journal.

A close that is SQLite's last one checkpoints the damaged frame into the database file, where nothing tells it
from data (seeds 628, 1122, 1329, 1335, 1452, 1481: ``reliability recover`` said "nothing to recover"). The manager's
close now looks at its ``-wal`` first and, when a committed frame is damaged, leaves a *sticky* damage mark: every
integrity check reports it and only a recovery removes it, so the next start recovers (``auto_recover``) and
``reliability check``/``recover`` see it. Keeping such a handle open instead (tried: a parked handle) kept the damaged
-wal alive under the next connections, whose acknowledged commits were appended after the damaged frame and dropped
at the next rebuild of the index (recovery_fuzz seeds 759, 1027, 1326, 1455, 1493: worse than the damage it kept
visible).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config

from pytest_dbfault.faults import CorruptFault, outside
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager, HealthStatus, cli
from reliability.damage_mark import DamageMarker
from reliability.health import WAL_DAMAGE, sticky_mark_problems

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


def damaged_while_open(db_path: Path, frames: list[int] | None = None) -> DatabaseManager:
    """Acknowledged rows committed into the WAL, then the real ``wal_frame`` fault in one of their frames while the
    runtime keeps the database open; checked to be the damage the fuzzer met (quick_check passes, a row does not
    decode)."""
    db = manager(db_path)
    db.execute(KV)
    db.backup()
    for key, value in ACKNOWLEDGED.items():
        db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
    frame = overflow_frame(db_path)
    if frames is not None:
        frames.append(frame)  # (1-based, as SQLite and the runtime's report count frames)
    CorruptFault(db_path, part="wal_frame", frame=frame, seed=5).inject()
    assert outside.query(db_path, "PRAGMA quick_check") == [["ok"]]
    with pytest.raises(outside.OutsideSQLError, match="Could not decode"):
        outside.query(db_path, "SELECT k, v FROM kv")
    return db


def rows(db_path: Path) -> dict[str, Any]:
    """The rows as another process reads them."""
    return dict(map(tuple, outside.query(db_path, "SELECT k, v FROM kv")))  # type: ignore[arg-type]


def test_an_integrity_check_finds_the_damaged_frame_and_a_recovery_brings_the_rows_back(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    frames: list[int] = []
    db = damaged_while_open(db_path, frames)
    try:
        report = db.check_integrity()
        assert not report.ok and "fails its checksum" in " ".join(report.problems), report
        # The report names the frame that was damaged (an operator looks at that frame), counted from 1.
        assert f"frame {frames[0]} " in " ".join(report.problems), (frames, report)
        recovery = db.recover()
        assert recovery.ok and recovery.replayed >= len(ACKNOWLEDGED), recovery
        assert db.check_integrity().ok
    finally:
        db.close()
    assert rows(db_path) == ACKNOWLEDGED


def closed_with_the_damage(db_path: Path) -> None:
    """The damaged frame checkpointed by the manager's close (the last one): the file passes quick_check, no -wal
    is left to check, a row does not decode, and the close left a sticky mark."""
    damaged_while_open(db_path).close()
    assert outside.query(db_path, "PRAGMA integrity_check") == [["ok"]]
    assert not Path(f"{db_path}-wal").exists() or Path(f"{db_path}-wal").stat().st_size == 0
    with pytest.raises(outside.OutsideSQLError, match="Could not decode"):
        outside.query(db_path, "SELECT k, v FROM kv")
    mark = DamageMarker(db_path).read()
    assert mark is not None and mark.sticky and "fails its checksum" in mark.problems[0], mark


def test_a_close_that_checkpoints_a_damaged_frame_leaves_a_sticky_mark_and_the_next_start_recovers(
        tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    closed_with_the_damage(db_path)
    with manager(db_path, auto_recover=True) as db:  # (before: started on the file and served the garbage)
        assert db.monitor.recoveries == 1 and (db.monitor.last_recovery or {}).get("ok"), db.monitor.last_recovery
        assert db.check_integrity(full=True).ok
    assert rows(db_path) == ACKNOWLEDGED
    assert DamageMarker(db_path).read() is None


def test_every_check_reports_the_sticky_mark_until_a_recovery_removes_it(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    closed_with_the_damage(db_path)
    with manager(db_path) as db:
        for full in (False, True):  # a clean result would have removed an ordinary mark
            report = db.check_integrity(full=full)
            assert not report.ok and report.problems[0].startswith(WAL_DAMAGE), report
        assert db.health().status is not HealthStatus.HEALTHY
    assert DamageMarker(db_path).read() is not None
    env = {"RELIABILITY_JOURNAL_MODE": "WAL", "RELIABILITY_SYNCHRONOUS": "FULL", "RELIABILITY_BACKUP_INTERVAL": "0",
           "RELIABILITY_REDO_JOURNAL": "true", "RELIABILITY_AUTO_RECOVER": "false",
           "RELIABILITY_SQLITE_MODULE": SQLITE_MODULE_NAME}
    assert cli.main(["--db", str(db_path), "check"], environ=env) == cli.EXIT_UNHEALTHY
    # (before: exit 0, "nothing to recover: the database passes integrity_check")
    assert cli.main(["--db", str(db_path), "recover"], environ=env) == cli.EXIT_OK
    assert rows(db_path) == ACKNOWLEDGED
    assert DamageMarker(db_path).read() is None
    assert cli.main(["--db", str(db_path), "check", "--full"], environ=env) == cli.EXIT_OK


def test_a_sticky_mark_stays_sticky_when_a_visible_verdict_rewrites_it(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    db_path.touch()  # (only its identity counts)
    marker, file = DamageMarker(db_path), (os.stat(db_path).st_dev, os.stat(db_path).st_ino)
    marker.write("a close", [WAL_DAMAGE + "frame 2 fails its checksum"], file, sticky=True)
    marker.write("a corrupt error met by a statement", ["database disk image is malformed"], file)
    mark = marker.read()
    assert mark is not None and mark.sticky and mark.problems[0].startswith(WAL_DAMAGE), mark
    assert sticky_mark_problems(db_path)
    marker.write("a corrupt error met by a statement", ["database disk image is malformed"], (file[0], file[1] + 1))
    mark = marker.read()
    assert mark is not None and not mark.sticky  # (about another file: that file's verdict, not sticky)


def test_a_sticky_mark_about_another_file_is_not_this_files_problem(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    db_path.touch()  # (only its identity counts)
    st = os.stat(db_path)
    DamageMarker(db_path).write("a close", [WAL_DAMAGE + "frame 2 fails its checksum"], (st.st_dev, st.st_ino + 1),
                                sticky=True)
    assert sticky_mark_problems(db_path) == []  # a file put at the path since: the mark was about the one before
    DamageMarker(db_path).write("a close", [WAL_DAMAGE + "frame 2 fails its checksum"], (st.st_dev, st.st_ino),
                                sticky=True)
    assert sticky_mark_problems(db_path)
