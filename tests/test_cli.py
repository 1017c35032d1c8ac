"""The ``reliability`` CLI: read-only inspection, one JSON contract, exit classes, identity, no tracebacks."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import CLI_ENV, LockHolder, cli_runner, fast_config, os_user, sqlite_module

from pytest_dbfault.faults import CorruptFault
from reliability import DatabaseError, DatabaseManager, Inspector, admin, cli


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    return cli_runner(tmp_path, capsys, monkeypatch)


def _subcommands(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _make_db(path: Path, journal_mode: str = "WAL") -> None:
    """A database the runtime made: flags, audit entries, a backup; closed cleanly."""
    cfg = fast_config(path, journal_mode=journal_mode, admin_actors="alice", audit_hmac_key="cli-key")
    with DatabaseManager(cfg) as db:
        assert admin.set_flag(db, "beta", "on", "alice").ok
        assert admin.set_flag(db, "gamma", 3, "alice").ok
        db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO things (v) VALUES (?)", [(f"value {i}" * 20,) for i in range(300)])
        db.backup()


def _snapshot(folder: Path) -> dict[str, Any]:
    """Every file under ``folder`` with its bytes and mtime; a WAL index (-shm) is listed but its content is
    left out: SQLite's readers record their read marks in it (shared memory, not data)."""
    out: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(folder))
            out[rel] = None if rel.endswith("-shm") else (hashlib.sha256(p.read_bytes()).hexdigest(),
                                                           p.stat().st_mtime_ns, p.stat().st_mode)
    return out


def _journal_mode(db: Path, scratch: Path) -> str:
    """``PRAGMA journal_mode`` read on a copy (reading the original would itself create -wal/-shm)."""
    scratch.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-journal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy2(f"{db}{suffix}", scratch / f"copy.db{suffix}")
    try:
        conn = sqlite3.connect(scratch / "copy.db")
        try:
            return conn.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"unreadable: {exc}"
    finally:
        shutil.rmtree(scratch)


INSPECTIONS = [("health",), ("check",), ("check", "--full"), ("flags", "list"), ("flags", "get", "beta"),
               ("audit",), ("verify-audit",), ("config", "show"), ("backups",), ("schema",)]


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
    assert set(names) == set(cli._HANDLERS)
    # every inspection command is exercised by test_inspection_commands_change_nothing
    assert {" ".join(c for c in argv if not c.startswith("-") and c != "beta") for argv in INSPECTIONS} \
        == set(cli.INSPECTION_COMMANDS)
    assert set(cli._HANDLERS) >= cli.INSPECTION_COMMANDS


@pytest.mark.parametrize("state", ["healthy", "btree_damage", "header_damage", "writer_open"])
@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_inspection_commands_change_nothing(run, tmp_path: Path, journal_mode: str, state: str) -> None:
    _make_db(run.db, journal_mode)
    writer = None
    if state == "btree_damage":
        CorruptFault(run.db, part="btree", table="things", page="leaf", seed=3).inject()
    elif state == "header_damage":
        CorruptFault(run.db, part="header", seed=3).inject()
    elif state == "writer_open":
        # An application holding the database open with a committed, not yet checkpointed write.
        writer = sqlite3.connect(run.db, isolation_level=None)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("INSERT INTO things (v) VALUES ('late')")
    try:
        folder = run.db.parent
        before, mode_before = _snapshot(folder), _journal_mode(run.db, tmp_path / "scratch")
        codes = {}
        for argv in INSPECTIONS:
            for as_json in (False, True):
                code, out, err = run(*argv, json_out=as_json)
                codes[argv] = code
                assert _snapshot(folder) == before, (argv, as_json, err)
                if as_json:
                    assert json.loads(out)["exit_code"] == code
        assert _journal_mode(run.db, tmp_path / "scratch") == mode_before
        assert mode_before == (journal_mode.lower() if state != "header_damage" else mode_before)
    finally:
        if writer is not None:
            writer.close()
    if state in ("healthy", "writer_open"):
        assert set(codes.values()) == {cli.EXIT_OK}, codes
    else:
        assert codes[("check",)] == cli.EXIT_UNHEALTHY and codes[("health",)] in (cli.EXIT_OK, cli.EXIT_UNHEALTHY)
        if state == "header_damage":
            assert codes[("health",)] == cli.EXIT_UNHEALTHY
            assert codes[("flags", "list")] == cli.EXIT_DB_ERROR


def test_the_inspector_opens_the_file_read_only(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    _make_db(db)
    with Inspector(fast_config(db)) as view:
        assert [f.name for f in view.flags()] == ["beta", "gamma"]
        with pytest.raises(sqlite_module().OperationalError, match="readonly"):  # the runtime's build
            view.connection.execute("CREATE TABLE intruder (x)")


def _make_read_only(path: Path) -> Any:
    """Make ``path`` unwritable for this process for real; returns the undo. Root ignores file modes, so
    there the file is made immutable (``chattr +i``), which binds root too."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o600)
    import subprocess

    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root, and chattr +i is not available here: no way to make a file read-only")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
def test_reads_of_a_read_only_file_are_not_refused_as_writes(run, journal_mode: str) -> None:
    _make_db(run.db, journal_mode)
    undo = _make_read_only(run.db)
    try:
        assert not os.access(run.db, os.W_OK)
        before = _snapshot(run.db.parent)
        code, out, err = run("flags", "list")
        assert code == cli.EXIT_OK and "beta" in out, err
        assert run("health")[0] == cli.EXIT_OK
        assert run("check")[0] == cli.EXIT_OK
        assert json.loads(run("flags", "get", "beta")[1]) == "on"
        assert _snapshot(run.db.parent) == before
    finally:
        undo()


def test_a_missing_database_is_an_error_naming_it_and_is_not_created(run, tmp_path: Path) -> None:
    for argv in [("health",), ("check",), ("flags", "list"), ("flags", "get", "x"), ("audit",), ("verify-audit",),
                 ("schema",), ("backup",), ("flags", "set", "beta", "on")]:
        code, out, err = run(*argv)
        assert code == cli.EXIT_DB_ERROR and str(run.db) in err and "does not exist" in err, argv
        code, out, _ = run(*argv, json_out=True)
        doc = json.loads(out)
        assert doc["status"] == "database_error" and str(run.db) in doc["message"]
        assert not run.db.exists() and sorted(p.name for p in tmp_path.iterdir()) == [".env"], argv
    code, out, err = run("restore")
    assert code == cli.EXIT_DB_ERROR and "no verified backup" in err and not run.db.exists()
    # migrate creates a database on purpose
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_things.sql").write_text("CREATE TABLE things (id INTEGER PRIMARY KEY);\n")
    assert run("migrate", "--migrations", str(migrations))[0] == cli.EXIT_OK and run.db.exists()


def test_an_empty_db_path_is_a_usage_error(run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", "", "--env", str(run.env), "health"]) == cli.EXIT_USAGE
    assert "--db must name a database file" in capsys.readouterr().err
    assert not (tmp_path / "reliability.db").exists() and not Path("reliability.db").exists()


def test_json_is_one_envelope_for_every_outcome(run, tmp_path: Path, capsys) -> None:
    _make_db(run.db)
    keys = {"command", "status", "exit_code", "message", "value", "error"}

    def doc(*argv: str, env: Path | None = None) -> dict[str, Any]:
        code = cli.main(["--json", "--db", str(run.db), "--env", str(env or run.env), *argv])
        out, _ = capsys.readouterr()
        data = json.loads(out)  # exactly one document
        assert set(data) == keys and data["exit_code"] == code and data["status"] == cli.STATUS[code], data
        return data

    assert doc("health")["value"]["status"] == "healthy"
    assert doc("flags", "get", "beta")["value"]["value"] == "on"
    assert doc("nope")["status"] == "usage_error"
    assert doc("audit", "--limit", "0")["status"] == "usage_error"
    bad_env = tmp_path / "bad.env"
    bad_env.write_text(CLI_ENV + "RELIABILITY_RETRY_ATTEMPTS=zero\n")
    assert cli.main(["--db", str(run.db), "--env", str(bad_env), "health"]) == cli.EXIT_CONFIG_ERROR
    lines = bad_env.read_text().count("\n")  # (the bad setting is the file's last line)
    expected = f"\n  {bad_env}:{lines}: RELIABILITY_RETRY_ATTEMPTS='zero': expected a whole number"
    assert expected in capsys.readouterr().err
    data = doc("health", env=bad_env)
    assert data["error"]["problems"][0]["where"] == f"{bad_env}:{lines}"
    assert data["status"] == "configuration_error" and data["error"]["problems"][0]["key"] == \
        "RELIABILITY_RETRY_ATTEMPTS"
    assert doc("restore", str(tmp_path / "nope.db"))["status"] == "usage_error"
    noadmin = tmp_path / "noadmin.env"
    noadmin.write_text(CLI_ENV.replace(f"RELIABILITY_ADMIN_ACTORS=alice,{os_user()}", "RELIABILITY_ADMIN_ACTORS=alice"))
    assert doc("flags", "set", "beta", "off", env=noadmin)["status"] == "not_authorized"
    run.db.write_bytes(b"not a database" * 300)
    assert doc("flags", "list")["status"] == "database_error"
    assert doc("health")["status"] == "unhealthy"


def test_health_is_human_readable_or_json_and_shows_the_backlog(run) -> None:
    _make_db(run.db)
    code, out, _ = run("health")
    assert code == cli.EXIT_OK and "status: healthy" in out and "write queue: 0 pending" in out
    assert "last verified backup: 20" in out and "+00:00" in out  # ISO 8601
    code, out, _ = run("health", json_out=True)
    data = json.loads(out)["value"]
    assert data["status"] == "healthy" and data["write_queue"]["pending"] == 0
    assert data["last_backup_at"].endswith("+00:00")


def test_flags_round_trip_through_the_cli(run) -> None:
    _make_db(run.db)
    name = "it's \"ünïcødé\" ✓"
    assert run("flags", "set", name, "a 'quoted' value")[0] == cli.EXIT_OK
    assert run("flags", "set", "--type", "json", "count", "3")[0] == cli.EXIT_OK
    code, out, _ = run("flags", "get", name)
    assert code == 0 and json.loads(out) == "a 'quoted' value"
    code, out, _ = run("flags", "get", "count", json_out=True)
    assert json.loads(out)["value"]["value"] == 3
    code, out, _ = run("flags", "list")
    assert "count = 3" in out and name in out and f"(by {os_user()} at 20" in out
    code, out, _ = run("flags", "get", "missing")
    assert code == 0 and "is not set" in out


def test_the_cli_acts_as_the_os_user_and_actor_only_labels(run) -> None:
    _make_db(run.db)
    me = os_user()
    assert run("flags", "set", "plain", "1")[0] == cli.EXIT_OK
    assert run("flags", "set", "--actor", "bob", "labelled", "2")[0] == cli.EXIT_OK
    code, out, _ = run("audit", json_out=True)
    entries = json.loads(out)["value"]
    sets = {e["target"]: e for e in entries if e["action"] == "flag.set"}
    assert sets["plain"]["actor"] == me and "on_behalf_of" not in sets["plain"]["details"]
    assert sets["labelled"]["actor"] == me and sets["labelled"]["details"]["on_behalf_of"] == "bob"


def test_a_non_administrator_cannot_act_or_act_on_behalf(run) -> None:
    _make_db(run.db)
    run.env.write_text(CLI_ENV.replace(f"RELIABILITY_ADMIN_ACTORS=alice,{os_user()}",
                                       "RELIABILITY_ADMIN_ACTORS=alice"))
    me = os_user()
    code, _, err = run("flags", "set", "beta", "off")
    assert code == cli.EXIT_DENIED and f"{me} is not allowed" in err
    code, _, err = run("flags", "set", "--actor", "alice", "beta", "off")  # alice is an admin, but not who runs this
    assert code == cli.EXIT_DENIED and "on behalf of 'alice'" in err
    code, _, err = run("audit")
    assert code == cli.EXIT_DENIED and "read the audit log" in err
    with Inspector(fast_config(run.db, audit_hmac_key="cli-key")) as view:
        assert view.flags("beta")[0].value == "on"
        denied = [e for e in view.audit_entries(10) if e.action == "admin.denied"]
    assert {(e.actor, e.details.get("on_behalf_of")) for e in denied} == {(me, None), (me, "alice")}


def test_flag_refusals_have_their_own_exit_codes(run) -> None:
    _make_db(run.db)
    code, _, err = run("flags", "set", "", "on")
    assert code == cli.EXIT_USAGE and "must not be empty" in err
    code, _, err = run("flags", "set", "--type", "json", "beta", "{nope")
    assert code == cli.EXIT_USAGE and "not valid JSON" in err


def test_control_characters_in_names_are_escaped_in_human_output(run) -> None:
    _make_db(run.db)
    assert run("flags", "set", "--actor", "eve\nFORGED line", "evil\nname\x1b[31m", "on")[0] == cli.EXIT_OK
    code, out, _ = run("flags", "list")
    assert "evil\\nname\\x1b[31m" in out and "\x1b" not in out
    code, out, _ = run("audit")
    assert not any(line.startswith("FORGED") for line in out.splitlines())
    assert '"on_behalf_of": "eve\\nFORGED line"' in out  # the label, JSON-escaped inside the details


def test_a_change_is_queued_while_the_database_is_locked_and_saved_by_a_later_run(run) -> None:
    _make_db(run.db)
    assert run("flags", "set", "beta", "0")[0] == 0
    with LockHolder(run.db):
        code, out, _ = run("flags", "set", "beta", "1")
        assert code == cli.EXIT_QUEUED and "accepted" in out
        code, out, _ = run("health", json_out=True)
        assert code == cli.EXIT_UNHEALTHY and json.loads(out)["value"]["write_queue"]["pending"] == 1
    assert run("flags", "set", "other", "x")[0] == 0  # a later change replays the backlog first
    code, out, _ = run("flags", "get", "beta")
    assert code == 0 and json.loads(out) == "1"


def test_audit_and_verify_audit_report_tampering(run) -> None:
    _make_db(run.db)
    run("flags", "set", "beta", "off")
    code, out, _ = run("audit")
    assert code == 0 and f"{os_user()} flag.set beta" in out and "alice flag.set beta" in out
    assert out.split()[0].endswith("+00:00")  # ISO 8601 timestamps
    code, out, _ = run("audit", "--actor", "alice", json_out=True)
    assert [e["action"] for e in json.loads(out)["value"]] == ["flag.set", "flag.set"]
    code, out, _ = run("audit", "--since", "2000-01-01T00:00:00Z", "--limit", "1", json_out=True)
    assert len(json.loads(out)["value"]) == 1
    assert run("verify-audit")[0] == cli.EXIT_OK
    with sqlite3.connect(run.db) as raw:
        raw.execute("UPDATE reliability_audit SET actor = 'eve' WHERE seq = 1")
    code, out, _ = run("verify-audit")
    assert code == cli.EXIT_UNHEALTHY and "BROKEN at entry 1" in out


def test_reads_of_a_fresh_database_log_no_errors(run, caplog: pytest.LogCaptureFixture) -> None:
    sqlite3.connect(run.db).close()  # an empty database file
    with sqlite3.connect(run.db) as raw:
        raw.execute("CREATE TABLE app (x)")
    with caplog.at_level(logging.DEBUG):
        assert run("flags", "list")[1].strip() == "no flags"
        assert run("flags", "get", "beta")[0] == cli.EXIT_OK
        assert run("audit")[1].strip() == "no entries"
        assert run("verify-audit")[0] == cli.EXIT_OK
        assert run("health")[0] == cli.EXIT_OK
    assert not [r for r in caplog.records if "no such table" in r.getMessage() or r.levelno >= logging.ERROR]


def test_configuration_and_input_errors_have_the_right_class(run, tmp_path: Path) -> None:
    _make_db(run.db)
    run.env.write_text(CLI_ENV.replace("RELIABILITY_SQLITE_MODULE=", "RELIABILITY_SQLITE_MODULE=no_such_sqlite_mod\n#"))
    code, _, err = run("health")
    assert code == cli.EXIT_CONFIG_ERROR and "RELIABILITY_SQLITE_MODULE='no_such_sqlite_mod'" in err
    run.env.write_text(CLI_ENV)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    run.env.write_text(CLI_ENV + f"RELIABILITY_BACKUP_DIR={blocker}\n")
    for argv in (("backup",), ("restore",), ("recover",), ("backups",)):
        code, _, err = run(*argv)
        assert code == cli.EXIT_CONFIG_ERROR and "RELIABILITY_BACKUP_DIR" in err and "not a folder" in err, argv
    run.env.write_text(CLI_ENV)
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    before = _snapshot(tmp_path)
    code, _, err = run("restore", str(passwd))
    assert code == cli.EXIT_USAGE and "is not a SQLite database; nothing was restored" in err
    assert _snapshot(tmp_path) == before
    code, _, err = run("audit", "--limit", str(10**30))
    assert code == cli.EXIT_USAGE and "up to" in err
    for env in (str(tmp_path / "missing.env"), str(tmp_path)):
        code = cli.main(["--db", str(run.db), "--env", env, "health"])
        assert code == cli.EXIT_USAGE


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert version("dbfault") in capsys.readouterr().out


def test_usage_errors_exit_2(run) -> None:
    assert run("nope")[0] == cli.EXIT_USAGE
    assert run("flags")[0] == cli.EXIT_USAGE
    assert run("audit", "--limit", "0")[0] == cli.EXIT_USAGE
    code, _, err = run("migrate")
    assert code == cli.EXIT_USAGE and "--migrations DIR is required" in err


def test_recover_on_a_healthy_database_is_a_no_op_that_says_so(run) -> None:
    _make_db(run.db)
    before = _snapshot(run.db.parent)
    code, out, _ = run("recover")
    assert code == cli.EXIT_OK and "nothing to recover" in out
    assert _snapshot(run.db.parent) == before


def test_restore_without_backups_says_so_and_backs_nothing_up(run) -> None:
    _make_db(run.db)
    shutil.rmtree(f"{run.db}.backups")
    before = _snapshot(run.db.parent)
    code, _, err = run("restore")
    assert code == cli.EXIT_DB_ERROR and "no verified backup" in err and "nothing was restored" in err
    assert _snapshot(run.db.parent) == before


def test_restore_puts_the_chosen_backup_back(run) -> None:
    _make_db(run.db)
    code, out, _ = run("backups", json_out=True)
    chosen = json.loads(out)["value"][0]["path"]
    assert run("flags", "set", "beta", "changed")[0] == cli.EXIT_OK
    code, out, err = run("restore")
    assert code == cli.EXIT_OK and chosen in out, err
    assert json.loads(run("flags", "get", "beta")[1]) == "on"


def test_recover_repairs_a_damaged_database(run) -> None:
    _make_db(run.db)
    CorruptFault(run.db, part="btree", table="things", page="leaf", seed=3).inject()
    assert run("check")[0] == cli.EXIT_UNHEALTHY
    code, out, err = run("recover", json_out=True)
    data = json.loads(out)
    assert data["value"]["recovered"] is True and data["value"]["quarantined"], err
    assert run("check")[0] == cli.EXIT_OK


def test_recover_replays_what_a_lost_wal_took_although_quick_check_passes(run) -> None:
    """A -wal damaged after the file moved away and back: its frames (an acknowledged row) are dropped, quick_check
    passes, and a starting runtime refuses the file for the missing commit. ``recover`` said "nothing to recover"
    (exit 0) and left the row missing (found by benchmarks/recovery_fuzz.py, session 16); it replays it now."""
    from pytest_dbfault.faults import DisconnectFault

    cfg = fast_config(run.db, journal_mode="WAL", audit_hmac_key="cli-key", auto_recover=False)
    with DatabaseManager(cfg) as db:
        db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    db = DatabaseManager(cfg)
    try:
        db.execute("INSERT INTO kv VALUES ('a', '1')")  # acknowledged: in the -wal only
        with DisconnectFault(run.db, mode="rename"), pytest.raises(DatabaseError):
            db.execute("INSERT INTO kv VALUES ('b', '2')")
        CorruptFault(run.db, part="wal_salt", seed=1).inject()
    finally:
        db.close()
    assert sqlite3.connect(run.db).execute("SELECT count(*) FROM kv").fetchone() == (0,)  # the row is gone
    assert run("check")[0] == cli.EXIT_OK  # and quick_check cannot tell
    code, out, err = run("recover", json_out=True)
    assert code == cli.EXIT_OK and json.loads(out)["value"]["recovered"] is True, out + err
    assert sqlite3.connect(run.db).execute("SELECT v FROM kv WHERE k = 'a'").fetchone() == ("1",)


def test_durability_subcommands(run, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_create_things.sql").write_text("CREATE TABLE things (id INTEGER PRIMARY KEY, v TEXT);\n")
    code, out, err = run("migrate", "--migrations", str(migrations))
    assert code == 0 and "current version: 1" in out, err
    code, out, _ = run("schema", "--migrations", str(migrations), json_out=True)
    assert code == 0 and json.loads(out)["value"]["ok"] is True
    code, out, _ = run("check")
    assert code == 0 and "integrity: ok" in out
    code, out, err = run("backup", json_out=True)
    assert code == 0, err
    backup_path = json.loads(out)["value"]["path"]
    assert Path(backup_path).exists()
    code, out, _ = run("backups", json_out=True)
    assert code == 0 and backup_path in [b["path"] for b in json.loads(out)["value"]]
    code, out, err = run("restore", backup_path)
    assert code == 0, err
    assert run("restore", str(tmp_path / "nope.db"))[0] == cli.EXIT_USAGE


def test_config_show_masks_the_key_and_names_the_caller(run) -> None:
    code, out, _ = run("config", "show", json_out=True)
    value = json.loads(out)["value"]
    assert code == 0 and value["settings"]["audit_hmac_key"] == "***" and value["os_user"] == os_user()
    assert value["administrator"] is True


def test_the_readme_documents_every_exit_code_and_status() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    rows = dict((int(code), status.strip(" `")) for code, status in
                (line.strip("|").split("|")[:2] for line in section.splitlines() if line[:3] in {f"| {n}" for n in
                                                                                                range(10)}))
    assert rows == cli.STATUS
    for command in cli.INSPECTION_COMMANDS:
        assert f"`{command.split()[0]}" in section, command


def test_arguments_that_are_not_utf8_are_refused_clearly(run) -> None:
    _make_db(run.db)
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands over a Latin-1 byte in argv
    code, out, err = run("flags", "set", bad, "on")
    assert code == cli.EXIT_USAGE and "is not valid UTF-8 text" in err and "\\udce9" in err
    code, out, _ = run("flags", "get", bad, json_out=True)
    assert json.loads(out)["status"] == "usage_error"
    assert run("flags", "list")[1].count("=") == 2  # nothing was stored


def test_a_deleted_database_with_backups_is_an_error_that_says_how_to_bring_it_back(run) -> None:
    _make_db(run.db)
    run.db.unlink()
    code, _, err = run("health")
    assert code == cli.EXIT_DB_ERROR and "does not exist" in err and f"reliability --db {run.db} recover" in err
    assert not run.db.exists()
    code, out, err = run("recover")
    assert code == cli.EXIT_OK and "recovery: ok" in out, err
    assert json.loads(run("flags", "get", "gamma")[1]) == 3


def _kill_a_writer_mid_transaction(db: Path, tmp_path: Path) -> None:
    """A writer SIGKILLed mid-transaction with its cache spilled to the file: its rollback journal is hot."""
    from pytest_dbfault.faults import CrashFault

    worker = tmp_path / "writer.py"
    worker.write_text("import sqlite3, sys\n"
                      "from pytest_dbfault.faults.crash import signal_point\n"
                      "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                      "c.execute('PRAGMA cache_size = 1'); c.execute('BEGIN')\n"
                      "for i in range(500): c.execute('INSERT INTO things (v) VALUES (?)', ('x' * 500,))\n"
                      "signal_point('mid_transaction')\n")
    crash = CrashFault(str(db), worker=str(worker), kill_at="mid_transaction")
    crash.inject()
    assert crash.result is not None and crash.result.killed
    assert Path(f"{db}-journal").stat().st_size > 0


def test_a_hot_journal_is_not_called_damage_and_recover_rolls_it_back(run, tmp_path) -> None:
    _make_db(run.db, "DELETE")
    run.env.write_text(CLI_ENV + "RELIABILITY_JOURNAL_MODE=DELETE\n")
    # A writer SIGKILLed mid-transaction (cache spilled to the file): its rollback journal is hot.
    _kill_a_writer_mid_transaction(run.db, tmp_path)
    before = _snapshot(run.db.parent)
    code, out, err = run("check")
    assert code == cli.EXIT_DB_ERROR and "interrupted transaction" in err and "PROBLEMS" not in out
    code, out, _ = run("health", json_out=True)
    assert code == cli.EXIT_UNHEALTHY and "hot rollback journal" in json.loads(out)["value"]["reasons"][0]
    assert _snapshot(run.db.parent) == before
    code, out, err = run("recover", json_out=True)
    doc = json.loads(out)
    assert code == cli.EXIT_OK and doc["value"]["rolled_back"] is True and doc["value"]["recovered"] is False, err
    assert run("check")[0] == cli.EXIT_OK
    with Inspector(fast_config(run.db)) as view:
        assert view.fetch_one("SELECT count(*) FROM things")[0] == 300  # the killed transaction left nothing


def test_recover_of_a_hot_journal_on_a_file_missing_commits_recovers(run, tmp_path) -> None:
    # An older copy of the file put back (the redo journal holds commits it lacks), and on it a writer killed
    # mid-transaction: the hot journal's rollback opens a runtime, which refuses the file (commits missing). That
    # refusal is what `recover` is for: it recovers (it said "run `reliability recover`", exit 3, and only a second
    # run recovered).
    _make_db(run.db, "DELETE")
    run.env.write_text(CLI_ENV + "RELIABILITY_JOURNAL_MODE=DELETE\n")
    shutil.copy(run.db, tmp_path / "older.db")
    with DatabaseManager(fast_config(run.db, journal_mode="DELETE", audit_hmac_key="cli-key")) as db:
        db.executemany("INSERT INTO things (v) VALUES (?)", [("later",), ("later",)])
    shutil.copy(tmp_path / "older.db", run.db)
    _kill_a_writer_mid_transaction(run.db, tmp_path)
    code, out, err = run("recover", json_out=True)
    doc = json.loads(out)
    assert code == cli.EXIT_OK and doc["value"]["recovered"] is True, (doc["message"], err)
    assert run("check")[0] == cli.EXIT_OK
    with Inspector(fast_config(run.db)) as view:
        assert view.fetch_all("SELECT v FROM things WHERE v NOT LIKE 'value%'") == [("later",), ("later",)]
        assert view.fetch_one("SELECT count(*) FROM things")[0] == 302


def test_an_actor_label_must_be_a_reasonable_name(run) -> None:
    _make_db(run.db)
    from reliability.names import MAX_ACTOR

    for label in ("", " ", "x" * (MAX_ACTOR + 1)):
        code, _, err = run("flags", "set", "--actor", label, "beta", "off")
        assert code == cli.EXIT_USAGE and "--actor: An actor name" in err
    assert json.loads(run("flags", "get", "beta")[1]) == "on"


def test_json_in_human_output_stays_one_line_of_valid_json() -> None:
    value = {"who": "eve\u2028FORGED\u202e", "n": "Zoë\n"}
    line = cli.json_line(value)
    assert json.loads(line) == value and "\u2028" not in line and "\u202e" not in line and "Zoë" in line
    assert cli.safe("a\u202eb\nc") == "a\\u202eb\\nc"


def test_inspection_never_generates_an_audit_key_and_reads_a_generated_one(run, tmp_path: Path) -> None:
    run.env.write_text(CLI_ENV.replace("RELIABILITY_AUDIT_HMAC_KEY=cli-key\n", ""))
    with sqlite3.connect(run.db) as raw:  # an application's database the runtime never managed
        raw.execute("CREATE TABLE app (x)")
    before = _snapshot(tmp_path)
    for argv in INSPECTIONS:
        assert run(*argv)[0] == cli.EXIT_OK, argv
    assert _snapshot(tmp_path) == before and not Path(f"{run.db}.audit-key").exists()
    # a runtime without a configured key generated one: inspection verifies the chain with it
    assert run("flags", "set", "beta", "on")[0] == cli.EXIT_OK
    assert Path(f"{run.db}.audit-key").exists()
    code, out, _ = run("verify-audit")
    assert code == cli.EXIT_OK and "audit chain ok (1 entries)" in out


def test_an_emptied_database_with_history_is_an_incident_not_an_empty_database(run) -> None:
    _make_db(run.db)
    run.db.write_bytes(b"")  # cut to 0 bytes while the service was down
    for argv in (("health",), ("check",), ("flags", "list")):
        code, _, err = run(*argv)
        assert code == cli.EXIT_DB_ERROR and "is empty although it held data" in err, argv
    code, out, err = run("recover")
    assert code == cli.EXIT_OK and "recovery: ok" in out, err
    assert json.loads(run("flags", "get", "beta")[1]) == "on"


def test_main_reads_settings_from_the_environ_it_is_given(tmp_path, monkeypatch, capsys) -> None:
    # An embedding program (or the property machines) passes its own environment: the process's does not leak in.
    monkeypatch.chdir(tmp_path)  # (no ./.env of the checkout's)
    db = tmp_path / "app.db"
    DatabaseManager(fast_config(db)).close()
    monkeypatch.setenv("RELIABILITY_BUSY_TIMEOUT_MS", "4321")
    assert cli.main(["--db", str(db), "--json", "config", "show"], environ={"RELIABILITY_BUSY_TIMEOUT_MS": "1234"}) == 0
    assert json.loads(capsys.readouterr().out)["value"]["settings"]["busy_timeout_ms"] == 1234
    assert cli.main(["--db", str(db), "--json", "config", "show"], environ={}) == 0
    assert json.loads(capsys.readouterr().out)["value"]["settings"]["busy_timeout_ms"] != 4321
    assert cli.main(["--db", str(db), "--json", "config", "show"]) == 0  # default: the process's environment
    assert json.loads(capsys.readouterr().out)["value"]["settings"]["busy_timeout_ms"] == 4321


def test_a_failed_migration_batch_says_what_stays_applied(run, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_things.sql").write_text("CREATE TABLE things (id INTEGER PRIMARY KEY);\n")
    (migrations / "002_more.sql").write_text("CREATE TABLE more_things (id INTEGER PRIMARY KEY);\n")
    (migrations / "003_broken.sql").write_text("CREATE TABLE things (id INTEGER PRIMARY KEY);\n")  # exists: fails
    code, out, err = run("migrate", "--migrations", str(migrations), json_out=True)
    doc = json.loads(out)
    assert code == cli.EXIT_DB_ERROR and doc["error"]["applied"] == [1, 2], out + err
    code, out, err = run("migrate", "--migrations", str(migrations))
    assert code == cli.EXIT_DB_ERROR and "applied before the failure (they stay applied): none" in err, err


def test_recover_repairs_index_damage_that_quick_check_does_not_see(run) -> None:
    """An index entry that no longer matches its row passes quick_check. ``recover`` judged the file with quick_check
    and said "nothing to recover" (exit 0); writes through the index then deleted or kept the wrong rows
    (benchmarks/recovery_fuzz.py seeds 697 and 1039: acknowledged rows lost). It runs integrity_check now."""
    cfg = fast_config(run.db, journal_mode="WAL", audit_hmac_key="cli-key", auto_recover=False)
    with DatabaseManager(cfg) as db:
        db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        db.executemany("INSERT INTO kv VALUES (?, ?)", [(f"user-{i}", "before") for i in range(40)])
        assert db.backup().verified
        db.executemany("INSERT INTO kv VALUES (?, ?)", [(f"late-{i}", "after") for i in range(5)])  # journaled
    CorruptFault(run.db, part="index_entry", index="sqlite_autoindex_kv_1", seed=5).inject()
    assert run("check")[0] == cli.EXIT_OK  # (the damage quick_check cannot see is in force)
    assert run("check", "--full")[0] == cli.EXIT_UNHEALTHY
    code, out, err = run("recover", json_out=True)
    data = json.loads(out)
    assert code == cli.EXIT_OK and data["value"]["recovered"] is True and data["value"]["quarantined"], out + err
    assert run("check", "--full")[0] == cli.EXIT_OK
    conn = sqlite_module().connect(str(run.db))  # (the runtime's build: the pysqlite3 cell)
    try:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (45,)
    finally:
        conn.close()
