"""The restart machine's rule ``power_loss_after_edited_fallback_lines`` (issue #14: a power-loss model for the
runtime's own files, the audit fallback among them; session 25 surviving mutant ``audit.py:722``, the fsync of
``<fallback>.rejected`` dropped). Fallback lines edited in the file are rejected at reconcile and kept in
``<fallback>.rejected``; a later entry is chained (its anchor replaced: the directory synced); the power goes; after
the restart every kept line is still there. Called with fixed arguments on a fresh machine: it passes on the
runtime, and fails against a runtime that writes the rejected lines without an fsync."""

from __future__ import annotations

import os

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines.powerloss import supported
from reliability import audit as audit_module
from reliability import files

pytestmark = pytest.mark.skipif(not supported(), reason="the power-loss model needs /proc/self/fd")

GROUPS = frozenset({"power_loss", "outage", "audit", "fault:locked"})
CASES = [(["details", "actor", "target", "action", "ts"], 1, 0), (["ts", "target", "actor", "action", "details"], 2, 3)]


def run_rule(tmp_path, fields, n, param) -> None:
    machine = started_machine("restart", tmp_path, GROUPS)
    assert machine.powerloss is not None

    def call(m):
        before = m.rejected_lines()
        m.power_loss_after_edited_fallback_lines(fields, n, param)
        assert len(m.rejected_lines()) >= len(before) + n, "the rule edited no fallback line (nothing judged)"

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("fields", "n", "param"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, fields, n, param):
    run_rule(tmp_path, fields, n, param)


def test_it_bites_rejected_lines_written_without_fsync(tmp_path, monkeypatch):
    def keep_rejected(self, lines):
        path = self.fallback_path.with_name(self.fallback_path.name + ".rejected")
        fd = files.open_private(path, what="rejected audit fallback entries")
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode("utf-8", "replace"))
        finally:
            os.close(fd)

    monkeypatch.setattr(audit_module.AuditLogger, "_keep_rejected", keep_rejected)
    with pytest.raises(AssertionError, match=r"p15_\w+ violated .*then the power went: after the restart"):
        run_rule(tmp_path, *CASES[0])
