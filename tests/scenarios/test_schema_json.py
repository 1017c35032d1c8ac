"""The JSON Schema shipped for editors and the reference document agree with the checker."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_dbfault.scenarios.registry import command_names
from pytest_dbfault.scenarios.schema import CHECKS, FILE, SCENARIO, SETUP, STEPS, json_schema

ROOT = Path(__file__).parents[2]


def test_the_shipped_json_schema_is_the_generated_one() -> None:
    shipped = json.loads((ROOT / "pytest_dbfault" / "scenario.schema.json").read_text())
    assert shipped == json_schema(), "regenerate pytest_dbfault/scenario.schema.json from json_schema()"


def test_every_key_and_builtin_command_is_documented() -> None:
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    keys = [*FILE.fields, *SCENARIO.fields, *SETUP.fields, *CHECKS.fields]
    for step in STEPS.values():
        keys += list(step.fields)
    missing = sorted({k for k in keys if f"`{k}`" not in doc} | {c for c in command_names() if f"`{c}`" not in doc})
    assert not missing
