"""The surface machine's ``reliability recover`` after a writer was killed mid-transaction (its rollback journal hot),
now also on a file missing the application's last committed write (an older copy put back; session 27 surviving
mutant ``cli.py:670``, the rollback's runtime opened with ``auto_recover`` on): the command recovers (exit 0,
``recovered``), the file holds exactly the acknowledged rows. Judging it found that ``recover`` answered such a file
with exit 3 and "run `reliability recover`" (fixed in ``reliability/cli.py``). Rule ``restore_from_the_command_line``
(which runs ``recover`` first, with the application stopped) is called with fixed arguments on a fresh machine: it
passes on the runtime and fails against a ``recover`` whose rollback recovers on its own and reports a rollback."""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import cli as cli_module


class Last:
    """Stands in for Hypothesis' ``data``: every draw from ``sampled_from`` gives its last element."""

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return list(strategy.elements)[-1]


def run_rule(tmp_path, n: int, journal_mode: str = "DELETE") -> None:
    machine = started_machine("surface", tmp_path, frozenset({"backup"}), journal_mode=journal_mode)

    def call(m: Any) -> None:
        m.put(0)
        m.take_backup(False)
        m.restore_from_the_command_line(Last(), "path", n)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("n", "journal_mode"), [(2, "DELETE"), (5, "TRUNCATE"), (3, "DELETE"), (8, "WAL")])
def test_the_rule_passes_on_the_runtime(tmp_path, n, journal_mode):
    run_rule(tmp_path, n, journal_mode)


def test_it_bites_a_rollback_that_recovers_on_its_own(tmp_path, monkeypatch):
    # recover's runtimes opened with auto_recover on: the rollback's start recovers the file unasked (backup and
    # replay) and the command reports a rollback only ("recovered": false).
    real = cli_module._manager
    monkeypatch.setattr(cli_module, "_manager", lambda config, **changes: real(config, **{**changes,
                                                                                      "auto_recover": True}))
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*missing the application's last committed write.*"
                                             r"recovered=False"):
        run_rule(tmp_path, 2)
