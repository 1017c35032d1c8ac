"""The schema machine's ``release_starts_under_a_lock`` (P3/P4): a startup check a lock kept from finishing is made
again in the background.

A lock held by another process at startup is no verdict on the schema: the runtime refuses writes until it could
check, and checks again on its scheduler ("checked again in the background", reliability/durability/trust.py). The
ninth mutant sample found that a runtime which never scheduled that re-check (writes refused for the process's
whole life, the defect that line was written for) went unseen: the main job never started a runtime under a lock
that outlasted its retry policy. Called directly: passes on the runtime; bites a runtime that takes the lock for a
final verdict.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import trust as trust_module


def machine(tmp_path, journal_mode):
    return started_machine("schema", tmp_path, frozenset({"release", "fault:locked"}), journal_mode=journal_mode)


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
@pytest.mark.parametrize("mode", [0, 1])
def test_passes_on_the_runtime(tmp_path, journal_mode, mode):
    run_and_tear_down(machine(tmp_path, journal_mode), lambda m: m.release_starts_under_a_lock(mode))


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_bites_a_startup_lock_taken_for_a_verdict(tmp_path, monkeypatch, journal_mode):
    monkeypatch.setattr(trust_module, "retryable_in_maintenance", lambda exc: False)
    with pytest.raises(AssertionError, match=r"p03_schema_validation violated.*could not check its schema, and "
                                             r"nothing checks it again"):
        run_and_tear_down(machine(tmp_path, journal_mode), lambda m: m.release_starts_under_a_lock(1))
