"""The restart machine's ``clean_restart_keeps_durable_health``: the manager a clean restart closed serves nothing.

An application that kept a reference to the old manager: its health says ``unavailable`` and a write through it is
refused as ``misuse`` and is not in the file (a write it committed would have no journal record: no recovery could
bring it back). The main job never called a closed manager (session 28's coverage: ``ConnectionManager.open``'s
refusal and the closed branch of ``DatabaseManager.health`` never ran). Called directly: passes on the runtime and
bites a runtime whose closed manager opens a new connection on the next call (the session 27 defect).
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.connection import ConnectionManager


def machine(tmp_path):
    return started_machine("restart", tmp_path, frozenset({"restart", "backup"}))


@pytest.mark.parametrize("backup_first", [False, True])
def test_passes_on_the_runtime(tmp_path, backup_first):
    run_and_tear_down(machine(tmp_path), lambda m: m.clean_restart_keeps_durable_health(backup_first))


def test_bites_a_closed_manager_that_opens_again(tmp_path, monkeypatch):
    monkeypatch.setattr(ConnectionManager, "closed_for_good", property(lambda self: False, lambda self, value: None),
                        raising=False)
    with pytest.raises(AssertionError, match="p02_graceful_degradation violated.*closed by a clean restart was "
                                             "refused with 'nothing: the write was taken'"):
        run_and_tear_down(machine(tmp_path), lambda m: m.clean_restart_keeps_durable_health(False))
