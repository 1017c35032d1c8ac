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
    machine.judge_other_processes = True  # (on in the main job too since session 26; set here all the same)
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


def run_after_recovery(tmp_path) -> str:
    """A second manager; a writer process's damage recovered by manager 0; then the live removal of -wal and -shm
    with manager 1 writing first (the main job's one failure in session 25, replayed by direct calls)."""
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 11, 13, 14})()
    machine.start(random.Random(0), {**{k: v[0] for k, v in CONFIG_SPACE.items()}, "synchronous": "FULL"},
                  frozenset({"fault:corruption"}))
    try:
        machine.open_second_manager()
        # Manager 1's reads look at the path hourly, from now on: only manager 0's word after its recovery makes it
        # read the installed file. (At the default 50 ms, on a loaded machine manager 1 looked on its own before the
        # judge's read: the bite found nothing in CI's py310 cell.)
        machine.peer.identity_check_interval = 3600.0
        machine.peer.follow_the_path()
        machine.peer.fetch_one("SELECT 1")
        machine.solo_writer_process(1, 0, "header", 955)
        machine.remove_wal_live(True, "peer_write", 1)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def test_a_read_after_another_managers_recovery_passes_on_the_runtime(tmp_path):
    assert run_after_recovery(tmp_path) == ""


def test_bites_a_recovery_that_leaves_the_other_managers_reading_the_old_file(tmp_path, monkeypatch):
    monkeypatch.setattr(connection_module.ConnectionManager, "replaced_here", lambda self: None)
    found = run_after_recovery(tmp_path)
    assert "p13_corruption_recovery violated" in found and "serves a database without it" in found, found


def run_recovery_with_a_peer(tmp_path, who: int, health_turn: bool = False) -> str:
    """``corrupt_and_recover`` (b-tree damage) by manager ``who`` while a second manager is open in this process;
    right after it the other manager's read is judged, or with ``health_turn`` its health."""
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 11, 13, 14})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:corruption"}))
    try:
        machine.transfer(0, 1, 2, 5)
        machine.open_second_manager()
        machine.peer_health_turn = health_turn
        machine.corrupt_and_recover("btree", who, "none", 0, 7)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


@pytest.mark.parametrize("who", [0, 1])
def test_a_recovery_with_a_peer_passes_on_the_runtime(tmp_path, who):
    assert run_recovery_with_a_peer(tmp_path, who) == ""


# (Manager 1 recovering found nothing in CI's coverage stage in session 26: the machine held manager 0's path checks by
# a read and then a longer interval, which left its next look due 50 ms after the read; on a loaded machine the
# judge's read came later and looked on its own. ``hold_path_checks`` now sets the interval first and then looks.)
@pytest.mark.parametrize("who", [0, 1])
def test_bites_a_recovery_that_does_not_tell_the_peer(tmp_path, monkeypatch, who):
    monkeypatch.setattr(connection_module.ConnectionManager, "replaced_here", lambda self: None)
    # Up to three runs: the judge needs another process's commit, and that process may give up after its 1 s lock
    # wait on a loaded machine (then nothing is judged); one run that judges must bite.
    found = ""
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        found = run_recovery_with_a_peer(tmp_path / str(attempt), who)
        if found:
            break
    assert "p13_corruption_recovery violated" in found and "right after the recovery" in found, found
