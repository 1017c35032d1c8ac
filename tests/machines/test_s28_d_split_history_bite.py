"""The data-loss machine's rule ``remove_wal_live`` with another application writing first (``foreign_write``): after
the ``-wal`` (maybe with the ``-shm``) was removed under the managers, another process commits a row with plain SQLite
and closes. The managers' handle on the removed WAL must then not be closed as the file's last (SQLite's last close
checkpoints the old frames over the other application's commit and deletes its WAL): the runtime parks it and refuses
until a recovery. A manager that says healthy must serve the other application's row (P13).

Session 28 surviving mutant ``connection.py:335`` (``_others_hold_the_file`` with ``and`` made ``or``: the handle
itself counts as "another holder", so the close always looks safe): the machine judged acknowledged transfers only,
and the lost row was never acknowledged by the runtime. The rule is called directly (no Hypothesis search): it passes
on the runtime, and bites one whose ``_others_hold_the_file`` always says yes."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.connection import ConnectionManager


def foreign_write(tmp_path, shm: bool) -> None:
    machine = started_machine("dataloss", tmp_path)
    machine.use_processes = True  # (drawn per example: PROCESS_SHARE)
    run_and_tear_down(machine, lambda m: m.remove_wal_live(shm, "foreign_write", 1))


@pytest.mark.parametrize("shm", [True, False])
def test_the_rule_passes_on_the_runtime(tmp_path, shm):
    foreign_write(tmp_path, shm)


def test_it_bites_a_close_that_always_looks_safe(tmp_path, monkeypatch):
    monkeypatch.setattr(ConnectionManager, "_others_hold_the_file", lambda self: True)
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*another application committed row f-\d+"):
        foreign_write(tmp_path, True)
