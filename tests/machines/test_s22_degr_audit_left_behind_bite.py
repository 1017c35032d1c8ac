"""The degradation machine's rule ``audit_entries_left_behind_are_named`` (README: a restart with a new
``audit_fallback_path`` reads only the new file; what waits in the old one is named by health, never dropped in
silence). Called with fixed arguments on a fresh machine, each check fails against a runtime with one realistic
defect, and passes on the runtime."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.degraded import places


def run_rule(base: Path, entries: int, journal_mode: str = "WAL") -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["degradation_queue"], None, base_dir=str(base), enforce={15})()
    drawn = {**{k: v[0] for k, v in CONFIG_SPACE.items()}, "journal_mode": journal_mode}
    machine.start(random.Random(0), drawn, frozenset({"commands", "outage", "fault:locked"}))
    try:
        machine.audit_entries_left_behind_are_named(3, entries, 0)
    finally:
        machine.teardown()


@pytest.mark.parametrize(("entries", "journal_mode"), [(1, "WAL"), (2, "DELETE"), (3, "TRUNCATE")])
def test_the_rule_passes_on_the_runtime(tmp_path, entries, journal_mode):
    run_rule(tmp_path, entries, journal_mode)


def test_it_bites_a_runtime_that_remembers_only_the_queue(tmp_path, monkeypatch):
    # The places table was written for the write queue first; the audit fallback's old place is never looked at.
    real = places.left_behind

    def left_behind(rows, current):
        return [b for b in real(rows, current) if b.setting == "write_queue_path"]

    monkeypatch.setattr(places, "left_behind", left_behind)
    with pytest.raises(AssertionError, match=r"restarted with audit_fallback_path .* health is 'healthy' with "):
        run_rule(tmp_path, 2)


def test_it_bites_a_count_of_the_bytes_not_the_entries(tmp_path, monkeypatch):
    # "How much waits" miscounted: one more than the old place holds (its working copy counted with a stale line).
    real = places.waiting_in

    def waiting_in(setting, path):
        n = real(setting, path)
        return n + 1 if setting == "audit_fallback_path" and n else n

    monkeypatch.setattr(places, "waiting_in", waiting_in)
    with pytest.raises(AssertionError, match=r"\(1 waiting there\), places_left is \[\('audit_fallback_path', .*, 2\)"):
        run_rule(tmp_path, 1)
