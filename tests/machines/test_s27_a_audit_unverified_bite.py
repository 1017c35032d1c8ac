"""The audit machine's rule ``rotate_the_audit_key`` (``forget``: restarted with a new key, the old one not listed)
judges more of ``AuditLogger.verify``'s promise for entries under a key not configured (session 27 surviving
mutants ``audit.py:806``, the count of such entries, and ``audit.py:831``, the verdict when only the entries, not
the anchor, are under that key):

* every such entry is counted (``unverified``: the entries in the file whose key id names no configured key) and
  the first is named (``first_unverified_seq``);
* after the administrator re-anchors the log under the new key (the anchor can be checked again), the log is still
  *unverifiable*, naming the old key, with the same count: the entries under it still cannot be checked.

Called directly on a fresh machine with three entries: it passes on the runtime, and fails against a runtime with
each defect."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.audit import AuditLogger, VerifyReport


def run_rule(tmp_path, entries: int = 3) -> None:
    machine = started_machine("audit", tmp_path, frozenset({"audit", "fault:locked"}))

    def call(m):
        for _ in range(entries):
            m.record_entry(4)
        m.rotate_the_audit_key(True, 0)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("entries", [1, 3])
def test_the_rule_passes_on_the_runtime(tmp_path, entries):
    run_rule(tmp_path, entries)


def test_it_bites_a_count_of_keys_not_entries(tmp_path, monkeypatch):
    # The unverified count is the number of unknown keys, not of the entries under them.
    real = AuditLogger.verify

    def verify(self):
        report = real(self)
        if report.verdict != "unverifiable":
            return report
        return dataclasses.replace(report, unverified=len(report.unknown_key_ids))

    monkeypatch.setattr(AuditLogger, "verify", verify)
    with pytest.raises(AssertionError, match=r"p15_\w+ violated .*counts 1 unverified entries"):
        run_rule(tmp_path)


def test_it_bites_a_verdict_that_needs_the_anchor_unverifiable_too(tmp_path, monkeypatch):
    # Entries under a key not configured make the log unverifiable only while its anchor is unverifiable too:
    # once re-anchored under the current key, the unchecked entries pass as green.
    real = AuditLogger.verify

    def verify(self):
        report = real(self)
        if report.verdict == "unverifiable" and self._read_anchor()[0] == "ok":
            return VerifyReport(True, report.checked)
        return report

    monkeypatch.setattr(AuditLogger, "verify", verify)
    with pytest.raises(AssertionError, match=r"p15_\w+ violated .*re-anchored under the new key: verify\(\) says ok"):
        run_rule(tmp_path)
