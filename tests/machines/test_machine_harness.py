"""The machines' harness: how checks are labelled (issue #14 item 1) and the power-loss model (item 4)."""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.machines.powerloss import PowerLossModel, supported
from pytest_dbfault.stats import STATS


def test_a_check_is_labelled_none_then_under_the_fault_then_after_it(tmp_path: Any) -> None:
    machine = bind(MACHINES["connection"], base_dir=str(tmp_path))()
    try:
        machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:locked"}))
        before = Counter(STATS.checks)
        machine.check(6, True)
        assert machine.inject("locked", 0)
        machine.check(6, True)
        machine.heal("locked")
        machine.check(6, True)
        machine.check(6, True, faults=["locked"])  # a call that ran under the lock, judged after it
        got = Counter(STATS.checks) - before
    finally:
        machine.teardown()
    assert got == Counter({("p06_transaction_atomicity", "none"): 1,
                           ("p06_transaction_atomicity", "locked"): 2,
                           ("p06_transaction_atomicity", "after:locked"): 1})


needs_proc = pytest.mark.skipif(not supported(), reason="the power-loss model reads fd paths from /proc/self/fd")


@needs_proc
def test_power_loss_drops_an_append_that_was_not_fsynced(tmp_path: Any) -> None:
    path = tmp_path / "app.db.queue.jsonl"
    path.write_bytes(b"one\n")
    model = PowerLossModel(str(tmp_path))
    with model.observing():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"two\n")
            os.fsync(fd)
            os.write(fd, b"three\n")  # acknowledged without fsync
        finally:
            os.close(fd)
    assert "app.db.queue.jsonl" in model.lost()
    model.apply(model.durable_view())
    assert path.read_bytes() == b"one\ntwo\n"


@needs_proc
def test_power_loss_undoes_a_rename_whose_directory_was_not_fsynced(tmp_path: Any) -> None:
    final = tmp_path / "app.db.redo"
    final.write_bytes(b"old")
    model = PowerLossModel(str(tmp_path))
    with model.observing():
        tmp = tmp_path / "app.db.redo.tmp"
        with open(tmp, "wb") as fh:
            fh.write(b"new")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)  # no fsync of the directory
        synced_view = model.durable_view()
        dfd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    assert synced_view == {"app.db.redo": b"old"}
    assert model.durable_view() == {"app.db.redo": b"new"}


class FirstBackup:
    """Stands in for Hypothesis's ``data``: draws the oldest remembered backup."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine

    def draw(self, strategy: Any, label: str = "") -> Any:
        return sorted(self.machine.snapshots)[0]


def test_restoring_a_backup_takes_the_schema_model_back(tmp_path: Any) -> None:
    """A backup taken before a migration, restored after it: the model's applied versions go back with the
    file, so the next schema check does not report the migration the restore undid as missing (the py313
    CI cell's false P3 violation, 2026-12-02)."""
    machine = bind(MACHINES["under_fault"], base_dir=str(tmp_path))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | {"redo_journal": False}
    machine.start(random.Random(0), config, frozenset({"backup", "migrate", "schema_damage"}))
    try:
        machine.take_backup(False)
        before = list(machine.model.applied_versions)
        machine.add_migration("create", 3)
        machine.migrate()
        assert machine.model.applied_versions == [*before, len(machine.migrations)]
        machine.restore_backup(FirstBackup(machine))
        assert machine.model.applied_versions == before
        machine.damage_schema_and_restart("unknown_version")  # raises AssertionError on a P3 violation
    finally:
        machine.teardown()


@pytest.mark.parametrize("planted", [False, True])
def test_a_transfer_written_on_the_yielded_connection_is_checked_through_recovery(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, planted: bool) -> None:
    """The ``context_conn`` form of the transfer rule writes on the connection ``db.transaction()`` yields; a
    runtime that hands out the raw connection (the bug found 2026-12-02: those writes were never journaled)
    loses them in the recovery that follows, and P13 says so."""
    import reliability.manager as manager_module

    if planted:
        monkeypatch.setattr(manager_module, "TransactionConnection", lambda raw, execute, executemany: raw)
    machine = bind(MACHINES["backup_recovery"], base_dir=str(tmp_path))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | {"redo_journal": True, "synchronous": "FULL"}
    machine.start(random.Random(0), config, frozenset({"backup", "recover", "transfer"}))
    try:
        machine.take_backup(False)
        machine.transfer([5, 7], 3, "none", "context_conn")
        try:
            machine.corrupt_and_recover("header", 3)
        except AssertionError as exc:
            assert planted, exc
            assert str(exc).startswith("p13_"), exc
            return
        assert not planted, "the machine did not notice writes lost by the recovery"
    finally:
        machine.teardown()


def test_the_command_line_checks_keep_the_runtimes_locks(tmp_path: Any) -> None:
    """Running `reliability check` in-process and the read-only inspection must not drop the runtime's POSIX
    locks: the harness compares the file before and after, and did so by opening and closing it, which drops
    every lock this process holds on the file. Another process's connection then found itself the last one,
    checkpointed and deleted the -wal under the runtime, and the runtime (rightly) refused its database: a
    false P2 violation in most CI-profile runs of the under_fault machine."""
    import subprocess
    import sys

    machine = bind(MACHINES["health_integrity"], base_dir=str(tmp_path))()
    try:
        machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:locked"}))
        machine.db.execute("INSERT INTO kv (k, v) VALUES ('a', 'b')")
        wal = machine.db_path + "-wal"
        assert os.path.exists(wal)
        assert machine.run_command_line(["check"], 11, None)[0] == 0
        assert machine.read_only_verdict(None) is not None
        other = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM kv')"
                 ".fetchall(); c.close()")
        subprocess.run([sys.executable, "-c", other, machine.db_path], check=True)
        assert os.path.exists(wal), "another process deleted the -wal: the runtime's lock was dropped"
        assert machine.db.fetch_one("SELECT v FROM kv WHERE k = 'a'")[0] == "b"
    finally:
        machine.teardown()
