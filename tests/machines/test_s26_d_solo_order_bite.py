"""The data-loss machine judges that redo sequences follow the order transactions were acknowledged in (session 26,
surviving mutant ``redo.py:306``: a manager publishing the sequence of another one committing alone in the same
process no longer stopped it, so that one went on committing alone with numbers below the publisher's).

Recovery replays every journal in sequence order, and a transfer writes balances as values: a later transfer
numbered below an earlier one is undone by it at replay. The machine's recovery check saw that only when a recovery
from an older backup followed the exact interleaving; ``transfer`` now judges the order at each acknowledged transfer
(``judge_sequence_order``). Called directly: both managers at synchronous NORMAL (the first holds the claim to commit
alone), transfers through manager 0, 1, 0."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.stats import property_id
from reliability import redo


def take_turns(tmp_path, synchronous: str = "NORMAL", recover: bool = False) -> None:
    machine = started_machine("dataloss", tmp_path, frozenset({"fault:locked"}), synchronous=synchronous)

    def call(m):
        m.open_second_manager()
        m.transfer(0, 1, 2, 5)
        m.transfer(1, 2, 3, 7)
        m.transfer(0, 2, 1, 11)
        m.transfer(1, 4, 5, 13)
        if recover:
            m.corrupt_and_recover("btree", 0, "none", 0, 3)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("synchronous", "recover"), [("NORMAL", False), ("NORMAL", True), ("FULL", False)])
def test_the_real_runtime_numbers_transactions_in_order(tmp_path, synchronous, recover):
    take_turns(tmp_path, synchronous, recover)


def test_it_bites_a_publish_that_never_stops_the_manager_committing_alone(tmp_path, monkeypatch):
    # Publishing another manager's run alone takes it as stopped: its claim is not revoked (it goes on committing
    # alone, numbering from its own last sequence) and, its file not closed cleanly, a number is left out for it.
    real = redo._last_committed_alone

    def last_committed_alone(base, owner, recorded, *, own, running, clean=None):
        return real(base, owner, recorded, own=own, running=False, clean=clean)

    monkeypatch.setattr(redo, "_last_committed_alone", last_committed_alone)
    with pytest.raises(AssertionError, match=f"{property_id(13)}.*acknowledged after transfer .* its redo sequence"):
        take_turns(tmp_path)
