"""The config machine's rule ``show_config_from_the_command_line`` also runs ``reliability config`` with its action
left out (session 27 surviving mutant ``cli.py:178``, the action made optional): bad arguments are a usage error,
exit 2 (README's exit codes), saying ACTION is required, never an internal error. Called with fixed arguments on a
fresh machine: it passes on the runtime, and fails against a CLI whose ``config`` takes no action."""

from __future__ import annotations

import argparse

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines.config import SHOWN
from reliability import cli

NOWHERE = {name: "none" for name in SHOWN}


def run_rule(tmp_path, as_json: bool) -> None:
    machine = started_machine("config", tmp_path, frozenset({"reload", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.show_config_from_the_command_line(dict(NOWHERE, retry_attempts="env"),
                                                                             "none", as_json, None))


@pytest.mark.parametrize("as_json", [True, False])
def test_the_rule_passes_on_the_runtime(tmp_path, as_json):
    run_rule(tmp_path, as_json)


@pytest.mark.parametrize("as_json", [True, False])
def test_it_bites_a_config_command_whose_action_is_optional(tmp_path, monkeypatch, as_json):
    # The parser of `config` does not require its action: `reliability config` reaches no handler. (A parser of its
    # own: the runtime's is built once per process and cached, and a change to it would outlive this test in the
    # worker, failing every later test that runs the command: seen in CI.)
    def parser() -> argparse.ArgumentParser:
        built = cli.build_parser()
        commands = next(a for a in built._actions if isinstance(a, argparse._SubParsersAction))
        config = commands.choices["config"]
        next(a for a in config._actions if isinstance(a, argparse._SubParsersAction)).required = False
        return built

    monkeypatch.setattr(cli, "_parser", parser)
    with pytest.raises(AssertionError, match=r"p16_\w+ violated .*config` \(no action\) exited 3"):
        run_rule(tmp_path, as_json)
