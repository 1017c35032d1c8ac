"""The health machine's ``inspector_follows_the_path`` (P10): an ``Inspector`` asked for its health after the database
was moved away or replaced by a file that is no database says it cannot read it (``unavailable``) and says why: a
report that is not healthy gives its reason, as the runtime's own health does (``reliability health`` prints them).

Session 28 surviving mutant ``inspection.py:316`` (the reason "the database cannot be read: ..." not appended): the
status and connection state were judged, the reasons were not. The rule is called directly (no Hypothesis search):
it passes on the runtime and bites an inspection whose unreadable-database report gives no reason."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import inspection

CASES = [("disconnect_rename", "quick", "health"), ("disconnect_replace", "health", "health")]


def run(tmp_path, change: str, first: str, then: str) -> None:
    machine = started_machine("health_integrity", tmp_path, frozenset({"fault:locked"}), journal_mode="WAL")
    run_and_tear_down(machine, lambda m: m.inspector_follows_the_path(change, first, then, 7))


@pytest.mark.parametrize(("change", "first", "then"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, change, first, then):
    run(tmp_path, change, first, then)


def test_it_bites_an_unreadable_report_without_a_reason(tmp_path, monkeypatch):
    real = inspection.Inspector.health

    def health(self):
        report = real(self)
        if str(report.status) != "healthy":
            report = dataclasses.replace(report, reasons=tuple(
                r for r in report.reasons if not r.startswith("the database cannot be read")))
        return report

    monkeypatch.setattr(inspection.Inspector, "health", health)
    with pytest.raises(AssertionError, match=r"p10_\w+ violated .*read-only inspection.*still reports on the old "
                                             r"file: health \S+ \(unavailable\): reasons \[\]"):
        run(tmp_path, "disconnect_replace", "health", "health")
