"""The dataloss machine's ``remove_wal_live`` with the ``-shm`` removed too: once every manager of this process has
looked, another process commits a row, and every manager here that answers a read must serve it.

When a manager saves the removed ``-wal`` (a checkpoint through its handle) and the ``-shm`` is gone too, the other
handles of this process on the file must close: SQLite keeps one WAL index per database file in a process, so while
any of them stays open every connection opened here shares the removed index, blind to what other processes commit
through the new one. Called directly with fixed arguments (a second manager in this process, then the removal): it
passes on the runtime and bites a runtime that leaves those handles open (only marking them to reconnect)."""

from __future__ import annotations

import random

import pytest

import reliability.connection as connection_module
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE

FIRSTS = ["write", "health", "peer_write"]


def run(tmp_path, first: str) -> str:
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 11, 13, 14})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset())
    machine.judge_other_processes = True  # (held out of the main job: see the machine's attribute)
    try:
        machine.transfer(0, 1, 2, 5)
        machine.open_second_manager()
        machine.remove_wal_live(True, first, 1)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


@pytest.mark.parametrize("first", FIRSTS)
def test_passes_on_the_runtime(tmp_path, first):
    assert run(tmp_path, first) == ""


@pytest.mark.parametrize("first", FIRSTS)
def test_bites_handles_left_open_on_the_removed_index(tmp_path, monkeypatch, first):
    def release(self):  # the defect: the other handles are only marked to reconnect, never closed
        for other in list(connection_module._MANAGERS):
            if other is not self and other._conn is not None and other._identity == self._identity:
                other.state = connection_module.ConnectionState.RECONNECTING

    monkeypatch.setattr(connection_module.ConnectionManager, "_release_removed_index", release)
    found = run(tmp_path, first)
    assert "p13_corruption_recovery violated" in found and "reads through the removed -shm" in found, found
