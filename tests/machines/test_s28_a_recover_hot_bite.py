"""The surface machine's ``recover_from_the_command_line`` now also meets, in two draws in three (``seed % 3 != 0``),
the stopped application's rollback-journal file missing its last committed write with a writer killed mid-transaction
(``hot_journal_rolled_back(missing=True)``) before the damage it repairs: only the restore rule's rarer draw met that
case, and default runs missed planted bug ``s27_b_recover_refused_after_rollback`` (session 28, rare draws). The rule
is called directly with fixed arguments: it passes on the runtime in every journal mode and fails against a
``recover`` whose rollback recovers on its own and reports a rollback only."""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import cli as cli_module


def run_rule(tmp_path, journal_mode: str, part: str = "btree_root", seed: int = 4) -> None:
    machine = started_machine("surface", tmp_path, frozenset({"backup"}), journal_mode=journal_mode,
                              redo_journal=True)

    def call(m: Any) -> None:
        m.put(0)
        m.take_backup(False)
        m.recover_from_the_command_line(part, seed)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("journal_mode", ["DELETE", "TRUNCATE", "WAL"])
@pytest.mark.parametrize("part", ["btree_root", "index_entry"])
def test_the_rule_passes_on_the_runtime(tmp_path, journal_mode, part):
    run_rule(tmp_path, journal_mode, part)


@pytest.mark.parametrize("journal_mode", ["DELETE", "TRUNCATE"])
def test_it_bites_a_rollback_that_recovers_on_its_own(tmp_path, monkeypatch, journal_mode):
    # recover's runtimes opened with auto_recover on: the rollback's start recovers the file unasked (backup and
    # replay) and the command reports a rollback only ("recovered": false).
    real = cli_module._manager
    monkeypatch.setattr(cli_module, "_manager", lambda config, **changes: real(config, **{**changes,
                                                                                      "auto_recover": True}))
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*missing the application's last committed write.*"
                                             r"recovered=False"):
        run_rule(tmp_path, journal_mode)


def test_other_draws_leave_the_hot_journal_out(tmp_path, monkeypatch):
    # (seed % 3 == 0: the rule repairs its damage alone, as before; the same defect is not met)
    real = cli_module._manager
    monkeypatch.setattr(cli_module, "_manager", lambda config, **changes: real(config, **{**changes,
                                                                                      "auto_recover": True}))
    run_rule(tmp_path, "DELETE", seed=3)
