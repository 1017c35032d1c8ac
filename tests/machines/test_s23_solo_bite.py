"""The dataloss machine's ``solo_writer_process``: a writer process at synchronous NORMAL commits alone and is killed
between a COMMIT and its record; the managers of this process write on, then damage and recovery: never ``ok``
unless every acknowledged transfer is back and the balances add up; with this process at NORMAL too, its closed
managers leave the claim to commit alone free.

The rule is called directly with fixed arguments (no Hypothesis search), so adding rules to the machine does not
move these bites."""

from __future__ import annotations

import inspect
import random

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import redo


def run_rule(tmp_path, synchronous: str, who: int, part: str) -> str:
    """The rule once on a fresh example (the first value of every other setting): its first violation, or ""."""
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 13})()
    drawn = {**{k: v[0] for k, v in CONFIG_SPACE.items()}, "synchronous": synchronous}
    machine.start(random.Random(0), drawn, frozenset())
    try:
        machine.transfer(0, 1, 2, 5)
        machine.open_second_manager()
        machine.solo_writer_process(2, who, part, 7)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


@pytest.mark.parametrize(("synchronous", "who", "part"), [("FULL", 0, "btree"), ("EXTRA", 1, "header"),
                                                          ("NORMAL", 0, "btree"), ("NORMAL", 1, "truncate")])
def test_real_runtime_passes(tmp_path, synchronous, who, part):
    assert run_rule(tmp_path, synchronous, who, part) == ""


def patched(function, old: str, new: str):
    """``function`` of reliability.redo recompiled with ``old`` replaced by ``new`` in its source."""
    source = inspect.getsource(function)
    assert old in source
    namespace: dict = {}
    exec(compile(source.replace(old, new), redo.__file__, "exec"), redo.__dict__, namespace)  # noqa: S102
    return namespace[function.__name__]


@pytest.mark.parametrize(("synchronous", "who"), [("FULL", 0), ("EXTRA", 1)])
def test_it_bites_a_publisher_that_takes_a_dead_owner_for_alive(tmp_path, monkeypatch, synchronous, who):
    # The owner counted alive whenever the publisher does not hold the claim, whether its journal is locked or not.
    monkeypatch.setattr(redo, "_last_committed_alone", patched(
        redo._last_committed_alone, "alive = running and not own and _locked_by_someone(path)", "alive = running"))
    found = run_rule(tmp_path, synchronous, who, "btree")
    assert "p13_" in found and "transfer invariant" in found, found


def test_it_bites_a_close_that_keeps_the_claim(tmp_path, monkeypatch):
    # The journal's close forgets the claim without releasing its lock.
    monkeypatch.setattr(redo._SoloClaim, "close", lambda self: None)
    found = run_rule(tmp_path, "NORMAL", 0, "btree")
    assert "p13_" in found and "still held" in found, found
