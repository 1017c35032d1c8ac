"""The data-loss machine's second manager recovering right after another manager of this process recovered (P13).

A manager whose connection is still on the file it saw damaged runs ``recover()`` after another manager installed a
sound file: it must find the database recovered (reliability/durability/recovered_elsewhere.py), not quarantine the
sound file and rebuild it from a backup, and serve every acknowledged transfer. The main job never ran that path
(session 28's coverage of the main job: ``recovered_by_another`` past its identity check never ran). Called directly
(``corrupt_and_recover`` by a manager started beside two writers, so two other managers are open): passes on the
runtime, and bites a runtime that takes every file for the one it saw damaged.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.durability.recovery as recovery_module
from reliability.durability import recovered_elsewhere


def recovery_beside_two(part: str):
    def call(machine) -> None:
        machine.transfer(0, 1, 2, 5)
        machine.open_second_manager()
        machine.transfer(1, 2, 3, 5)
        machine.corrupt_and_recover(part, 3, "none", 0, 7)
    return call


@pytest.mark.parametrize("part", ["btree", "header"])
def test_passes_on_the_runtime(tmp_path, monkeypatch, part):
    seen = []
    real = recovered_elsewhere.recovered_by_another

    def spy(parts, redo, first):
        seen.append(real(parts, redo, first))
        return seen[-1]

    monkeypatch.setattr(recovery_module, "recovered_by_another", spy)
    run_and_tear_down(started_machine("dataloss", tmp_path, frozenset({"fault:corruption"})), recovery_beside_two(part))
    assert [] in seen, f"no manager found the database recovered by another: {seen}"  # the path is reached


@pytest.mark.parametrize("part", ["btree", "header"])
def test_bites_a_recovery_that_never_finds_it_done(tmp_path, monkeypatch, part):
    monkeypatch.setattr(recovery_module, "recovered_by_another", lambda parts, redo, seen: None)
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}))
    with pytest.raises(AssertionError, match="p13_corruption_recovery violated.*recovered the sound file again"):
        run_and_tear_down(machine, recovery_beside_two(part))
