"""The audit machine judges the log as a reader and an administrator meet it: ``db.audit.entries()`` for every
limit and filter with entries waiting in the fallback file (rule ``read_the_log_with_entries_waiting``), entries
appended inside the application's transactions that roll back, whole or at a savepoint (rule
``append_in_a_failed_transaction``), and a log cut short then re-anchored (rule ``reanchor_a_shortened_log``). Each
check fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability import audit as audit_module
from reliability.audit import AuditLogger

BITE = bite_settings(max_examples=60, steps=15)


def test_it_bites_entries_that_add_the_waiting_ones_past_the_limit(tmp_path, monkeypatch):
    # The waiting entries put in front of a page of stored ones that was itself cut at `limit`: one more entry per
    # waiting one than asked for.
    real = AuditLogger.entries

    def entries(self, limit=100, *, actor=None, action=None, since=None, include_pending=True):
        stored = real(self, limit, actor=actor, action=action, since=since, include_pending=False)
        if not include_pending:
            return stored
        waiting = [e for e in reversed(self.pending()) if audit_module._matches(e, actor, action, since)]
        return waiting + stored

    monkeypatch.setattr(AuditLogger, "entries", entries)
    with pytest.raises(AssertionError, match=r"p15_audit_retry violated .*db.audit.entries\(limit=\d+\) with \d "
                                             r"entries waiting"):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_it_bites_a_savepoint_rollback_that_keeps_the_appended_head(tmp_path, monkeypatch):
    # The savepoint hook forgets the anchor only when the journal asks: the entry appended in a nested block that
    # rolled back stays the head to anchor, and the outer block's commit anchors an entry that is not in the log.
    monkeypatch.setattr(AuditLogger, "_on_savepoint", lambda self, event, level: None)
    with pytest.raises(AssertionError, match=r"p15_audit_retry violated .*an audit entry appended in a nested .*"
                                             r"(verify\(\) says broken|failed on a healthy database)"):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_it_bites_an_anchor_that_follows_any_head(tmp_path, monkeypatch):
    # "The anchor follows the chain": it moves to every new head, also on a log whose anchored head was deleted,
    # so an entry is chained onto a log cut short and the evidence of the cut is overwritten.
    def may_advance(self):
        self._anchored_head_missing = False
        return True

    monkeypatch.setattr(AuditLogger, "_anchor_may_advance", may_advance)
    with pytest.raises(AssertionError, match=r"p15_audit_retry violated .*recorded on an audit log cut short .*was "
                                             r"stored in the database"):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_it_bites_a_record_that_takes_any_target(tmp_path, monkeypatch):
    # The target's length limit dropped in a refactor of the validation (the names' limits kept).
    monkeypatch.setattr(audit_module, "MAX_TARGET", 10**9)
    # Every invalid entry the rule draws is the over-long target, so the bite does not depend on which of the
    # nine kinds the fixed search happens to draw (it drew none of this one once the other machines changed).
    from pytest_dbfault.machines import audit as audit_machine

    long_target = audit_machine.INVALID_ENTRIES["a target of 1001 characters"]
    monkeypatch.setattr(audit_machine, "INVALID_ENTRIES", dict.fromkeys(audit_machine.INVALID_ENTRIES, long_target))
    with pytest.raises(AssertionError, match=r"p15_audit_retry violated .*db.audit.record\(\) of an entry with "
                                             r".* answered AuditEntry"):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_it_bites_audit_files_readable_by_all(tmp_path, monkeypatch):
    # The runtime's private files created with the usual 0644 (a constant "tidied" to the common default).
    from reliability import files

    monkeypatch.setattr(files, "FILE_MODE", 0o644)
    with pytest.raises(AssertionError, match=r"p15_audit_retry violated .*the audit log's files are not private"):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})
