"""The restart machine (issue #14 items 3 and 4): kill -9 restarts and power loss at the worst moments.

Bite tests: each new check is run against a runtime broken in exactly the way it guards against (a
missing fsync of the write queue, of the audit fallback file, of the redo journal; transactions that
are not atomic) and must fail naming its property; the same sequence passes on the real runtime.
"""

from __future__ import annotations

import functools
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.faults import CorruptFault
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.machines.powerloss import supported
from pytest_dbfault.machines.restart import fork_and_kill
from reliability import DatabaseManager, ReliabilityConfig

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="kill -9 restarts fork a worker process"),
              pytest.mark.skipif(not supported(), reason="the power-loss model reads fd paths from /proc/self/fd")]


# -- broken runtimes (each one site, the kind of slip a refactor makes) ---------------------------
def queue_not_synced(config: Any) -> DatabaseManager:
    """The write queue appends without fsync."""
    db = DatabaseManager(config)
    db.commands.queue._append = functools.partial(db.commands.queue._append, sync=False)  # type: ignore[method-assign]
    return db


def fallback_not_synced(config: Any) -> DatabaseManager:
    """The audit fallback file is written without fsync of the file."""
    db = DatabaseManager(config)
    real = db.audit._to_fallback

    def to_fallback(entry: Any) -> Any:
        saved = os.fsync
        os.fsync = lambda fd: None  # type: ignore[assignment]
        try:
            return real(entry)
        finally:
            os.fsync = saved
    db.audit._to_fallback = to_fallback  # type: ignore[method-assign]
    return db


def redo_not_synced(config: Any) -> DatabaseManager:
    """The redo journal's records are written but the flush before the acknowledgement is never started."""
    db = DatabaseManager(config)
    if db._redo is not None:
        db._redo.start_sync = lambda: None  # type: ignore[method-assign]
    return db


class NotAtomic(DatabaseManager):
    """Transactions that commit statement by statement (a transaction() that only takes the lock)."""

    def run_in_transaction(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


def machine_with(factory: Any, base: Path, sync: str = "FULL", **drawn: Any) -> Any:
    machine = bind(MACHINES["restart"], factory, base_dir=str(base))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | {"synchronous": sync} | drawn
    enabled = frozenset({"restart", "power_loss", "fault:locked", "fault:disk_full"})
    machine.start(random.Random(0), config, enabled)
    return machine


def violated(fn: Any) -> str:
    """The first line of the AssertionError ``fn()`` raises ('' when it raises none)."""
    try:
        fn()
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    return ""


# -- power loss during an outage: P14 and P15 ------------------------------------------------------
def outage_then_power_loss(machine: Any) -> str:
    def run() -> None:
        machine.power_loss_during_outage("locked", [0, 1], 2, 1)
        machine.p15_audit_retry()
        machine.p14_command_continuity()
    return violated(run)


@pytest.mark.parametrize(("factory", "expected"), [(queue_not_synced, "p14_"), (fallback_not_synced, "p15_")],
                         ids=["queue-not-synced", "fallback-not-synced"])
def test_power_loss_during_an_outage_finds_a_missing_fsync(factory: Any, expected: str, tmp_path: Path) -> None:
    broken = machine_with(factory, tmp_path)
    try:
        found = outage_then_power_loss(broken)
    finally:
        broken.teardown()
    assert found.startswith(expected) and "after:power_loss" in found, found
    good = machine_with(None, tmp_path)
    try:
        assert outage_then_power_loss(good) == ""
    finally:
        good.teardown()


# -- power loss, then damage: P13 ------------------------------------------------------------------
def writes_power_loss_damage(machine: Any) -> str:
    return violated(lambda: machine.power_loss_then_damage(True, [1, 2, 3], "header", 7))


def test_power_loss_then_damage_finds_an_unsynced_redo_journal(tmp_path: Path) -> None:
    broken = machine_with(redo_not_synced, tmp_path, redo_journal=True)
    try:
        found = writes_power_loss_damage(broken)
    finally:
        broken.teardown()
    assert found.startswith("p13_"), found
    good = machine_with(None, tmp_path, redo_journal=True)
    try:
        assert writes_power_loss_damage(good) == ""
    finally:
        good.teardown()


# -- kill -9: P6 -----------------------------------------------------------------------------------
TX = [("run_in_transaction", [(1, True), (2, True)]), ("execute", [(3, True)])]


def kill_at_every_point(factory: Any, base: Path) -> list[str]:
    found = []
    for at in range(1, 16):
        machine = machine_with(factory, base, redo_journal=False)
        try:
            found.append(violated(functools.partial(machine.kill9_restart, TX, at, False, "header", 0)))
        finally:
            machine.teardown()
    return found


def test_a_kill_between_two_writes_of_a_transaction_that_is_not_atomic_is_found(tmp_path: Path) -> None:
    found = kill_at_every_point(NotAtomic, tmp_path)
    assert any(f.startswith("p06_") and "kill -9" in f for f in found), found
    assert kill_at_every_point(None, tmp_path) == [""] * 15


# -- the runtime bug the kill -9 rule found ---------------------------------------------------------
def test_recovery_after_a_kill_between_journal_record_and_commit_reports_ok(tmp_path: Path) -> None:
    """Regression: a record orphaned by a kill before COMMIT was marked aborted at the next start, but its
    sequence stayed "seen", so a later recovery reported that committed transaction missing (ok=False)."""
    outcomes = []
    for at in range(1, 20):
        base = tmp_path / str(at)
        base.mkdir()
        cfg = ReliabilityConfig(db_path=str(base / "app.db"), synchronous="FULL", backup_interval=3600,
                                health_check_interval=0, quick_check_interval=0, integrity_check_interval=0,
                                config_reload_interval=0, auto_recover=False)
        with DatabaseManager(cfg) as db:
            db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        result = fork_and_kill(DatabaseManager, cfg, [("execute", [("a", "1", True)]),
                                                      ("execute", [("b", "2", True)])], at)
        acked = {f"{'ab'[int(label[3:])]}" for label in result.seen if label.startswith("ok:")}
        with DatabaseManager(cfg) as db:
            before = {k for (k,) in db.fetch_all("SELECT k FROM kv")}
            CorruptFault(cfg.db_path, part="header", seed=at, backup_before=True).inject()
            report = db.recover()
            after = {k for (k,) in db.fetch_all("SELECT k FROM kv")}
        outcomes.append((at, result.point, report.ok, acked <= after == before, report.problems[:1]))
        if not result.killed:
            break
    assert all(ok and same for _at, _point, ok, same, _problems in outcomes), outcomes


# -- power loss right after backups: P12 -----------------------------------------------------------
def rotation_without_dir_fsync(config: Any) -> DatabaseManager:
    """Backup rotation deletes old backups without the directory fsync (planted: the runtime syncs it)."""
    db = DatabaseManager(config)
    backups = db.durability.backups
    module = sys.modules[type(backups).__module__]
    real = backups.rotate

    def rotate() -> list[str]:
        saved = module.fsync_dir
        module.fsync_dir = lambda *a, **k: None
        try:
            return real()
        finally:
            module.fsync_dir = saved
    backups.rotate = rotate  # type: ignore[method-assign]
    return db


def backups_then_power_loss(machine: Any) -> str:
    return violated(lambda: machine.power_loss_after_backups(3))


def test_power_loss_after_backups_finds_a_rotation_without_its_directory_fsync(tmp_path: Path) -> None:
    broken = machine_with(rotation_without_dir_fsync, tmp_path, backup_keep=1)
    try:
        found = backups_then_power_loss(broken)
    finally:
        broken.teardown()
    assert found.startswith("p12_") and "after:power_loss" in found and "deleted by rotation and back" in found, found
    good = machine_with(None, tmp_path, backup_keep=1)
    try:
        assert backups_then_power_loss(good) == ""
    finally:
        good.teardown()
