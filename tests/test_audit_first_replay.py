"""A replay that reconciles the audit fallback first (admin commands registered) never moves an entry
into a file seen damaged: a recovery that restores a backup would drop it with that file (issue #15)."""

from __future__ import annotations

from pathlib import Path

from runtime_helpers import LockHolder, fast_config

from pytest_dbfault.faults import CorruptFault
from reliability import DatabaseError, DatabaseManager, admin


def stored_audit_ids(db: DatabaseManager) -> list[str]:
    return [e.entry_id for e in db.audit.entries(100, include_pending=False)]


def test_the_audit_fallback_stays_put_while_the_database_is_seen_damaged(db_path: Path) -> None:
    # No redo journal: a recovery restores the backup and says later writes are lost, so what moved
    # into the damaged file after the backup is gone with it. The operator recovers (no auto_recover).
    with DatabaseManager(fast_config(db_path, journal_mode="DELETE", admin_actors="alice", audit_hmac_key="k",
                                           redo_journal=False, auto_recover=False)) as db:
        db.commands.recheck_interval = 0
        assert admin.set_flag(db, "seed", 0, "alice").ok  # creates the flags table
        assert db.backup().verified
        with LockHolder(db_path):  # a real lock: the entry goes to the fallback, the change is queued
            entry = db.audit.record("bob", "export", "report")
            assert entry.pending
            assert admin.set_flag(db, "beta", 1, "alice").status == "queued"
        assert db.commands.audit_first  # registered admin commands: the replay reconciles the fallback first
        CorruptFault(db_path, part="btree", table="reliability_flags", page="root", seed=7).inject()
        try:
            db.fetch_all("SELECT * FROM reliability_flags")  # (name alone reads only its index)
        except DatabaseError as err:
            assert str(err.kind) == "corrupt"  # the runtime has now seen the damage
        else:
            raise AssertionError("the damaged table was read without an error: the fault is not in force")

        report = db.commands.replay()
        assert report.error is not None and report.remaining == 1  # the queued change waits
        # The entry is still where it is safe: not moved into the damaged file.
        assert entry.entry_id in [e.entry_id for e in db.audit.pending()]
        assert entry.entry_id not in stored_audit_ids(db)

        recovered = db.recover()
        assert not recovered.ok  # no redo journal: the backup comes back, and the report says what is lost
        report = db.commands.replay()  # the restored file passes quick_check: the fallback goes in first
        assert report.error is None and report.applied == 1
        assert db.audit.pending() == []
        ids = stored_audit_ids(db)
        assert entry.entry_id in ids and ids.count(entry.entry_id) == 1
        assert admin.get_flag(db, "beta").value.value == 1
        verified = db.audit.verify()
        # (The backup holds the anchored head: nothing after it reached the file, so nothing was rewound.)
        assert verified.ok, verified
