"""``audit.verify()`` judges the log in the file the path names, also a moment after that file was put back.

Reads check that the path still names the file they read once every ``identity_check_interval`` (writes check
every time). Between two checks, a database deleted and restored from a copy is still read through the handle on
the unlinked file. For an ordinary read that is a bounded staleness; for ``verify()`` it was a false verdict: an
entry edited in the restored file verified ok (found by the audit machine in the py313-pysqlite3 cell, stop 29:
``disconnect`` delete with a copy, heal, edit, verify, all within 50 ms). The interval is set to an hour here, so
the window is not a matter of timing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module

from pytest_dbfault.faults import DisconnectFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another copy of SQLite in the process would not see the runtime's locks nor share its WAL index.
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def edit_entry(db_path: Path, seq: int) -> None:
    """Rewrite one entry's details in the file at the path, without the key (tampering)."""
    conn = sqlite_module().connect(str(db_path), isolation_level=None)
    try:
        conn.execute("UPDATE reliability_audit SET details = ? WHERE seq = ?", (json.dumps({"edited": True}), seq))
    finally:
        conn.close()


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_an_entry_edited_in_a_restored_database_fails_verify_at_once(tmp_path: Path, journal_mode: str) -> None:
    db_path = tmp_path / "app.db"
    db = DatabaseManager(fast_config(db_path, journal_mode=journal_mode, audit_hmac_key="k"))
    try:
        db.identity_check_interval = 3600  # (the next read after the check below does not look at the path)
        for n in range(3):
            db.audit.record("alice", f"action-{n}")
        assert db.audit.verify().ok  # (a read: the path is checked now, and not again for an hour)
        fault = DisconnectFault(db_path, mode="delete", backup_before=True)
        fault.inject()
        fault.heal()  # the copy is back at the path: another file than the one the handle has open
        assert db.connections.identity != db.connections.identity_at_path()
        edit_entry(db_path, 2)
        report = db.audit.verify()
        assert not report.ok, "an entry edited in the file at the path verified ok (the unlinked file was judged)"
        assert report.first_broken_seq == 2, report
        # The ordinary reads that follow read the restored file too (the verdict's check dropped the old handle).
        row = db.fetch_one("SELECT details FROM reliability_audit WHERE seq = 2")
        assert json.loads(row[0]) == {"edited": True}
    finally:
        db.close()
