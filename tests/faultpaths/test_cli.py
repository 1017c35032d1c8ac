"""The CLI when the database fails for real, and on bad input: a message and an exit code, never a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import CLI_ENV, cli_runner

from pytest_dbfault.faults import CorruptFault, LockedFault
from reliability import DatabaseManager, cli

# Rollback journal (an exclusive lock then keeps readers out too) and no automatic recovery.
ENV = CLI_ENV + "RELIABILITY_AUTO_RECOVER=false\nRELIABILITY_JOURNAL_MODE=DELETE\n"


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    invoke = cli_runner(tmp_path, capsys, monkeypatch, ENV)
    sqlite3.connect(invoke.db).close()  # the application's database (the CLI creates none but by migrate)
    assert invoke("flags", "set", "--actor", "alice", "beta", "on")[0] == cli.EXIT_OK
    return invoke


def test_verifying_the_audit_log_while_the_database_is_locked_exits_3_naming_the_fault(run: Any) -> None:
    with LockedFault(run.db, mode="exclusive"):  # rollback journal: readers are locked out too
        code, out, err = run("verify-audit")
        assert code == cli.EXIT_DB_ERROR and out == ""
        assert "(error kind: busy)" in err and "detail:" in err
        # the same outcome as one JSON document: a lock is never reported as a broken chain
        code, out, _ = run("verify-audit", json_out=True)
        doc = json.loads(out)
        assert code == cli.EXIT_DB_ERROR and doc["status"] == "database_error" and doc["error"]["kind"] == "busy"
        code, out, _ = run("check")
        assert code == cli.EXIT_DB_ERROR and "PROBLEMS" not in out
    assert run("verify-audit")[0] == cli.EXIT_OK


def test_a_backup_of_a_damaged_file_exits_3_and_keeps_no_copy(run: Any) -> None:
    with CorruptFault(run.db, part="header"):
        code, _out, err = run("backup")
        assert code == cli.EXIT_DB_ERROR and "(error kind: notadb)" in err
    assert json.loads(run("backups", json_out=True)[1])["value"] == []


def test_usage_errors_exit_2_with_the_reason(run: Any) -> None:
    for bad in ("0", "many"):
        code, _out, err = run("audit", "--limit", bad)
        assert code == cli.EXIT_USAGE and "expected a positive whole number" in err
    code, _out, err = run("flags", "set", "--actor", "alice", "--type", "json", "beta", "{not json")
    assert code == cli.EXIT_USAGE and "is not valid JSON" in err and "--type str" in err
    code, _out, err = run("migrate")
    assert code == cli.EXIT_USAGE and "--migrations DIR is required" in err
    assert run("flags", "get", "beta")[1].strip() == '"on"'  # nothing was changed


def test_an_invalid_setting_exits_4_naming_it(run: Any) -> None:
    run.env.write_text(ENV + "RELIABILITY_RETRY_ATTEMPTS=none\n")
    code, _out, err = run("health")
    assert code == cli.EXIT_CONFIG_ERROR and "RELIABILITY_RETRY_ATTEMPTS='none': expected a whole number" in err


def test_a_backup_folder_that_cannot_be_made_is_a_configuration_error_naming_it(run: Any) -> None:
    blocker = run.db.parent / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    run.env.write_text(ENV + f"RELIABILITY_BACKUP_DIR={blocker / 'backups'}\n")
    code, _out, err = run("backup")
    assert code == cli.EXIT_CONFIG_ERROR and "RELIABILITY_BACKUP_DIR" in err and "not-a-folder" in err


def test_a_command_this_runtime_lacks_exits_2(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class WithoutBackups(DatabaseManager):
        backup = None  # type: ignore[assignment]

    monkeypatch.setattr(cli, "DatabaseManager", WithoutBackups)
    code, _out, err = run("backup")
    assert code == cli.EXIT_USAGE and "has no db.backup()" in err


def test_a_driver_error_that_escaped_the_runtime_exits_3_without_a_traceback(run: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    class Leaky(DatabaseManager):
        def backup(self):  # type: ignore[no-untyped-def]
            # A bug letting a raw driver error through: SQLite's own answer, not wrapped.
            return sqlite3.connect(":memory:").execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(cli, "DatabaseManager", Leaky)
    code, _out, err = run("backup")
    assert code == cli.EXIT_DB_ERROR and "no such table: no_such_table" in err and "(error kind:" in err


def test_inspecting_a_damaged_file_reports_it_and_changes_nothing(run: Any) -> None:
    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in run.db.parent.rglob("*") if p.is_file()}

    with CorruptFault(run.db, part="header", backup_before=True):  # heal puts the original back
        before = files()
        code, out, _ = run("health", json_out=True)
        doc = json.loads(out)
        assert code == cli.EXIT_UNHEALTHY and doc["value"]["status"] == "unavailable"
        assert any("notadb" in r for r in doc["value"]["reasons"])
        code, out, _ = run("check")
        assert code == cli.EXIT_UNHEALTHY and "PROBLEMS" in out and "recover" in out
        code, out, err = run("flags", "list")
        assert code == cli.EXIT_DB_ERROR and "(error kind: notadb)" in err
        assert files() == before  # no recovery, no quarantine, no backup: inspection only reports
    assert run("check")[0] == cli.EXIT_OK
