"""The audit log under real faults: entries kept in the fallback file, in order, reconciled exactly once."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import LockedFault
from reliability import DatabaseError, DatabaseManager
from reliability.audit import AuditLogger


@pytest.fixture
def adb(tmp_path: Path) -> Iterator[DatabaseManager]:
    db = DatabaseManager(fast_config(tmp_path / "app.db", audit_hmac_key="k"))
    yield db
    db.close()


@pytest.fixture
def rollback_db(tmp_path: Path) -> Iterator[DatabaseManager]:
    # Rollback journal: an exclusive lock keeps readers out too.
    db = DatabaseManager(fast_config(tmp_path / "app.db", audit_hmac_key="k", journal_mode="DELETE"))
    yield db
    db.close()


def _fds_open_on(path: Path) -> list[int]:
    want = os.stat(path)
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            st = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            found.append(int(name))
    return found


def test_entries_written_while_the_database_is_locked_stay_in_order_until_reconciled(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "before")
    with LockedFault(adb.path, mode="write"):
        first = adb.audit.record("alice", "during-1")  # the database refuses: straight to the file
        second = adb.audit.record("alice", "during-2")  # the file is not empty: reconcile first, which fails
        assert first.pending and second.pending and first.seq is None
        assert [e.action for e in adb.audit.pending()] == ["during-1", "during-2"]
        assert adb.audit.try_reconcile() is None  # still locked: nothing moved, nothing lost
        assert [e.action for e in adb.audit.pending()] == ["during-1", "during-2"]
    assert adb.audit.try_reconcile() == 2 and adb.audit.pending() == []
    assert [e.action for e in reversed(adb.audit.entries())] == ["before", "during-1", "during-2"]
    assert adb.audit.verify().ok


def test_an_entry_appended_while_a_reconciler_took_the_file_goes_to_the_new_file(adb: DatabaseManager) -> None:
    fallback = adb.audit.fallback_path
    fallback.parent.mkdir(parents=True, exist_ok=True)
    fallback.touch(mode=0o600)  # empty: the writer does not try to reconcile it first
    holder = os.open(fallback, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # what reconcile() holds while it renames the file away
    out: list[object] = []
    try:
        with LockedFault(adb.path, mode="write"):
            writer = threading.Thread(target=lambda: out.append(adb.audit.record("alice", "raced")))
            writer.start()
            deadline = time.monotonic() + 5
            while _fds_open_on(fallback) == [holder] and time.monotonic() < deadline:
                time.sleep(0.005)  # until the writer has the file open and waits for the lock
            taken = fallback.with_name(fallback.name + ".taken")
            os.replace(fallback, taken)
            os.close(holder)
            holder = -1
            writer.join(5)
            assert not writer.is_alive()
    finally:
        if holder >= 0:
            os.close(holder)
    assert len(out) == 1 and out[0].pending  # type: ignore[attr-defined]
    assert taken.read_text() == ""  # nothing written into the file the reconciler took
    lines = fallback.read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["raced"]


def test_reading_the_log_while_readers_are_locked_out_raises_a_database_error(rollback_db: DatabaseManager) -> None:
    rollback_db.audit.record("alice", "stored")
    with LockedFault(rollback_db.path, mode="exclusive"):
        with pytest.raises(DatabaseError) as info:
            rollback_db.audit.entries(include_pending=False)
        assert str(info.value.kind) == "busy"
        with pytest.raises(DatabaseError):
            rollback_db.audit.verify()
    assert [e.action for e in rollback_db.audit.entries()] == ["stored"]


def test_details_that_are_not_json_are_refused_naming_the_field(adb: DatabaseManager) -> None:
    with pytest.raises(ValueError, match="details must be JSON-serializable"):
        adb.audit.record("alice", "act", "t", {"when": object()})
    with pytest.raises(ValueError, match="details must be JSON-serializable"):
        adb.audit.record("alice", "act", "t", {"x": float("nan")})
    assert adb.audit.entries() == []


def test_a_torn_fallback_line_is_skipped_and_the_rest_is_kept(adb: DatabaseManager,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    good = AuditLogger.new_entry("alice", "kept").to_dict() | {"pending": True}
    good["mac"] = adb.audit._fallback_mac(good)  # written by the runtime: MAC'ed
    adb.audit.fallback_path.parent.mkdir(parents=True, exist_ok=True)
    adb.audit.fallback_path.write_text(json.dumps(good) + "\n\n" + '{"entry_id": "x", "ts": 1.0, "act')
    with caplog.at_level(logging.WARNING, logger="reliability.audit"):
        assert [e.action for e in adb.audit.pending()] == ["kept"]
    assert any("line 3 unreadable" in r.getMessage() for r in caplog.records)
    assert adb.audit.reconcile() == 1 and [e.action for e in adb.audit.entries()] == ["kept"]


def test_a_fallback_file_removed_after_it_was_listed_is_passed_over(adb: DatabaseManager, tmp_path: Path) -> None:
    gone = tmp_path / "reconciled-meanwhile.jsonl"

    class Raced(AuditLogger):
        """Lists a file a concurrent reconcile removed before it could be read."""

        def _fallback_files(self) -> list[Path]:
            return [gone, *super()._fallback_files()]

    audit = Raced(adb, fallback_path=tmp_path / "audit.jsonl")
    assert audit.pending() == []


def test_stored_details_that_are_not_json_are_shown_not_dropped(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "act", "t", {"i": 1})
    with sqlite3.connect(adb.path) as raw:
        raw.execute("UPDATE reliability_audit SET details = 'not json' WHERE seq = 1")
    [entry] = adb.audit.entries()
    assert entry.details == {"_unparseable": "not json"}
    assert not adb.audit.verify().ok
