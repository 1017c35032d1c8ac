"""The config machine's rule ``show_config_from_the_command_line`` judges where an invalid value in force is said to
be set (README "Configuration": "Every invalid value is reported at once with where it was set (`.env:12`, the line
of its last assignment, or `environment`)"; session 25 surviving mutant ``config.py:259``, the environment's keys
dropped from the origins). Called with fixed arguments on a fresh machine: it passes on the runtime, and fails
against a runtime with one realistic defect of the class each."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines.config import INVALID, SHOWN
from reliability import config as config_module

NOWHERE = {name: "none" for name in SHOWN}
#: (where the shown settings are given, the invalid line, where it is given, as JSON)
CASES = [
    (dict(NOWHERE, retry_attempts="file"), INVALID[0], "env", False),  # the key also in the file: env wins
    (NOWHERE, INVALID[1], "env", True),
    (dict(NOWHERE, backup_keep="file", journal_mode="file"), INVALID[3], "file", False),  # line 3 of the file
    (dict(NOWHERE, retry_attempts="file"), INVALID[2], "file", True),
]


def run_rule(tmp_path, where, bad, place, as_json) -> None:
    machine = started_machine("config", tmp_path, frozenset({"reload", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.show_config_from_the_command_line(where, "none", as_json, (bad, place)))


@pytest.mark.parametrize(("where", "bad", "place", "as_json"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, where, bad, place, as_json):
    run_rule(tmp_path, where, bad, place, as_json)


@pytest.mark.parametrize("case", [0, 1])
def test_it_bites_origins_that_forget_the_environment(tmp_path, monkeypatch, case):
    # Only the file's assignments are located: a key set in the environment is said to come from the file's line
    # (it is in both) or from nowhere.
    real = config_module.origins
    monkeypatch.setattr(config_module, "origins", lambda path, environ: real(path, {}))
    with pytest.raises(AssertionError, match=r"p16_\w+ violated .*is in force from environment"):
        run_rule(tmp_path, *CASES[case])


def test_it_bites_lines_counted_from_zero(tmp_path, monkeypatch):
    real = config_module.origins

    def origins(path, environ):
        return {k: (f"{v.rpartition(':')[0]}:{int(v.rpartition(':')[2]) - 1}" if v != "environment" else v)
                for k, v in real(path, environ).items()}

    monkeypatch.setattr(config_module, "origins", origins)
    with pytest.raises(AssertionError, match=r"p16_\w+ violated .*operator\.env:3, and the message must say so"):
        run_rule(tmp_path, *CASES[2])
