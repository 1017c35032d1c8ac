"""The audit machine's key rotation rule bites: each test plants one key-handling defect in the runtime and the
machine must find it (P15). The passing run of the same machine (``test_property_machine[audit]``) shows the rule
does not fail on the real runtime.

Planted, as the other bite tests do, by patching the runtime's classes for the length of one test (the command
line runs in-process, so ``reliability verify-audit`` has the defect too)."""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite

#: rotate_the_audit_key is one rule of the audit machine's and needs an entry first: enough runs to meet it
BITE = bite_settings(max_examples=60, steps=15)


def run_audit_machine(tmp_path) -> None:
    run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_the_audit_machine_bites_a_verify_that_drops_the_key_id_check(tmp_path, monkeypatch):
    # Every entry checked with the current key whatever key its id names (the defect this rule was written
    # for): after a rotation, the honest log's old entries look tampered, with the old key retired or not.
    from reliability.audit import AuditLogger

    monkeypatch.setattr(AuditLogger, "_keys_for", staticmethod(lambda ring, kid: [next(iter(ring.values()))]))
    found = (rf"{property_id(15)}.*(audit key rotated .*honest log does not verify"
             rf"|not listed: verify\(\) says broken .*not unverifiable)")
    with pytest.raises(AssertionError, match=found):
        run_audit_machine(tmp_path)


def test_the_audit_machine_bites_a_verify_that_passes_entries_under_an_unknown_key(tmp_path, monkeypatch):
    # An entry whose key is not configured is skipped as if it had been checked: green without a check.
    from reliability.audit import AuditLogger, VerifyReport

    real = AuditLogger.verify

    def lenient(self):
        report = real(self)
        return VerifyReport(True, report.checked) if report.verdict == "unverifiable" else report

    monkeypatch.setattr(AuditLogger, "verify", lenient)
    with pytest.raises(AssertionError, match=r"not listed: verify\(\) says ok .*not unverifiable"):
        run_audit_machine(tmp_path)


def test_the_audit_machine_bites_a_verify_that_calls_an_unknown_key_tampering(tmp_path, monkeypatch):
    # An entry whose key is not configured is reported tampered: a red verdict that is not true.
    from reliability.audit import AuditLogger, VerifyReport

    real = AuditLogger.verify

    def alarmist(self):
        report = real(self)
        if report.verdict != "unverifiable":
            return report
        return VerifyReport(False, report.checked, report.first_unverified_seq, None,
                            "the entry's content does not match its hash")

    monkeypatch.setattr(AuditLogger, "verify", alarmist)
    with pytest.raises(AssertionError, match=r"not listed: verify\(\) says broken .*not unverifiable"):
        run_audit_machine(tmp_path)


def test_the_audit_machine_bites_new_entries_chained_under_a_retired_key(tmp_path, monkeypatch):
    # The retired key keeps signing new entries (the first configured key taken, not the current one).
    from reliability.audit import AuditLogger

    real = AuditLogger.key

    def first_retired(self):
        retired = self.db.config.audit_previous_key_list
        return retired[0].encode() if retired else real.fget(self)

    monkeypatch.setattr(AuditLogger, "key", property(first_retired))
    # (Or, when the forgotten-key branch re-anchored the log under the new key first: that entry, under the key now
    # current, no longer verifies once the old key is listed, since the keyring is built from the retired key.)
    with pytest.raises(AssertionError, match=r"entry recorded after the rotation .*not under the new key"
                                             r"|audit key rotated .*honest log does not verify"):
        run_audit_machine(tmp_path)


def test_the_audit_machine_bites_a_verify_that_misses_an_old_entry_edited_after_the_rotation(tmp_path, monkeypatch):
    # Entries under a retired key only have their links checked, not their content.
    from reliability.audit import AuditLogger, key_id

    real = AuditLogger._entry_matches

    def trusting_retired(self, keys, prev, entry_id, ts, actor, action, target, details, kid, digest):
        if kid and kid != key_id(self.key):
            return True
        return real(self, keys, prev, entry_id, ts, actor, action, target, details, kid, digest)

    monkeypatch.setattr(AuditLogger, "_entry_matches", trusting_retired)
    with pytest.raises(AssertionError, match=r"written under the retired key, edited in the file after the "
                                             r"rotation: verify\(\) says ok"):
        run_audit_machine(tmp_path)
