"""The "seen damaged" verdict is shared by every manager on the file, across processes (issue #15 leftover).

The usual deployment is several processes (web workers), one manager each, on one database file. When
one of them meets the damage (a statement fails with ``corrupt``, or its integrity check fails), a
manager in another process that has met nothing of it must not move its audit fallback entries or its
queued writes into the damaged file's intact tables: a recovery that restores a backup drops them (all of
them with the redo journal off, a supported configuration). The verdict travels in ``<db>.damaged``
(:mod:`reliability.damage_mark`).

Every test damages the file for real (``CorruptFault``: garbage in the ``notes`` table's root page), lets a
manager in *another process* (``python -c``, :data:`OTHER`) meet it, and checks the manager of this process,
which never touched the damaged table: its entries and writes wait where they are safe, nothing is lost
by a real recovery (run in yet another process), and its gate opens again after the recovery or a clean
integrity check.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, LockHolder, fast_config

from pytest_dbfault.faults import CorruptFault, LockedFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseError, DatabaseManager, Inspector
from reliability.degraded import Needs
from reliability.files import UnsafePathError

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

#: Settings of every manager here, in this process and the others: no redo journal and no automatic
#: recovery (the operator recovers, and the restored backup shows any loss).
SETTINGS: dict[str, object] = {"journal_mode": "DELETE", "admin_actors": "alice", "audit_hmac_key": "k",
                               "redo_journal": False, "auto_recover": False}

#: Another process's manager on the same file: ``read`` (meets the damage through a statement), ``check``
#: (its integrity check), ``recover``, ``read-and-crash`` (meets it, then dies without closing anything).
OTHER = """
import json, os, sys
sys.path.insert(0, sys.argv[2])
from runtime_helpers import fast_config
from reliability import DatabaseError, DatabaseManager
db = DatabaseManager(fast_config(sys.argv[1], **json.loads(sys.argv[4])))
action, out = sys.argv[3], {"pid": os.getpid()}
if action in ("read", "read-and-crash"):
    try:
        db.fetch_all("SELECT * FROM notes")
        out["read"] = "ok"
    except DatabaseError as err:
        out["read"] = str(err.kind)
elif action == "check":
    out["check"] = db.check_integrity().ok
elif action == "recover":
    out["restored"] = db.recover().backup is not None
out["integrity_ok"] = db.monitor.integrity_ok
print(json.dumps(out), flush=True)
if action == "read-and-crash":
    os._exit(0)  # no close, no cleanup: what a killed worker leaves
db.close()
"""


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lock taken through another copy of SQLite in this process goes unseen by the runtime's (pysqlite3 cell).
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


@pytest.fixture()
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def other_process(db_path: Path, action: str) -> dict[str, object]:
    """Run :data:`OTHER` in a new process on ``db_path``; what it reports."""
    done = subprocess.run([sys.executable, "-c", OTHER, str(db_path), str(TESTS), action, json.dumps(SETTINGS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def manager(db_path: Path) -> DatabaseManager:
    db = DatabaseManager(fast_config(db_path, **SETTINGS))
    db.write_gate.recheck_interval = 0  # (every question checks while the verdict stands: no clock here)
    db.commands.recheck_interval = 0
    return db


def prepare(db: DatabaseManager) -> None:
    """The damaged table (never touched by this process's manager), the written one, and a verified backup."""
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    db.execute("INSERT INTO notes (body) VALUES ('a note')")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    db.commands.register("add", Needs.WRITE, lambda d, v: d.execute("INSERT INTO items (value) VALUES (?)", (v,)))
    db.audit.record("alice", "setup")  # the audit table exists in the backup
    assert db.backup().verified


def corrupt(db_path: Path, *, backup_before: bool = False) -> CorruptFault:
    fault = CorruptFault(db_path, part="btree", table="notes", page="root", seed=7, backup_before=backup_before)
    fault.inject()
    return fault


def meets_the_damage_elsewhere(db_path: Path, action: str = "read") -> int:
    """Another process's manager meets the damage; its pid."""
    seen = other_process(db_path, action)
    assert seen.get("read", "corrupt") == "corrupt" and seen.get("check", False) is False, seen
    assert seen["integrity_ok"] is False, seen
    return int(str(seen["pid"]))


def recover_elsewhere(db_path: Path) -> None:
    # The backup came back: what the damaged file took since is gone with it.
    assert other_process(db_path, "recover")["restored"] is True


def outage_entry(db: DatabaseManager, db_path: Path) -> str:
    """An audit entry acknowledged into the fallback file while another connection holds a real lock."""
    with LockHolder(db_path):
        entry = db.audit.record("bob", "export", "report")
    assert entry.pending
    return entry.entry_id


def stored_ids(db: DatabaseManager) -> list[str]:
    return [e.entry_id for e in db.audit.entries(1000, include_pending=False)]


def pending_ids(db: DatabaseManager) -> list[str]:
    return [e.entry_id for e in db.audit.pending()]


def marker_of(db_path: Path) -> Path:
    return Path(f"{db_path}.damaged")


def test_audit_entries_wait_in_the_fallback_while_another_process_has_seen_the_file_damaged(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        early = outage_entry(db, db_path)
        corrupt(db_path)
        other = meets_the_damage_elsewhere(db_path)
        assert db.monitor.integrity_ok is not False  # this manager has met nothing of the damage itself
        health = db.health().reasons

        late = db.audit.record("carol", "import", "data")  # the audit table is intact: it would take both
        in_fallback = pending_ids(db)
        recover_elsewhere(db_path)
        after = db.audit.record("dave", "login")  # the gate's check passes on the restored file

        kept = set(stored_ids(db)) | set(pending_ids(db))
        lost = [i for i in (early, late.entry_id, after.entry_id) if i not in kept]
        assert not lost, f"{len(lost)} of 3 acknowledged audit entries lost by the recovery"
        assert late.pending and in_fallback == [early, late.entry_id]
        assert not after.pending and db.audit.pending() == []  # the gate opened again: all went in, once each
        ids = stored_ids(db)
        assert [ids.count(i) for i in (early, late.entry_id, after.entry_id)] == [1, 1, 1], ids
        assert not marker_of(db_path).exists()
        assert any(f"marked damaged by process {other}" in r for r in health), health


def test_queued_writes_wait_while_another_process_has_found_the_file_damaged_by_its_check(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        with LockHolder(db_path):
            assert db.commands.run("add", 41).status == "queued"
        corrupt(db_path)
        meets_the_damage_elsewhere(db_path, "check")

        first = db.commands.replay()
        second = db.commands.run("add", 42)  # queued behind the first, not written into the damaged file
        recover_elsewhere(db_path)
        db.commands.replay()

        values = [v for (v,) in db.fetch_all("SELECT value FROM items ORDER BY id")]
        assert values == [41, 42], f"acknowledged writes lost by the recovery: {values}"
        assert first.error is not None and first.applied == 0 and first.remaining == 1, first
        assert second.status == "queued", second
        assert len(db.queue) == 0


def test_a_restore_clears_the_mark_for_every_manager_as_a_recovery_does(db_path: Path) -> None:
    """A deliberate restore puts a verified backup in place like a recovery: the marker (and this process's
    verdict) went with a recovery only, so the restored file kept every manager's own writes waiting."""
    with manager(db_path) as db:
        prepare(db)
        corrupt(db_path)
        meets_the_damage_elsewhere(db_path)
        assert db.write_gate.seen_damaged and marker_of(db_path).exists()
        db.restore()
        assert not marker_of(db_path).exists()
        assert not db.write_gate.seen_damaged
        assert not db.audit.record("carol", "after the restore").pending


def test_a_clean_check_in_any_process_clears_the_mark_for_every_manager(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        early = outage_entry(db, db_path)
        fault = corrupt(db_path, backup_before=True)
        meets_the_damage_elsewhere(db_path)
        assert db.write_gate.seen_damaged  # told by the other process: no check run here
        fault.heal()  # the original bytes are back: sound again, but nothing has checked it yet
        assert other_process(db_path, "check")["check"] is True  # a third process checks it: clean

        assert not db.write_gate.seen_damaged and not marker_of(db_path).exists()
        checks: list[object] = []
        real = db.write_gate.check
        db.write_gate.check = lambda full=False: (checks.append(1), real(full))
        entry = db.audit.record("carol", "import")
        assert not entry.pending and checks == []  # no mark, no verdict here: in at once
        assert stored_ids(db)[:2] == [entry.entry_id, early]


def test_a_mark_left_by_a_crashed_process_is_cleared_by_the_gates_clean_check_and_never_by_health(
        db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        early = outage_entry(db, db_path)
        fault = corrupt(db_path, backup_before=True)
        other = meets_the_damage_elsewhere(db_path, "read-and-crash")
        fault.heal()  # repaired behind the runtime's back; the dead process's mark stays
        marker = marker_of(db_path)
        before = marker.exists() and (marker.read_bytes(), os.stat(marker).st_ino)

        with Inspector(fast_config(db_path, **SETTINGS)) as view:
            reports = [db.health(), view.health()]  # (db.health() and `reliability health`: look, change nothing)
        for report in reports:
            assert any(f"marked damaged by process {other}" in r for r in report.reasons), report.reasons
            assert report.status.value != "healthy"
        assert before and (marker.read_bytes(), os.stat(marker).st_ino) == before

        with LockedFault(db_path, mode="exclusive"):  # a lock during the gate's check: no result, the mark stays
            during = db.audit.record("carol", "import", "data")
        assert during.pending and marker.exists() and db.monitor.integrity_ok is not True

        late = db.audit.record("dave", "login")  # the gate's check runs and passes: the mark goes
        assert not late.pending and not marker.exists() and db.monitor.integrity_ok is True
        assert stored_ids(db)[:3] == [late.entry_id, during.entry_id, early]
        assert db.health().status.value == "healthy"


def test_the_marker_is_0600_and_says_who_saw_what_when_on_which_file(db_path: Path, usual_umask: None) -> None:
    with manager(db_path) as db:
        prepare(db)
        corrupt(db_path)
        t0 = time.time()
        other = meets_the_damage_elsewhere(db_path)
        marker = marker_of(db_path)
        assert stat.S_IMODE(os.lstat(marker).st_mode) == 0o600
        from reliability.damage_mark import DamageMarker  # (here: the module is new)

        mark = DamageMarker(str(db_path)).read()
        assert mark is not None and mark.pid == other and mark.at is not None and t0 <= mark.at <= time.time()
        assert mark.found_by is not None and "corrupt" in mark.found_by and mark.problems
        st = os.stat(db_path)
        assert mark.file == (st.st_dev, st.st_ino)
        assert db.health().to_dict()["damage_mark"]["pid"] == other


def test_a_symlink_planted_at_the_marker_is_refused_never_followed_and_holds_the_writes(db_path: Path) -> None:
    victim = db_path.parent / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    marker = marker_of(db_path)
    with manager(db_path) as db, manager(db_path) as other:
        prepare(db)
        marker.symlink_to(victim)
        # A manager that cannot tell whether another process saw the file damaged holds its own writes
        # (they are safe where they are) and says why, even once its own check passes.
        refusal = other.write_gate.refusal()
        assert refusal is not None and "symbolic link" in refusal, refusal
        assert any("symbolic link" in r for r in other.health().reasons), other.health().reasons

        corrupt(db_path)
        with pytest.raises(DatabaseError) as seen:
            db.fetch_all("SELECT * FROM notes")
        assert str(seen.value.kind) == "corrupt" and db.monitor.integrity_ok is False
        # Who saw the damage says it could not share it, naming the link.
        assert any("damage marker" in r and "symbolic link" in r for r in db.health().reasons), db.health().reasons
        assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
        assert marker.is_symlink()

        from reliability.damage_mark import DamageMarker  # (here: the module is new; the other tests run without it)

        with pytest.raises(UnsafePathError, match="symbolic link"):
            DamageMarker(str(db_path)).write("a test", ["x"], None)
        assert victim.read_text() == "precious\n" and marker.is_symlink()


def test_a_clean_check_keeps_a_mark_written_while_it_ran(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # This manager's check reads the sound file; before it reports, the file is damaged and another process
    # meets the damage and marks it. The clean result is about the file as it was: the mark must stay.
    import reliability.durability.upkeep as upkeep

    with manager(db_path) as db:
        prepare(db)
        real = upkeep.check_integrity

        def damaged_while_checking(*args: object, **kwargs: object) -> object:
            report = real(*args, **kwargs)  # type: ignore[arg-type]
            corrupt(db_path)
            meets_the_damage_elsewhere(db_path)
            return report

        monkeypatch.setattr(upkeep, "check_integrity", damaged_while_checking)
        assert db.check_integrity().ok  # clean: it read the file before the damage
        monkeypatch.setattr(upkeep, "check_integrity", real)

        assert marker_of(db_path).exists() and db.write_gate.seen_damaged
        entry = db.audit.record("carol", "import")  # the gate checks the damaged file now: it waits
        assert entry.pending and db.monitor.integrity_ok is False
