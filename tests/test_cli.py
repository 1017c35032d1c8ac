"""The ``reliability`` CLI: every subcommand, human and JSON output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from runtime_helpers import LockHolder, cli_runner

from reliability import cli


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    return cli_runner(tmp_path, capsys, monkeypatch)


def _subcommands(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_subcommand_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    names = []
    for name, sub in _subcommands(parser).items():
        nested = _subcommands(sub)
        for child_name, child in (nested.items() if nested else [(None, sub)]):
            full = [name] + ([child_name] if child_name else [])
            names.append(" ".join(full))
            assert "Example: reliability" in (child.description or ""), full
            assert cli.main(full + ["--help"]) == 0
            assert "usage: reliability" in capsys.readouterr().out
    assert set(names) == {"health", "check", "migrate", "schema", "backup", "backups", "restore", "recover",
                          "flags get", "flags set", "flags list", "audit", "verify-audit"}
    assert set(names) == set(cli._HANDLERS)


def test_health_is_human_readable_or_json_and_shows_the_backlog(run) -> None:
    code, out, _ = run("health")
    assert code == cli.EXIT_OK and "status: healthy" in out and "write queue: 0 pending" in out
    code, out, _ = run("health", json_out=True)
    data = json.loads(out)
    assert data["status"] == "healthy" and data["write_queue"]["pending"] == 0


def test_flags_round_trip_through_the_cli(run) -> None:
    name = "it's \"ünïcødé\" ✓"
    assert run("flags", "set", "--actor", "alice", name, "a 'quoted' value")[0] == cli.EXIT_OK
    assert run("flags", "set", "--actor", "alice", "--type", "json", "count", "3")[0] == cli.EXIT_OK
    code, out, _ = run("flags", "get", name)
    assert code == 0 and json.loads(out) == "a 'quoted' value"
    code, out, _ = run("flags", "get", "count", json_out=True)
    assert json.loads(out)["value"]["value"] == 3
    code, out, _ = run("flags", "list")
    assert "count = 3" in out and name in out
    code, out, _ = run("flags", "get", "missing")
    assert code == 0 and "is not set" in out


def test_flag_refusals_have_their_own_exit_codes(run) -> None:
    code, _, err = run("flags", "set", "--actor", "mallory", "beta", "on")
    assert code == cli.EXIT_DENIED and "mallory is not allowed" in err
    code, _, err = run("flags", "set", "--actor", "alice", "", "on")
    assert code == cli.EXIT_USAGE and "must not be empty" in err
    code, _, err = run("flags", "set", "--actor", "alice", "--type", "json", "beta", "{nope")
    assert code == cli.EXIT_USAGE and "not valid JSON" in err


def test_a_change_is_queued_while_the_database_is_locked_and_saved_by_a_later_run(run) -> None:
    assert run("flags", "set", "--actor", "alice", "beta", "0")[0] == 0
    with LockHolder(run.db):
        code, out, _ = run("flags", "set", "--actor", "alice", "beta", "1")
        assert code == cli.EXIT_QUEUED and "accepted" in out
        code, out, _ = run("health", json_out=True)
        assert code == cli.EXIT_UNHEALTHY and json.loads(out)["write_queue"]["pending"] == 1
    code, out, _ = run("flags", "get", "beta")
    assert code == 0 and json.loads(out) == "1"


def test_audit_and_verify_audit_report_tampering(run) -> None:
    run("flags", "set", "--actor", "alice", "beta", "on")
    run("flags", "set", "--actor", "mallory", "beta", "off")
    code, out, _ = run("audit")
    assert code == 0 and "mallory admin.denied beta" in out and "alice flag.set beta" in out
    code, out, _ = run("audit", "--actor", "alice", json_out=True)
    assert [e["action"] for e in json.loads(out)["value"]] == ["flag.set"]
    assert run("verify-audit")[0] == cli.EXIT_OK
    with sqlite3.connect(run.db) as raw:
        raw.execute("UPDATE reliability_audit SET actor = 'eve' WHERE seq = 1")
    code, out, _ = run("verify-audit")
    assert code == cli.EXIT_UNHEALTHY and "BROKEN at entry 1" in out


def test_a_damaged_database_gives_a_user_message_not_a_traceback(run) -> None:
    run.db.write_bytes(b"this is not a database" * 100)
    code, _, err = run("flags", "list")
    assert code == cli.EXIT_DB_ERROR
    assert "damaged" in err or "unavailable" in err or "cannot be opened" in err


def test_an_invalid_setting_exits_with_the_config_code(run) -> None:
    run.env.write_text("RELIABILITY_RETRY_ATTEMPTS=zero\n")
    code, _, err = run("health")
    assert code == cli.EXIT_CONFIG_ERROR and "RELIABILITY_RETRY_ATTEMPTS" in err


def test_usage_errors_exit_2(run) -> None:
    assert run("nope")[0] == cli.EXIT_USAGE
    assert run("flags")[0] == cli.EXIT_USAGE
    assert run("audit", "--limit", "0")[0] == cli.EXIT_USAGE
    code, _, err = run("migrate")
    assert code == cli.EXIT_USAGE and "--migrations DIR is required" in err


def test_durability_subcommands_call_the_facade(run, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_create_things.sql").write_text("CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT);\n")
    code, out, err = run("migrate", "--migrations", str(migrations))
    assert code == 0, err
    assert "current version: 1" in out
    code, out, _ = run("schema", "--migrations", str(migrations), json_out=True)
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run("check")
    assert code == 0 and "integrity: ok" in out
    code, out, err = run("backup", json_out=True)
    assert code == 0, err
    backup_path = json.loads(out)["path"]
    assert Path(backup_path).exists()
    code, out, _ = run("backups", json_out=True)
    assert code == 0 and backup_path in [b["path"] for b in json.loads(out)]
    code, out, err = run("restore", backup_path)
    assert code == 0, err
    assert run("restore", str(tmp_path / "nope.db"))[0] == cli.EXIT_USAGE
    code, out, err = run("recover", json_out=True)
    assert code in (0, 1), err
    assert "quarantined" in json.loads(out)
