"""The sweep finds non-atomic code by failing every I/O call and cutting power at every sync."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from pytest_dbfault.vfs import VfsUsageError, run_once, sweep
from reliability.errors import error_name


@pytest.fixture
def bank(tmp_path) -> str:
    path = str(tmp_path / "bank.db")
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        conn.executemany("INSERT INTO account VALUES (?, ?)", [(1, 100), (2, 0)])
    return path


def transfer_in_two_commits(path: str) -> None:
    """The bug: money leaves account 1 in one transaction and reaches account 2 in another."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE account SET balance = balance - 10 WHERE id = 1")
        conn.commit()
        conn.execute("UPDATE account SET balance = balance + 10 WHERE id = 2")
        conn.commit()


def transfer_atomically(path: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE account SET balance = balance - 10 WHERE id = 1")
        conn.execute("UPDATE account SET balance = balance + 10 WHERE id = 2")


def transfer_and_swallow_errors(path: str) -> None:
    """Another bug: reports success although the commit failed."""
    with contextlib.suppress(sqlite3.Error):
        transfer_atomically(path)


HALF_DONE = "(('account', ('(1, 90)', '(2, 0)')),)"


def test_it_finds_the_transfer_that_commits_twice(needs_vfs, bank):
    result = sweep(transfer_in_two_commits, bank, faults=("io_error", "enospc"))
    assert not result.ok
    half_done = [f for f in result.failures if "not atomic" in f.problem]
    assert half_done and all(HALF_DONE in f.problem for f in half_done)
    assert {f.fault for f in half_done} == {"io_error", "enospc"}
    assert {f.mode for f in half_done} == {"transient", "persistent"}
    with pytest.raises(AssertionError, match=r"io_error n=\d+ (transient|persistent): state is neither"):
        result.assert_ok()


def test_it_passes_the_atomic_transfer_after_sweeping_every_io_call(needs_vfs, bank):
    result = sweep(transfer_atomically, bank, faults=("io_error", "disk_full"))
    assert result.ok, result.summary()
    assert result.reached["io_error"] > 10  # it really walked through the I/O calls
    assert all(run.fired for run in result.runs if run.n < result.reached[run.fault])
    assert not any(run.fired for run in result.runs if run.n == result.reached[run.fault])
    assert any(run.error and "SQLITE_FULL" in run.error for run in result.runs if run.fault == "disk_full")


def test_power_loss_at_every_sync_finds_the_two_commits_and_passes_the_atomic_one(needs_vfs, bank):
    broken = sweep(transfer_in_two_commits, bank, faults=("power_loss",))
    assert any(HALF_DONE in f.problem for f in broken.failures), broken.summary()
    assert {f.mode for f in broken.failures} <= {"drop", "torn"}
    fine = sweep(transfer_atomically, bank, faults=("power_loss",))
    assert fine.ok, fine.summary()
    assert fine.reached["power_loss"] >= 3  # journal, journal header and database syncs were each a crash point


def test_short_reads_can_make_an_update_silently_do_nothing(needs_vfs, bank):
    # SQLite takes a short read as "past the end of the file" and uses the zero-filled page:
    # the UPDATE finds no row, the commit succeeds, and the transfer is silently lost.
    result = sweep(transfer_atomically, bank, faults=("short_read",))
    silent = [f for f in result.failures if "returned normally" in f.problem]
    assert silent and all(f.error is None for f in silent)


def test_a_function_that_swallows_a_failed_commit_is_reported(needs_vfs, bank):
    result = sweep(transfer_and_swallow_errors, bank, faults=("io_error",))
    assert any("returned normally but the state is not the after-state" in f.problem for f in result.failures)


def test_a_reported_failure_reproduces_with_run_once(needs_vfs, bank, tmp_path):
    failure = sweep(transfer_in_two_commits, bank, faults=("io_error",)).failures[0]
    run = run_once(transfer_in_two_commits, bank, failure.fault, failure.n, failure.mode,
                   work_dir=tmp_path / "replay")
    assert run.fired and failure.problem in run.problems


def test_errors_outside_the_allowed_set_are_failures(needs_vfs, bank):
    only_full = sweep(transfer_atomically, bank, faults=("io_error",),
                      allowed=lambda exc: error_name(exc) == "SQLITE_FULL")
    assert any("not allowed" in f.problem and "disk I/O error" in (f.error or "")
               for f in only_full.failures)


def test_integrity_only_sweeps_need_no_state_check(needs_vfs, bank):
    assert sweep(transfer_in_two_commits, bank, faults=("enospc",), check=None).ok


def test_bad_calls_are_refused_with_the_reason(needs_vfs, bank, tmp_path):
    with pytest.raises(VfsUsageError, match="unknown fault 'io_eror'"):
        sweep(transfer_atomically, bank, faults=("io_eror",))
    with pytest.raises(VfsUsageError, match="does not exist"):
        sweep(transfer_atomically, str(tmp_path / "missing.db"))

    def broken(path: str) -> None:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(VfsUsageError, match="broken fails with no fault injected: OperationalError"):
        sweep(broken, bank)
    with pytest.raises(VfsUsageError, match="mode 'drop' does not apply to io_error"):
        run_once(transfer_atomically, bank, "io_error", 1, "drop")
