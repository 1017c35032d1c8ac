"""The data-loss machine's ``corrupt_and_recover`` by a manager started beside the live writers (``who`` 3), as
``reliability recover`` run while the service is up: every journal intact, so recovery must be ``ok`` (P13).

The fresh manager's own journal never anchored on the damaged file and took no write. Called directly with fixed
arguments: passes on the runtime, and bites a runtime whose recovery reports that journal's startup error as a
loss (a false alarm that pages an operator with every acknowledged write back).
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

import reliability.redo as redo_module


def recovery_beside(peer: bool, part: str, pick: int = 0):
    """Transfers (through a second manager too with ``peer``), then ``corrupt_and_recover`` beside the writers
    (``who`` 3): with an even ``pick`` the manager beside recovers; odd, writer 0 recovers while it watches."""
    def call(machine) -> None:
        machine.transfer(0, 1, 2, 5)
        if peer:
            machine.open_second_manager()
            machine.transfer(1, 2, 3, 5)
        machine.corrupt_and_recover(part, 3, "none", pick, 7)
    return call


@pytest.mark.parametrize("peer", [False, True])
@pytest.mark.parametrize("part", ["btree", "header"])
def test_passes_on_the_runtime(tmp_path, peer, part):
    run_and_tear_down(started_machine("dataloss", tmp_path, frozenset({"fault:corruption"})),
                      recovery_beside(peer, part))


@pytest.mark.parametrize("part", ["btree", "header"])
def test_bites_a_startup_error_reported_as_a_loss(tmp_path, monkeypatch, part):
    monkeypatch.setattr(redo_module.RedoJournal, "lost_writes", lambda self: self.error)
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:corruption"}))
    found = "p13_corruption_recovery violated.*(on account of its own journal|every journal intact)"
    with pytest.raises(AssertionError, match=found):
        run_and_tear_down(machine, recovery_beside(True, part))
