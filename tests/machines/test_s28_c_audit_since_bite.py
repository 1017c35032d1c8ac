"""The degradation machine's flag history read ``since`` a time (P15): ``admin.audit(..., since=t)`` gives exactly the
entries at or after ``t`` (README, ``reliability audit --since``: "at or after"). The main job never read the audit
log with ``since`` (session 28's coverage: ``AuditLogger.entries``' ``ts >= ?`` never ran). Called directly (three
flag changes by an administrator, then the replay check that reads the history): passes on the runtime; bites an
audit log whose ``since`` leaves out the entry of that very time.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import audit as audit_module


def history_read(m) -> None:
    for n, value in ((0, 1), (1, 2), (0, 3)):
        m.set_flag(True, n, value, "api", False)
    m.check_flag_history()


def machine(tmp_path):
    return started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))


def test_passes_on_the_runtime(tmp_path):
    run_and_tear_down(machine(tmp_path), history_read)


def test_bites_a_since_that_leaves_out_its_own_time(tmp_path, monkeypatch):
    real = audit_module.AuditLogger.entries

    def entries(self, limit=100, *, since=None, **kwargs):
        out = real(self, limit, since=since, **kwargs)
        return out if since is None else [e for e in out if e.ts > since]

    monkeypatch.setattr(audit_module.AuditLogger, "entries", entries)
    with pytest.raises(AssertionError, match="p15_audit_retry violated.*since=.*not the 2 at or after"):
        run_and_tear_down(machine(tmp_path), history_read)
