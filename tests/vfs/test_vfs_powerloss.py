"""Power loss: unsynced writes are dropped (or torn) on copies; what survives depends on synchronous."""

from __future__ import annotations

import contextlib
import os
import sqlite3

import pytest

from pytest_dbfault.vfs import PowerLossRecorder
from pytest_dbfault.vfs.faults import PowerLossFault

COMMITS = 120


def _commit_rows(db: str, *, synchronous: str, autocheckpoint: int | None = None) -> None:
    """One row per autocommit transaction, connection left open (the power goes before close)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if autocheckpoint is not None:
        conn.execute(f"PRAGMA wal_autocheckpoint = {autocheckpoint}")
    for i in range(COMMITS):
        conn.execute("INSERT INTO t (v) VALUES (?)", (f"commit-{i}",))
    return conn


def _surviving_ids(image: str) -> list[int]:
    with contextlib.closing(sqlite3.connect(image)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")]


def _run(db: str, dest: str, **options) -> list[int]:
    with PowerLossFault(db, dest=dest) as power:
        conn = _commit_rows(db, **options)
        images = power.cut()
        conn.close()
    return _surviving_ids(images[os.path.realpath(db)])


def test_synchronous_off_loses_committed_data(needs_vfs, make_db, tmp_path):
    ids = _run(make_db(rows=0), str(tmp_path / "after"), synchronous="OFF")
    assert len(ids) < COMMITS  # nothing was ever synced: every commit since open is gone
    assert ids == []


def test_synchronous_full_keeps_every_committed_row(needs_vfs, make_db, tmp_path):
    ids = _run(make_db(rows=0), str(tmp_path / "after"), synchronous="FULL")
    assert ids == list(range(1, COMMITS + 1))


def test_wal_with_normal_keeps_all_but_the_last_commits(needs_vfs, make_db, tmp_path):
    db = make_db(rows=0, journal_mode="wal")
    ids = _run(db, str(tmp_path / "after"), synchronous="NORMAL", autocheckpoint=25)
    # WAL+NORMAL syncs only at checkpoints: a prefix survives, the commits since the last one are lost.
    assert 0 < len(ids) < COMMITS
    assert ids == list(range(1, len(ids) + 1))


def test_wal_with_full_keeps_every_committed_row(needs_vfs, make_db, tmp_path):
    db = make_db(rows=0, journal_mode="wal")
    assert _run(db, str(tmp_path / "after"), synchronous="FULL") == list(range(1, COMMITS + 1))


def test_the_live_files_are_never_touched(needs_vfs, make_db, tmp_path):
    db = make_db(rows=0)
    with PowerLossFault(db, dest=tmp_path / "after") as power:
        conn = _commit_rows(db, synchronous="OFF")
        power.cut()
        conn.close()
    assert _surviving_ids(db) == list(range(1, COMMITS + 1))


def test_a_crash_point_cuts_the_power_before_the_next_sync_and_stops_the_application(
        needs_vfs, make_db, tmp_path):
    db = make_db(rows=0)
    # rollback journal + FULL: 3 syncs per commit (journal body, journal header, database), so
    # after 7 syncs two commits are durable and the third has only synced its journal once.
    with PowerLossFault(db, after_syncs=7, dest=tmp_path / "after") as power:
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            _commit_rows(db, synchronous="FULL")
    assert power.recorder.crashed and power.recorder.syncs == 7
    assert _surviving_ids(power.images[os.path.realpath(db)]) == [1, 2]
    assert any(r.action == "crashed" for r in power.records)


def test_torn_writes_keep_a_seeded_subset_of_sectors(needs_vfs, make_db, tmp_path):
    db = make_db(rows=0)
    recorder = PowerLossRecorder(db).start()
    try:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 3000,))
        dropped = recorder.cut(tmp_path / "drop")[os.path.realpath(db)]
        torn = recorder.cut(tmp_path / "torn", mode="torn", seed=1)[os.path.realpath(db)]
        again = recorder.cut(tmp_path / "again", mode="torn", seed=1)[os.path.realpath(db)]
        conn.close()
    finally:
        recorder.stop()
    with open(db, "rb") as live, open(dropped, "rb") as d, open(torn, "rb") as t, open(again, "rb") as a:
        live_bytes, drop_bytes, torn_bytes = live.read(), d.read(), t.read()
        assert a.read() == torn_bytes  # same seed, same tear
    assert torn_bytes not in (drop_bytes, live_bytes[:len(torn_bytes)])
    assert recorder.unsynced_bytes() > 0


def test_a_deleted_journal_stays_deleted_after_power_loss(needs_vfs, make_db, tmp_path):
    db = make_db(rows=0)
    with PowerLossFault(db, dest=tmp_path / "after") as power:
        conn = _commit_rows(db, synchronous="FULL")
        images = power.cut()
        conn.close()
    assert set(images) == {os.path.realpath(db)}  # no -journal resurrected, no -shm copied
