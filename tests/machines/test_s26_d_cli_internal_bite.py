"""Every command line run a machine makes is judged for the CLI's own crash (session 26, surviving mutant
``cli.py:476``: ``reliability health`` built its text with a TypeError on every run; under damage its exit code 3
looked like the database's error, which the health machine accepts there).

The command line turns any unexpected exception into exit 3 with ``error.kind == "internal"`` ("a bug in dbfault"),
the same exit code as a database error: ``run_command_line`` now refuses that kind whatever the command. The health
machine's ``corrupt_and_check`` is called directly (btree damage, flagged: it then runs ``reliability health``)."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.stats import property_id


def health_after_damage(tmp_path, part: str = "btree_leaf", seed: int = 7) -> None:
    machine = started_machine("health_integrity", tmp_path, frozenset({"integrity", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.corrupt_and_check(part, seed))


@pytest.mark.parametrize("part", ["btree_leaf", "btree_root"])
def test_the_real_command_line_answers_health_on_a_damaged_file(tmp_path, part):
    health_after_damage(tmp_path, part)


def test_it_bites_a_health_command_that_crashes_building_its_text(tmp_path, monkeypatch):
    # The handler asks the inspection, then fails putting its report into words (as the mutant's list arithmetic
    # did): the command line reports an internal error under exit 3.
    from reliability import cli

    real = cli._HANDLERS["health"]

    def health(args, config):
        outcome = real(args, config)
        return outcome.text.splitlines() - [outcome.message]  # type: ignore[operator]

    monkeypatch.setitem(cli._HANDLERS, "health", health)
    with pytest.raises(AssertionError, match=f"{property_id(10)}.*crashed inside the command line"):
        health_after_damage(tmp_path)
