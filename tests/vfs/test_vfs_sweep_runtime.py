"""Our own runtime under SQLite's method: set_flag survives a full I/O fault sweep."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pytest_dbfault.vfs import vfs_available
from pytest_dbfault.vfs.sweep import sweep
from reliability import DatabaseError, DatabaseManager, ErrorKind, ReliabilityConfig
from reliability.admin import set_flag

ok, reason = vfs_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"the VFS shim cannot be registered here: {reason}")


def config(path: str) -> ReliabilityConfig:
    # Rollback journal: the sweep's copies are single files; no schedules, quick retries, no journal
    # of our own (the redo journal lives beside the copy and is not part of the state checked).
    return ReliabilityConfig(db_path=path, journal_mode="DELETE", busy_timeout_ms=0, retry_attempts=2,
                             retry_base_delay=0.0, retry_max_delay=0.0, retry_budget=0.2, backup_interval=0,
                             health_check_interval=0, quick_check_interval=0, integrity_check_interval=0,
                             config_reload_interval=0, redo_journal=False, auto_recover=False,
                             admin_actors="admin")


def set_beta(path: str) -> None:
    with DatabaseManager(config(path)) as db:
        result = set_flag(db, "beta", "on", "admin")
        if not result.ok:
            # Queued or refused: not applied now, so the database must be as before.
            raise DatabaseError(ErrorKind.UNAVAILABLE, result.message)


def flag_and_audit(conn: sqlite3.Connection) -> tuple[object, ...]:
    """The state that must be all-or-nothing: the flag and how many audit entries name it."""
    flags = conn.execute("SELECT name, value FROM reliability_flags ORDER BY name").fetchall()
    audits = conn.execute("SELECT count(*) FROM reliability_audit WHERE target = 'beta'").fetchone()[0]
    return (tuple(flags), audits)


def test_set_flag_survives_a_full_io_sweep_with_integrity_and_atomicity(tmp_path: Path) -> None:
    path = str(tmp_path / "flags.db")
    with DatabaseManager(config(path)) as db:
        assert set_flag(db, "alpha", "1", "admin").ok  # creates the tables; beta is the swept write
    result = sweep(set_beta, path, faults=("io_error", "enospc"), check=flag_and_audit,
                   allowed=lambda exc: isinstance(exc, (DatabaseError, sqlite3.Error)))
    assert result.ok, result.summary()
    assert result.reached["io_error"] > 10 and result.reached["enospc"] >= 1
    assert any(run.fired for run in result.runs)
