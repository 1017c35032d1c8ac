"""The health machine judges the shared damage mark ``<db>.damaged`` beyond its presence (issue #14, session 24
surviving mutants ``damage_mark.py:172``, ``damage_mark.py:246`` and ``durability/verdict.py:76``):

* rule ``sticky_mark_outlives_a_later_verdict``: a sticky mark about this file (another process found its ``-wal``
  damaged) rewritten by this runtime's statement verdict stays sticky, names this file and keeps its first problem;
* rule ``marker_error_lifted_once_fixed``: an error removing the marker (something planted at its path) is named
  by health while it stands, and no longer once the planted thing is gone and a clean check ran.

Each rule is called directly with chosen arguments (no Hypothesis search order involved), once against the real
runtime (it passes) and once against a runtime with a realistic defect of the class (it fails)."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import damage_mark
from reliability.durability import verdict


def sticky(tmp_path, part: str = "btree_root", frame: int = 7, seed: int = 11) -> None:
    machine = started_machine("health_integrity", tmp_path, frozenset({"integrity", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.sticky_mark_outlives_a_later_verdict(part, frame, seed))


def marker_error(tmp_path, planted: str = "link", then: str = "full") -> None:
    machine = started_machine("health_integrity", tmp_path, frozenset({"integrity", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.marker_error_lifted_once_fixed(planted, then))


@pytest.mark.parametrize("part", ["btree_root", "btree_leaf"])
def test_the_real_runtime_keeps_a_sticky_mark_sticky(tmp_path, part):
    sticky(tmp_path, part)


def test_it_bites_a_rewrite_that_keeps_only_the_new_problems(tmp_path, monkeypatch):
    # The merge of a sticky mark with a later verdict keeps the stickiness but writes only the new problems.
    real = damage_mark.DamageMarker.write

    def write(self, found_by, problems, file, *, sticky=False):
        old = self.read()
        if old is not None and old.sticky and old.file == file and not sticky:
            return real(self, found_by, list(problems), file, sticky=True)
        return real(self, found_by, problems, file, sticky=sticky)

    monkeypatch.setattr(damage_mark.DamageMarker, "write", write)
    with pytest.raises(AssertionError, match=r"p11_integrity_checking violated .*a sticky damage mark about this file"):
        sticky(tmp_path)


def test_it_bites_a_marker_that_forgets_which_file(tmp_path, monkeypatch):
    # The file's identity is written as a JSON object ({"dev":, "ino":}) but read back as a pair only: every mark
    # is "about no file in particular", so a sticky mark no longer matches the file a later verdict names.
    real_parse = damage_mark._parse

    def parse(path, data):
        mark = real_parse(path, data)
        if mark.unreadable is None and mark.file is not None:
            from dataclasses import replace

            return replace(mark, file=None)
        return mark

    monkeypatch.setattr(damage_mark, "_parse", parse)
    with pytest.raises(AssertionError, match=r"violated .*(a sticky damage mark about this file|damage_mark after)"):
        sticky(tmp_path, "btree_leaf", 3, 40000)


@pytest.mark.parametrize(("planted", "then"), [("link", "full"), ("dangling_link", "quick"), ("directory", "full")])
def test_the_real_runtime_lifts_the_marker_error(tmp_path, planted, then):
    marker_error(tmp_path, planted, then)


def test_it_bites_an_error_that_outlives_the_fix(tmp_path, monkeypatch):
    # The error is reset only when a mark is written (seen_damaged), never when one is removed (or nothing was).
    real = verdict.seen_sound

    def seen_sound(parts, ok, **kwargs):
        kept = parts.monitor.damage_mark_error
        real(parts, ok, **kwargs)
        if parts.monitor.damage_mark_error is None:
            parts.monitor.damage_mark_error = kept

    monkeypatch.setattr(verdict, "seen_sound", seen_sound)
    with pytest.raises(AssertionError, match=r"p10_health_monitoring violated .*yet health still names the marker"):
        marker_error(tmp_path, "dangling_link", "quick")
