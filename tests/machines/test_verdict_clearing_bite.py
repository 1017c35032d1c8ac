"""The health machine judges what clears a damage verdict (rule ``verdict_cleared_by_the_full_check``): a clean full
integrity check clears it (``integrity_ok`` True, ``<db>.damaged`` gone, health naming no damage), a clean quick check
does not (it cannot see an index entry changed in place). Each check fails against a runtime with one realistic
defect in how a clean check clears the verdict."""

from __future__ import annotations

import time

import pytest
from bite_settings import bite_settings, run_streams

from pytest_dbfault.machines import MACHINES
from reliability.durability import verdict

BITE = bite_settings(max_examples=60, steps=15)


def test_it_bites_a_clean_quick_check_that_clears_the_full_checks_verdict(tmp_path, monkeypatch):
    # Every clean check is taken as the file seen sound, whichever check it was (the quick/full distinction lost).
    real = verdict.seen_sound

    def seen_sound(parts, ok, *, since=None, keep=None, quick=False):
        real(parts, ok, since=since, keep=keep)

    monkeypatch.setattr(verdict, "seen_sound", seen_sound)
    with pytest.raises(AssertionError, match=r"index_entry damage .*check_integrity\(full=False\) passed and the "
                                             r"verdict no longer stands"):
        run_streams(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_it_bites_a_clean_full_check_that_leaves_the_damage_mark(tmp_path, monkeypatch):
    # The check's start is read from the monotonic clock, the mark's time from the wall clock: every mark looks
    # written after the check began (about damage it did not see), so a clean full check never removes it.
    monkeypatch.setattr(verdict, "now", time.monotonic)
    # (The mark then outlives its cause: a scheduled check, under a lock or not, finds the intact file still
    # marked damaged, which some searches meet first. The same defect, either message.)
    with pytest.raises(AssertionError, match=r"the undamaged file put back after \w+ damage .*check_integrity"
                                             r"\(full=True\) answered ok, yet the verdict stands|the scheduled "
                                             r"\w+( under a held lock)? marked an intact file damaged"):
        run_streams(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})
