"""``docs/plan.md`` maps the plan's 15 tasks and 17 properties to code: every name it mentions must exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

import reliability
from pytest_dbfault.machines import MACHINES, PROPERTIES_BY_MACHINE
from pytest_dbfault.stats import PROPERTIES

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs" / "plan.md").read_text(encoding="utf-8")
PLAN_NAMES = ("DatabaseConfig", "DatabaseHealth", "RetryConfig", "ConnectionManager", "TransactionManager",
              "SchemaValidator", "ErrorHandler", "HealthMonitor", "BackupManager", "GracefulDegradation",
              "AdminAudit", "AdminSetFlag")
CODE = re.findall(r"`([^`]+)`", DOC)


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"docs/plan.md names {dotted!r}, which does not import")


def _rows(title: str) -> list[list[str]]:
    section = DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| task |") and not line.startswith("| property |")]


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_every_name_of_the_plan_is_exported(name: str) -> None:
    assert name in reliability.__all__ and getattr(reliability, name).__doc__
    assert f"`reliability.{name}`" in DOC


def test_every_dotted_name_on_the_page_exists() -> None:
    names = [c.split(" = ")[0] for c in CODE if c.startswith("reliability.")]
    names += [c.split(" = ")[1] for c in CODE if c.startswith("reliability.") and " = " in c]
    assert len(names) > 30
    for name in names:
        _resolve(name)
    # an alias is the very object it says it is
    for code in CODE:
        if code.startswith("reliability.") and " = " in code:
            left, right = code.split(" = ")
            assert _resolve(left) is _resolve(right), code


def test_every_file_and_machine_on_the_page_exists() -> None:
    paths = [c for c in CODE if re.fullmatch(r"[\w./-]+(\.py|\.md|\.yaml|\.example|/)(::\w+)?", c)]
    assert len(paths) > 40
    for ref in paths:
        path, _, cls = ref.partition("::")
        assert (ROOT / path).exists(), ref
        if cls:
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            assert isinstance(getattr(module, cls), type), ref


def test_every_scenario_on_the_page_exists() -> None:
    refs = re.findall(r"`(scenarios/[\w.]+\.dbfault\.yaml)` › \"([^\"]+)\"", DOC)
    assert len(refs) >= 32  # one per task and per property
    for path, name in refs:
        names = [s["name"] for s in yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))["scenarios"]]
        assert name in names, (path, name)


def test_the_page_covers_the_15_tasks_and_the_17_properties_once_each() -> None:
    tasks = [row[0].split(".")[0] for row in _rows("Tasks")]
    assert sorted({int(t) for t in tasks}) == list(range(1, 16))
    props = _rows("Properties")
    assert [int(row[0].split()[0]) for row in props] == list(range(1, 18))
    for row in props:
        number, pid = row[0].split()
        assert pid == f"`p{int(number):02d}_{PROPERTIES[int(number)]}`"
        machine = re.search(r"::(\w+)`", row[4]).group(1)  # type: ignore[union-attr]
        key = next(k for k, cls in MACHINES.items() if cls.__name__ == machine)
        assert int(number) in PROPERTIES_BY_MACHINE[key], (number, machine)
