"""The data-loss machine's ``recover_and_judge`` with a second manager open: right after one manager's recovery
reports ok, the other manager's health, asked before any read of its own follows the path, judges the installed
file and never says the database moved (P10).

Called directly with fixed arguments (b-tree damage recovered by manager 0 or 1 while the other is open): it passes
on the runtime and bites a runtime whose health stays on the handle to the quarantined file (the planted bug
``s27_health_stays_on_the_replaced_file``: health said unavailable, "readonly_dbmoved", until some other call
reopened)."""

from __future__ import annotations

import random

import pytest

import reliability.connection as connection_module
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE


def run(tmp_path, who: int) -> str:
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 11, 13, 14})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:corruption"}))
    try:
        machine.transfer(0, 1, 2, 5)
        machine.open_second_manager()
        machine.peer_health_turn = True  # (the turns alternate; the first recovery with a peer judges reads)
        machine.corrupt_and_recover("btree", who, "none", 0, 7)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


@pytest.mark.parametrize("who", [0, 1])
def test_passes_on_the_runtime(tmp_path, who):
    assert run(tmp_path, who) == ""


@pytest.mark.parametrize("who", [0, 1])
def test_bites_health_left_on_the_replaced_file(tmp_path, monkeypatch, who):
    # The defect: health never looks at what the path names now (file_replaced answers "no" to health alone; reads
    # use it too, so they are given the real answer through the executor's own check).
    real = connection_module.ConnectionManager.file_replaced
    import reliability.manager as manager_module

    original_health = manager_module.DatabaseManager.health

    def health(self):
        monkeypatch.setattr(connection_module.ConnectionManager, "file_replaced", lambda self: False)
        try:
            return original_health(self)
        finally:
            monkeypatch.setattr(connection_module.ConnectionManager, "file_replaced", real)

    monkeypatch.setattr(manager_module.DatabaseManager, "health", health)
    found = run(tmp_path, who)
    assert "p10_health_monitoring violated" in found and "says the database moved" in found, found
