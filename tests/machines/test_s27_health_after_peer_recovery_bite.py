"""The data-loss machine's ``recover_and_judge`` with a second manager open: right after one manager's recovery
reports ok, the other manager's health, asked before any read of its own follows the path, judges the installed
file and never says the database moved (P10).

Called directly with fixed arguments (b-tree damage recovered by manager 0 or 1 while the other is open): it passes
on the runtime and bites a runtime whose health stays on the handle to the quarantined file (the planted bug
``s27_health_stays_on_the_replaced_file``: health said unavailable, "readonly_dbmoved", until some other call
reopened)."""

from __future__ import annotations

import pytest
from test_s25_b_removed_index_bite import run_recovery_with_a_peer

import reliability.connection as connection_module
import reliability.manager as manager_module


def run(tmp_path, who: int) -> str:
    return run_recovery_with_a_peer(tmp_path, who, health_turn=True)


@pytest.mark.parametrize("who", [0, 1])
def test_passes_on_the_runtime(tmp_path, who):
    assert run(tmp_path, who) == ""


@pytest.mark.parametrize("who", [0, 1])
def test_bites_health_left_on_the_replaced_file(tmp_path, monkeypatch, who):
    # The defect: health never looks at what the path names now (file_replaced answers "no" while health runs;
    # reads keep the real answer).
    real = connection_module.ConnectionManager.file_replaced
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
