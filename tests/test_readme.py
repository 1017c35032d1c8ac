"""The README stays true: its commands are what CI runs, and every setting is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from reliability.config import ENV_PREFIX, ReliabilityConfig

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line and not line.startswith("#")]


def test_the_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "--dbfault" in commands[0] and "--dbfault" not in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert f'"{quick_start_commands()[1]}"' in ci


def test_every_setting_is_documented_with_its_environment_variable() -> None:
    for field in dataclasses.fields(ReliabilityConfig):
        row = f"| {field.name} | {ENV_PREFIX}{field.name.upper()} | {field.type} |"
        assert row in README, f"README lacks the row for {field.name}"
