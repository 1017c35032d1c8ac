"""The audit fallback file after a crash mid-append, and with line-separator characters in an entry (session 28).

An entry acknowledged as pending (written to the fallback file, fsynced) is never lost in silence:

* a crash (or power loss) mid-append leaves the file's last line without its newline; the next append, after a
  restart while the database is still locked, must not be glued onto that fragment (read back as one unreadable
  last line, which reconcile took for the crash's torn append and dropped: the acknowledged entry was gone, the
  chain verified, nothing was noted);
* json.dumps(ensure_ascii=False) keeps U+2028 / U+0085 raw in a line, and the reader must not take them for line
  ends (it cut the entry in two, rejected both halves, and never chained the entry).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config

from pytest_dbfault.faults import make_fault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager

KEY = "test-hmac-key"


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lock taken through another copy of SQLite in this process goes unseen by the runtime's (pysqlite3 cell).
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def _db(path: Path) -> DatabaseManager:
    return DatabaseManager(fast_config(path, audit_hmac_key=KEY, busy_timeout_ms=0))


def test_an_entry_appended_after_a_torn_last_line_is_reconciled(db_path: Path) -> None:
    with _db(db_path) as db:
        db.audit.record("alice", "before", "x")
        with make_fault("locked", db_path):
            db.audit.record("alice", "during-1", "x")
            # (the second record's reconcile sets the first file aside as "<fallback>.reconciling", fails, and
            # this entry starts a new fallback file: the one a later append goes to without a rename)
            db.audit.record("alice", "during-2", "x")
        fallback = db.audit.fallback_path
    with open(fallback, "ab") as fh:  # the process died mid-append of one more entry (never acknowledged)
        fh.write(b'{"entry_id": "0123456789abcdef", "ts": 1.0, "act')
    with _db(db_path) as db:
        with make_fault("locked", db_path):
            after = db.audit.record("alice", "after-restart", "x")
        assert after.pending
        assert "after-restart" in [e.action for e in db.audit.pending()]
        db.audit.reconcile()
        stored = [e.action for e in reversed(db.audit.entries(limit=20, include_pending=False))]
        assert [a for a in stored if a != "audit.fallback_rejected"] == ["before", "during-1", "during-2",
                                                                         "after-restart"]
        assert db.audit.verify().ok


def test_a_complete_unreadable_last_line_is_rejected_not_skipped(db_path: Path) -> None:
    # A last line that ends with its newline was written whole: unreadable, it is noted, not taken for a torn append.
    with _db(db_path) as db:
        with make_fault("locked", db_path):
            db.audit.record("alice", "during", "x")
        fallback = db.audit.fallback_path
        with open(fallback, "ab") as fh:
            fh.write(b'{"entry_id": "glued"{"entry_id": "x"}\n')
        db.audit.reconcile()
        actions = [e.action for e in reversed(db.audit.entries(limit=20, include_pending=False))]
        assert actions == ["during", "audit.fallback_rejected"]


def test_an_entry_holding_line_separator_characters_survives_the_fallback(db_path: Path) -> None:
    details = {"text": "one\u2028two\u2029three\x85four\x0bfive\x1cend"}
    with _db(db_path) as db:
        with make_fault("locked", db_path):
            entry = db.audit.record("alice", "note", "x", details)
        assert entry.pending
        assert [e.details for e in db.audit.pending()] == [details]
        assert db.audit.reconcile() == 1
        assert [(e.action, e.details) for e in db.audit.entries(limit=20)] == [("note", details)]
        assert db.audit.verify().ok
