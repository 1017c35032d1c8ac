"""The restart machine's session-22 rules (``page_damaged_while_stopped``, ``verdict_across_clean_restart``,
``schema_kept_across_clean_restart``), each called directly with fixed arguments on a machine built by the harness
(no Hypothesis search: adding rules to the class moves no bite here). Each check fails against a runtime with one
realistic defect of its kind, planted by monkeypatching, and passes the same calls on the runtime as shipped."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.durability import trust as trust_module
from reliability.durability import verdict as verdict_module
from reliability.durability.recovery import Recovery
from reliability.health import HealthMonitor


def machine(base: Path, **drawn: Any) -> Any:
    """The restart machine as an example starts it (first value of every drawn setting, ``drawn`` over them)."""
    m = bind(MACHINES["restart"], None, base_dir=str(base))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | drawn
    m.start(random.Random(0), config, frozenset({"restart", "backup", "recover"}))
    for n in range(4):
        m.upsert(n)
    return m


def violated(base: Path, steps: Any, **drawn: Any) -> str:
    """The first line of the violation ``steps(machine)`` raises ('' when none)."""
    m = machine(base, **drawn)
    try:
        steps(m)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        m.teardown()
    return ""


# -- a page damaged while stopped: owed at first use --------------------------------------------------
def damaged_page(part: str, then_restart: bool) -> Any:
    return lambda m: m.page_damaged_while_stopped(part, 7, then_restart, [1, 5])


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
@pytest.mark.parametrize("part", ["btree_root", "header", "index_entry"])
def test_a_fresh_start_that_vouches_for_its_file_is_found(tmp_path: Path, monkeypatch: Any, part: str,
                                                          mode: str) -> None:
    # An optimistic default: a new runtime reports the file sound before anything checked or read it.
    real = HealthMonitor.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        self.integrity_ok = True

    monkeypatch.setattr(HealthMonitor, "__init__", init)
    found = violated(tmp_path, damaged_page(part, False), journal_mode=mode)
    assert found.startswith("p11_") and "before any check or read, health() says integrity_ok True" in found, found


@pytest.mark.parametrize("then_restart", [False, True])
@pytest.mark.parametrize("part", ["btree_leaf", "page_size"])
def test_a_statement_that_meets_damage_without_a_verdict_is_found(tmp_path: Path, monkeypatch: Any, part: str,
                                                                  then_restart: bool) -> None:
    # Without auto_recover the runtime does not take the verdict a failing statement gives ("nothing to act on"):
    # reads fail as corrupt while health says healthy and no other process (or the next start) is told.
    real = Recovery.on_corruption

    def on_corruption(self: Any, err: Any) -> None:
        if self.parts.config.auto_recover:
            real(self, err)

    monkeypatch.setattr(Recovery, "on_corruption", on_corruption)
    found = violated(tmp_path, damaged_page(part, then_restart))
    assert found.startswith("p11_") and "once the damage was met health() says integrity_ok None" in found, found


@pytest.mark.parametrize("then_restart", [False, True])
@pytest.mark.parametrize("part", ["btree_root", "btree_leaf", "header", "page_size", "index_root", "index_entry"])
@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_the_runtime_as_shipped_passes_damage_made_while_stopped(tmp_path: Path, part: str, then_restart: bool,
                                                                 mode: str) -> None:
    assert violated(tmp_path, damaged_page(part, then_restart), journal_mode=mode) == ""


# -- a full check's verdict across a clean restart ------------------------------------------------------
def verdict(part: str, recover_first: bool, auto: bool) -> Any:
    return lambda m: m.verdict_across_clean_restart(part, 11, recover_first, auto, [2])


@pytest.mark.parametrize(("auto", "expected"), [
    (False, "the start must run the full check on the marked file and keep the verdict"),
    (True, "the verdict must be acted on at the start"),
])
@pytest.mark.parametrize("part", ["index_entry", "btree_root"])
def test_a_start_that_only_heeds_sticky_marks_is_found(tmp_path: Path, monkeypatch: Any, part: str, auto: bool,
                                                       expected: str) -> None:
    # A start that takes any mark but a sticky one (a damaged -wal frame) for none of its business: the full check's
    # verdict, written by the process before the stop, is neither checked again nor recovered at the next start.
    def marked_here(parts: Any) -> bool:
        mark = verdict_module.marker(parts).read()
        return mark is not None and mark.sticky

    monkeypatch.setattr(verdict_module, "_marked_here", marked_here)
    found = violated(tmp_path, verdict(part, False, auto))
    assert found.startswith("p11_") and expected in found, found


@pytest.mark.parametrize("auto", [False, True])
@pytest.mark.parametrize("recover_first", [False, True])
@pytest.mark.parametrize("part", ["index_entry", "btree_leaf", "btree_root"])
@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_the_runtime_as_shipped_keeps_its_verdict_across_a_restart(tmp_path: Path, part: str, recover_first: bool,
                                                                   auto: bool, mode: str) -> None:
    assert violated(tmp_path, verdict(part, recover_first, auto), journal_mode=mode) == ""


# -- the schema across a clean restart -------------------------------------------------------------------
def migrations_then_restart(steps: list[tuple[int, bool]], folder: bool, auto_migrate: bool) -> Any:
    def run(m: Any) -> None:
        m.schema_kept_across_clean_restart(steps, folder, auto_migrate)
        m.schema_kept_across_clean_restart([(9, True)], folder, auto_migrate)
    return run


@pytest.mark.parametrize("folder", [False, True])
def test_a_start_whose_schema_check_is_not_kept_is_found(tmp_path: Path, monkeypatch: Any, folder: bool) -> None:
    # The start validates, but its report is kept only when the start had to migrate: with nothing pending,
    # health() has no schema after the restart (and an untrusted schema would set no write block).
    real = trust_module.Trust._startup_schema

    def startup_schema(self: Any) -> None:
        saved = self._set_trust
        self._set_trust = lambda report: None
        try:
            real(self)
        finally:
            self._set_trust = saved

    monkeypatch.setattr(trust_module.Trust, "_startup_schema", startup_schema)
    found = violated(tmp_path, migrations_then_restart([(2, False)], folder, True))
    assert found.startswith("p10_") and "health()'s schema is not the start's validation" in found, found


@pytest.mark.parametrize("auto_migrate", [False, True])
@pytest.mark.parametrize("folder", [False, True])
@pytest.mark.parametrize("steps", [[(1, False)], [(2, False)], [(2, False), (9, True)]])
def test_the_runtime_as_shipped_keeps_its_schema_across_a_restart(tmp_path: Path, steps: list[tuple[int, bool]],
                                                                  folder: bool, auto_migrate: bool) -> None:
    assert violated(tmp_path, migrations_then_restart(steps, folder, auto_migrate)) == ""

