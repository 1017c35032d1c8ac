"""Nothing the runtime writes on its own behalf goes into a database seen damaged (issue #15).

The audit log's fallback file and the durable write queue keep entries and writes safe while the
database is out of reach. A file seen damaged (a statement met ``corrupt``) still takes writes into its
intact tables; moving fallback entries or queued writes there removes them from where they were safe,
and a recovery that restores a backup then drops them with the file. Each test damages the file for
real (``CorruptFault``: garbage in a table's root page), lets the runtime meet the damage, runs one path
that used to write into it (``audit.record``, ``admin.set_flag``, a replay without admin commands,
``db.commands.run``, the CLI's ``flags set``), recovers for real (``db.recover()`` restores the
backup) and checks that every acknowledged entry and write is there afterwards. The redo journal is
off: with it, recovery would replay the writes into the restored file and hide the loss.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import CLI_ENV, SQLITE_MODULE_NAME, LockHolder, cli_runner, fast_config

from pytest_dbfault.faults import CorruptFault, LockedFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseError, DatabaseManager, admin, cli
from reliability.degraded import Needs


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lock taken through another copy of SQLite in this process goes unseen by the runtime's (pysqlite3 cell).
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def manager(db_path: Path, **extra: object) -> DatabaseManager:
    """No redo journal and no auto-recovery: the operator recovers, and a restored backup shows the loss."""
    settings: dict[str, object] = {"journal_mode": "DELETE", "admin_actors": "alice", "audit_hmac_key": "k",
                                   "redo_journal": False, "auto_recover": False}
    settings.update(extra)
    db = DatabaseManager(fast_config(db_path, **settings))
    db.commands.recheck_interval = 0
    return db


def prepare(db: DatabaseManager) -> None:
    """Tables the damage goes into and the writes go to (apart: the damaged one is never written)."""
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    db.execute("INSERT INTO notes (body) VALUES ('a note')")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    db.audit.record("alice", "setup")  # the audit table exists in the backup
    assert db.backup().verified


def damage(db: DatabaseManager, db_path: Path, *, backup_before: bool = False) -> CorruptFault:
    """Garbage in the notes table's root page, then a read of it: the runtime has seen the damage."""
    fault = CorruptFault(db_path, part="btree", table="notes", page="root", seed=7, backup_before=backup_before)
    fault.inject()
    with pytest.raises(DatabaseError) as seen:
        db.fetch_all("SELECT * FROM notes")
    assert str(seen.value.kind) == "corrupt", seen.value  # the fault is in force and the runtime saw it
    assert db.monitor.integrity_ok is False  # (its verdict: health says "marked corrupt")
    return fault


def stored_ids(db: DatabaseManager) -> list[str]:
    return [e.entry_id for e in db.audit.entries(1000, include_pending=False)]


def pending_ids(db: DatabaseManager) -> list[str]:
    return [e.entry_id for e in db.audit.pending()]


def missing(db: DatabaseManager, acknowledged: list[str]) -> list[str]:
    """The acknowledged entries in neither the database nor the fallback file."""
    kept = set(stored_ids(db)) | set(pending_ids(db))
    return [i for i in acknowledged if i not in kept]


def outage_entry(db: DatabaseManager, db_path: Path) -> str:
    """An entry acknowledged into the fallback file while another connection holds a real lock."""
    with LockHolder(db_path):
        entry = db.audit.record("bob", "export", "report")
    assert entry.pending
    return entry.entry_id


def test_record_keeps_the_fallback_and_its_own_entry_out_of_a_damaged_file(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        early = outage_entry(db, db_path)
        damage(db, db_path)
        late = db.audit.record("carol", "import", "data")  # no write queued: record() reconciled first
        in_fallback = pending_ids(db)

        recovered = db.recover()
        assert recovered.backup is not None  # the backup came back: what was in the damaged file is gone
        lost = missing(db, [early, late.entry_id])
        assert not lost, f"{len(lost)} of 2 acknowledged audit entries lost by the recovery"
        # Both had stayed in the fallback file: the damaged file's intact audit table took neither.
        assert late.pending and in_fallback == [early, late.entry_id]
        assert db.audit.try_reconcile() == 2
        ids = stored_ids(db)
        assert ids.count(early) == 1 and ids.count(late.entry_id) == 1, ids
        assert db.audit.pending() == []


def test_record_with_nothing_in_the_fallback_writes_there_while_the_file_is_seen_damaged(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        damage(db, db_path)
        entry = db.audit.record("carol", "import", "data")  # the audit table is intact: it would take it
        db.recover()
        assert not missing(db, [entry.entry_id]), "an acknowledged audit entry was lost by the recovery"
        assert entry.pending
        assert db.audit.try_reconcile() == 1 and stored_ids(db).count(entry.entry_id) == 1


def test_set_flag_with_no_write_queued_keeps_the_fallback_and_queues_the_change(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        assert admin.set_flag(db, "seed", 0, "alice").ok  # the flags table exists and is intact
        assert db.backup().verified
        early = outage_entry(db, db_path)
        damage(db, db_path)
        assert len(db.queue) == 0
        result = admin.set_flag(db, "beta", 1, "alice")
        in_fallback = pending_ids(db)

        db.recover()
        db.commands.replay()
        flag = admin.get_flag(db, "beta").value
        lost = missing(db, [early]) + ([] if flag is not None and flag.value == 1 else ["flag beta=1"])
        assert not lost, f"acknowledged ({result.status}) but lost by the recovery: {lost}"
        # Accepted, but not into the damaged file (whose flags table is intact and would have taken it).
        assert result.status == "queued", result
        assert in_fallback == [early]
        assert db.audit.pending() == [] and len(db.queue) == 0
        ids = stored_ids(db)
        assert ids.count(early) == 1
        # Its audit entry was written with the change, after the outage's entry.
        set_entries = [e for e in db.audit.entries(1000, action="flag.set") if e.target == "beta"]
        assert len(set_entries) == 1 and ids.index(set_entries[0].entry_id) < ids.index(early)  # newest first


def test_a_replay_without_admin_commands_waits_while_the_file_is_seen_damaged(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        db.commands.register("add", Needs.WRITE,
                             lambda d, v: d.execute("INSERT INTO items (value) VALUES (?)", (v,)))
        assert not db.commands.audit_first  # a plain runtime: no admin commands registered
        with LockHolder(db_path):
            queued = db.commands.run("add", 41)
        assert queued.status == "queued", queued
        damage(db, db_path)

        first = db.commands.replay()

        db.recover()
        db.commands.replay()
        assert db.fetch_all("SELECT value FROM items") == [(41,)], "the queued (acknowledged) write was lost"
        # It had waited in the queue, not gone into the damaged file.
        assert first.error is not None and first.applied == 0 and first.remaining == 1, first
        assert len(db.queue) == 0


def test_a_command_write_with_nothing_queued_is_queued_while_the_file_is_seen_damaged(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        db.commands.register("add", Needs.WRITE,
                             lambda d, v: d.execute("INSERT INTO items (value) VALUES (?)", (v,)))
        damage(db, db_path)
        result = db.commands.run("add", 7)
        db.recover()
        db.commands.replay()
        assert db.fetch_all("SELECT value FROM items") == [(7,)], f"acknowledged ({result.status}) but lost"
        assert result.status == "queued" and result.fault == "corrupt", result


def test_a_clean_integrity_result_clears_the_damage_and_a_lock_during_the_check_does_not(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        early = outage_entry(db, db_path)
        db.write_gate.recheck_interval = 0  # (every question checks: no clock in the test)
        fault = damage(db, db_path, backup_before=True)
        fault.heal()  # the original bytes are back: the file is sound again, but nothing has checked it yet
        assert db.write_gate.seen_damaged
        with LockedFault(db_path, mode="exclusive"):  # a lock during the gate's check: no result, no verdict
            entry = db.audit.record("carol", "import", "data")
            assert entry.pending
            assert db.monitor.integrity_ok is False  # neither cleared nor made worse by the lock
        assert pending_ids(db) == [early, entry.entry_id]
        # Now the check runs and passes: the fallback goes in first, then the new entry.
        late = db.audit.record("dave", "login")
        assert not late.pending
        assert db.monitor.integrity_ok is True
        ids = stored_ids(db)
        assert ids[:3] == [late.entry_id, entry.entry_id, early]
        assert db.audit.pending() == []
        assert db.audit.verify().ok


def test_a_lock_is_never_taken_for_damage(db_path: Path) -> None:
    # A busy database sends the entry to the fallback and leaves no verdict: the next record reconciles
    # it with no integrity check in between.
    with manager(db_path) as db:
        prepare(db)
        early = outage_entry(db, db_path)
        assert db.monitor.integrity_ok is not False and not db.write_gate.seen_damaged
        checks: list[object] = []
        db.write_gate.check = lambda full=False: checks.append(1)  # (counts calls; must not be called at all)
        late = db.audit.record("carol", "import")
        assert not late.pending and checks == []
        assert stored_ids(db)[:2] == [late.entry_id, early]


def test_db_commands_run_as_keeps_the_change_and_the_fallback_out_of_a_damaged_file(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        admin.register(db)
        early = outage_entry(db, db_path)
        damage(db, db_path)
        result = db.commands.run_as("alice", "flags.set", "beta", 2)  # the front ends' entry point
        reconciled = db.audit.try_reconcile()
        in_fallback = pending_ids(db)
        db.recover()
        db.commands.replay()
        flag = admin.get_flag(db, "beta").value
        lost = missing(db, [early]) + ([] if flag is not None and flag.value == 2 else ["flag beta=2"])
        assert not lost, f"acknowledged ({result.status}) but lost by the recovery: {lost}"
        assert result.status == "queued", result
        assert reconciled is None and in_fallback == [early]  # refused: the fallback stayed where it was
        assert stored_ids(db).count(early) == 1


def test_the_cli_flags_set_looks_before_it_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process saw the damage; the CLI starts a fresh runtime that has met nothing of the file. Its
    # integrity check before the write sees it: the change is queued and the audit fallback stays put.
    run = cli_runner(tmp_path, capsys, monkeypatch,
                     CLI_ENV + "RELIABILITY_REDO_JOURNAL=false\nRELIABILITY_AUTO_RECOVER=false\n")
    db_path = run.db
    with manager(db_path, audit_hmac_key="cli-key") as db:
        prepare(db)
        assert admin.set_flag(db, "seed", 0, "alice").ok
        assert db.backup().verified
        early = outage_entry(db, db_path)
        damage(db, db_path)
    code, out, _err = run("flags", "set", "beta", "on")
    with manager(db_path, audit_hmac_key="cli-key") as db:
        in_fallback = pending_ids(db)
        assert db.recover().backup is not None
        admin.register(db)  # (the service's commands: the queued change is an admin command)
        db.commands.replay()
        flag = admin.get_flag(db, "beta").value
        lost = missing(db, [early]) + ([] if flag is not None and flag.value == "on" else ["flag beta=on"])
        assert not lost, f"acknowledged (exit {code}) but lost by the recovery: {lost}"
        assert code == cli.EXIT_QUEUED, out
        assert in_fallback == [early]
        assert stored_ids(db).count(early) == 1 and db.audit.pending() == [] and len(db.queue) == 0


def test_reanchor_waits_for_a_sound_file(db_path: Path) -> None:
    with manager(db_path) as db:
        prepare(db)
        damage(db, db_path)
        with pytest.raises(DatabaseError, match="re-anchoring entry not written: the database was seen damaged"):
            db.audit.reanchor("alice", "after the restore")
        db.recover()
        entry = db.audit.reanchor("alice", "after the restore")
        assert stored_ids(db)[0] == entry.entry_id and db.audit.verify().ok
