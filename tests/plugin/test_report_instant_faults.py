"""Instant faults in the report (issue #14 item 5): a kill is never "in force", so it is checked after it.

The report used to warn "no property was checked while it was in force" for every kill, a gap no run
could ever fill. Now an instant with checks after it gets a plain label, and one with none still warns.
"""

from __future__ import annotations

from pytest_dbfault.report import build_report, render_summary
from pytest_dbfault.stats import INSTANT_KINDS, Stats, after


def test_a_kill_checked_after_it_is_labelled_an_instant_not_warned_about() -> None:
    stats = Stats()
    stats.record_fault("worker_killed")
    stats.record_check(6, [after("worker_killed")])
    stats.record_check(13, [after("worker_killed")])
    data = build_report(stats, seed=1)
    assert data["instant_faults"] == ["worker_killed"] and "worker_killed" not in data["unchecked_faults"]
    lines = render_summary(data)
    assert "instant fault: worker_killed (1x) is never in force: checked after it (2 checks)" in lines
    assert not any("WARNING" in line and "worker_killed" in line for line in lines)


def test_a_kill_with_no_check_after_it_is_still_a_warning() -> None:
    stats = Stats()
    stats.record_fault("kill")
    stats.record_check(6)  # a check with no fault in force: not after the kill
    data = build_report(stats, seed=1)
    assert data["unchecked_faults"] == ["kill"] and data["instant_faults"] == []
    assert "WARNING: kill was injected 1x but no property was checked after it" in render_summary(data)


def test_a_fault_with_a_duration_checked_only_after_it_keeps_its_warning() -> None:
    stats = Stats()
    stats.record_fault("locked")
    stats.record_check(1, [after("locked")])
    data = build_report(stats, seed=1)
    assert "locked" not in INSTANT_KINDS and data["unchecked_faults"] == ["locked"]
    assert ("WARNING: locked was injected 1x but no property was checked while it was in force (1 after it healed)"
            in render_summary(data))
