"""The audit machine's rule ``edit_the_fallback_file`` leaves the fallback file ending with a line torn by a crash
mid-append (one more entry, never acknowledged), beside the lines edited by hand, and judges what reconcile does with
it (session 27 surviving mutant ``audit.py:660``: "only a torn last line (crash mid-append) is expected"): it is
skipped, not reported as an edited or unreadable entry (no ``audit.fallback_rejected`` note in the log, nothing kept
in ``<fallback>.rejected``), while every edited line still is.

Called directly on a fresh machine: it passes on the runtime, and fails against a runtime that rejects every
unreadable line, the torn last one too."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.audit import AuditLogger

FIELDS = ["target", "actor", "action", "details", "ts"]


def run_rule(tmp_path, n: int = 1, param: int = 0) -> None:
    machine = started_machine("audit", tmp_path, frozenset({"audit", "outage", "fault:locked"}))

    def call(m):
        m.record_entry(4)
        m.edit_the_fallback_file(FIELDS, n, param)
        m.p15_audit_retry()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("n", [1, 3])
def test_the_rule_passes_on_the_runtime(tmp_path, n):
    run_rule(tmp_path, n)


def test_it_bites_a_reconcile_that_rejects_the_torn_last_line(tmp_path, monkeypatch):
    # Every unreadable line is rejected (noted in the log, kept aside), a crash's torn append too.
    real = AuditLogger._read_fallback

    def read_fallback(self):
        out, rejected = real(self)
        for path in self._fallback_files():
            text = path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                line = text.splitlines()[-1]
                rejected.append((line, f"line {len(text.splitlines())} unreadable"))
        return out, rejected

    monkeypatch.setattr(AuditLogger, "_read_fallback", read_fallback)
    with pytest.raises(AssertionError, match=r"p15_\w+ violated .*torn by a crash mid-append"):
        run_rule(tmp_path)
