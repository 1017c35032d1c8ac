"""Bite tests of the rare-sequence rules (:mod:`pytest_dbfault.machines.surface`) and of the reload check of
``log_sql_params``: each rule, run against a runtime broken in the way it guards against, fails naming its
property; the same call passes against the real runtime.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import reliability.durability.backup as backup_module
import reliability.durability.trust as trust_module
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import DatabaseManager, cli


def machine_with(name: str, factory: Any, base: Path, **drawn: Any) -> Any:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES[name], factory, base_dir=str(base))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | {"synchronous": "FULL", "redo_journal": True} | drawn
    machine.start(random.Random(0), config, frozenset({"fault:locked"}))
    return machine


def violated(machine: Any, rule: str, *args: Any) -> str:
    """The first line of the AssertionError the rule raises ('' when none); the machine is torn down."""
    try:
        getattr(machine, rule)(*args)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def bites(name: str, rule: str, args: tuple[Any, ...], broken: Any, prefix: str, base: Path,
          prepare: Any = None) -> None:
    """``rule(*args)`` fails with ``prefix`` against ``broken`` and passes against the real runtime."""
    machine = machine_with(name, broken, base / "broken")
    if prepare:
        prepare(machine)
    found = violated(machine, rule, *args)
    assert found.startswith(prefix), found
    machine = machine_with(name, None, base / "good")
    if prepare:
        prepare(machine)
    assert violated(machine, rule, *args) == ""


# -- P1: a transaction on a handle closed since the last call ----------------------------------------
def no_reopen_at_begin(config: Any) -> DatabaseManager:
    """BEGIN on a closed handle is not retried on a fresh one (closing the handle does nothing). The
    path check before BEGIN is planted away too: a handle closed as the last connection checkpoints and
    deletes its -wal, which that check reads as a removed -wal and reopens for (a second way to the fix)."""
    db = DatabaseManager(config)
    db.transactions.connections.close = lambda: None  # type: ignore[method-assign]
    db.transactions.connections.file_replaced = lambda: False  # type: ignore[method-assign]
    return db


def test_transaction_on_a_closed_handle_bites(tmp_path: Path) -> None:
    bites("surface", "transaction_on_closed_handle", (3,), no_reopen_at_begin, "p01_", tmp_path)


# -- P13: a failed transaction's writes stay in the redo journal --------------------------------------
def redo_keeps_rolled_back(config: Any) -> DatabaseManager:
    db = DatabaseManager(config)
    db.observers.remove(db._after_rollback)
    return db


@pytest.mark.parametrize("failure", ["app_error", "moved_before_commit"])
def test_failed_transaction_then_damage_bites(failure: str, tmp_path: Path) -> None:
    bites("surface", "failed_transaction_then_damage", ([failure], 4, 5, "header", 3), redo_keeps_rolled_back,
          "p13_", tmp_path)


# -- P12: a backup of a damaged file, a truncated backup -------------------------------------------------
def test_backup_of_a_damaged_file_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = machine_with("surface", None, tmp_path / "good")
    machine.put(1)
    assert violated(machine, "backup_of_damaged_file", 5) == ""
    monkeypatch.setattr(backup_module, "check_pragma", lambda conn, full=True: [])  # the copy is never checked
    machine = machine_with("surface", None, tmp_path / "broken")
    machine.put(1)
    found = violated(machine, "backup_of_damaged_file", 5)
    assert found.startswith("p12_") and "(faults: corrupt)" in found, found


class Data:
    """A stand-in for Hypothesis's ``data()``: draws the first choice."""

    def draw(self, strategy: Any, label: str = "") -> Any:
        return strategy.example() if not hasattr(strategy, "elements") else strategy.elements[0]


def test_truncated_backup_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(base: Path) -> str:
        machine = machine_with("surface", None, base)
        machine.take_backup(False)
        return violated(machine, "truncate_a_backup", Data(), 50)

    assert run(tmp_path / "good") == ""
    real = backup_module._read_manifest

    def size_not_compared(backup: Path) -> Any:
        manifest = real(backup)
        if manifest is not None and backup.exists():
            manifest["size"] = backup.stat().st_size  # the listing no longer compares what was recorded
        return manifest

    monkeypatch.setattr(backup_module, "_read_manifest", size_not_compared)
    found = run(tmp_path / "broken")
    assert found.startswith("p12_") and "truncated" in found, found


# -- P4: auto_migrate at startup ----------------------------------------------------------------------------
def test_restart_with_auto_migrate_bites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = machine_with("surface", None, tmp_path / "good")
    assert violated(machine, "restart_with_auto_migrate", "orders") == ""
    monkeypatch.setattr(trust_module.Trust, "_startup_schema", lambda self: None)
    machine = machine_with("surface", None, tmp_path / "broken")
    found = violated(machine, "restart_with_auto_migrate", "orders")
    assert found.startswith("p04_"), found


# -- P13: `reliability recover` on the stopped application's damaged file -----------------------------------
def cli_recovery_without_the_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's own manager is built with the redo journal off: nothing past the backup is replayed."""
    real = cli._manager
    monkeypatch.setattr(cli, "_manager", lambda config, **changes: real(config, **{**changes, "redo_journal": False}))


def cli_sees_no_damage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's look before repairing reads a fixed "ok": every damaged file is left alone."""
    from reliability.health import IntegrityReport

    monkeypatch.setattr(cli.Inspector, "check_integrity",
                        lambda self, full=False: IntegrityReport(True, [], "quick", 0.0))


@pytest.mark.parametrize("part", ["header", "truncate", "btree_root"])
@pytest.mark.parametrize("broken", [cli_recovery_without_the_journal, cli_sees_no_damage])
def test_recover_from_the_command_line_bites(part: str, broken: Any, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def run(base: Path) -> str:
        machine = machine_with("surface", None, base)
        machine.take_backup(False)
        machine.put(1)  # acknowledged after the backup: only the redo journal brings it back
        return violated(machine, "recover_from_the_command_line", part, 3)

    assert run(tmp_path / "good") == ""
    broken(monkeypatch)
    found = run(tmp_path / "broken")
    assert found.startswith("p13_") and "reliability recover" in found, found


# -- P16: log_sql_params after a reload ---------------------------------------------------------------------
def params_flag_stuck(config: Any) -> DatabaseManager:
    """The error handler keeps the parameter setting it started with (a reload cannot change it)."""
    db = DatabaseManager(config)
    handler = db.errors
    start = handler.show_params
    handler.__class__ = type("Stuck", (type(handler),), {
        "show_params": property(lambda self: start, lambda self, value: None)})
    return db


def test_reload_of_log_sql_params_bites(tmp_path: Path) -> None:
    bites("config", "reload_valid", (2, True), params_flag_stuck, "p16_", tmp_path)
