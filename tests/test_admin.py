"""Admin commands: validated, authorized, audited flag changes in one transaction; continuity commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseManager, admin


@pytest.fixture
def adb(db_path: Path) -> DatabaseManager:
    db = DatabaseManager(fast_config(db_path, admin_actors="alice, root", audit_hmac_key="k"))
    db.commands.recheck_interval = 0
    yield db
    db.close()


def test_setting_a_flag_writes_it_and_its_audit_entry(adb: DatabaseManager) -> None:
    result = admin.set_flag(adb, "beta", True, "alice")
    assert result.ok and result.message == "Flag 'beta' is now true."
    assert admin.get_flag(adb, "beta").value.value is True
    entry = adb.audit.entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target, entry.details) == ("alice", "flag.set", "beta",
                                                                        {"value": True, "previous": None})
    admin.set_flag(adb, "beta", "off", "root")
    assert adb.audit.entries(limit=1)[0].details == {"value": "off", "previous": True}
    assert [f.name for f in admin.list_flags(adb).value] == ["beta"]


@given(name=st.text(min_size=1, max_size=admin.MAX_FLAG_NAME).filter(lambda s: s.strip() and "\x00" not in s),
       value=st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.text(max_size=300),
                       st.floats(allow_nan=False, allow_infinity=False)))
def test_names_and_values_round_trip_exactly(adb: DatabaseManager, name: str, value: object) -> None:
    assert admin.set_flag(adb, name, value, "alice").ok
    assert admin.get_flag(adb, name).value.value == value


@pytest.mark.parametrize("name", ["it's \"quoted\"", "'; DROP TABLE reliability_flags; --", "ünïcødé ✓ 旗",
                                  "x" * admin.MAX_FLAG_NAME])
def test_awkward_names_are_stored_as_given(adb: DatabaseManager, name: str) -> None:
    assert admin.set_flag(adb, name, name, "alice").ok
    flag = admin.get_flag(adb, name).value
    assert flag.name == name and flag.value == name
    assert adb.fetch_one("SELECT count(*) FROM reliability_flags") == (1,)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("", 1, "must not be empty"),
    ("   ", 1, "must not be empty"),
    ("x" * (admin.MAX_FLAG_NAME + 1), 1, f"at most {admin.MAX_FLAG_NAME} characters; this one has"),
    (42, 1, "must be text, not int"),
    ("ok", [1, 2], "not list"),
    ("ok", float("nan"), "finite number"),
])
def test_bad_input_gets_a_clear_message_and_changes_nothing(adb: DatabaseManager, name: object, value: object,
                                                            message: str) -> None:
    result = admin.set_flag(adb, name, value, "alice")  # type: ignore[arg-type]
    assert result.status == "rejected" and message in result.message
    assert admin.list_flags(adb).value == [] and adb.audit.entries() == []


def test_an_unauthorized_actor_is_refused_changes_nothing_and_is_audited(adb: DatabaseManager) -> None:
    result = admin.set_flag(adb, "beta", True, "mallory")
    assert result.status == "denied" and "mallory is not allowed" in result.message
    assert admin.get_flag(adb, "beta").value is None
    entry = adb.audit.entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == ("mallory", "admin.denied", "beta")


def test_the_permission_callback_decides_for_actors_not_in_the_list(adb: DatabaseManager) -> None:
    admin.register(adb, permission=lambda actor, command: actor == "ops-bot" and command == "flags.set")
    assert admin.set_flag(adb, "beta", 1, "ops-bot").ok
    assert admin.set_flag(adb, "beta", 2, "someone").status == "denied"

    def broken(actor: str, command: str) -> bool:
        raise RuntimeError("permission service down")

    adb.commands.permission = broken
    assert admin.set_flag(adb, "beta", 3, "ops-bot").status == "denied"


def test_with_no_admins_configured_everyone_is_refused_with_a_hint(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        result = admin.set_flag(db, "beta", True, "alice")
    assert result.status == "denied" and "RELIABILITY_ADMIN_ACTORS" in result.message


def test_the_flag_and_its_audit_entry_commit_together(adb: DatabaseManager) -> None:
    from reliability.audit import AUDIT_TABLE_SQL

    # A real SQLite CHECK failure inside the transaction, at the audit insert.
    adb.execute(AUDIT_TABLE_SQL.replace("hash TEXT NOT NULL)", "hash TEXT NOT NULL, CHECK (target != 'doomed'))"))
    result = admin.set_flag(adb, "doomed", True, "alice")
    assert result.status == "error" and result.fault == "constraint"
    assert admin.get_flag(adb, "doomed").value is None


def test_a_change_is_retried_through_a_short_lock(adb: DatabaseManager) -> None:
    admin.set_flag(adb, "beta", 0, "alice")
    holder = LockHolder(adb.path).__enter__()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            holder.__exit__()

    adb.policy.sleep = sleep
    assert admin.set_flag(adb, "beta", 1, "alice").ok
    assert len(slept) == 2 and admin.get_flag(adb, "beta").value.value == 1


def test_under_degradation_the_change_is_queued_and_said_so(adb: DatabaseManager) -> None:
    admin.set_flag(adb, "beta", 0, "alice")
    with LockHolder(adb.path):
        result = admin.set_flag(adb, "beta", 1, "alice")
        assert result.status == "queued"
        assert "accepted and will be saved automatically" in result.message
        assert admin.get_flag(adb, "beta").value.value == 0  # WAL: reads go on
        assert admin.set_flag(adb, "beta", 2, "mallory").status == "denied"  # refused even while degraded
    assert admin.get_flag(adb, "beta").value.value == 1  # the backlog is replayed first
    actions = [(e.actor, e.action, e.details.get("value")) for e in reversed(adb.audit.entries())]
    assert actions == [("alice", "flag.set", 0), ("mallory", "admin.denied", None), ("alice", "flag.set", 1)]
    assert adb.audit.verify().ok


def test_the_audit_command_includes_unreconciled_entries_and_says_when_unavailable(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, journal_mode="DELETE", admin_actors="alice")) as db:
        admin.set_flag(db, "beta", 0, "alice")
        with LockHolder(db_path):
            db.audit.record("alice", "login", "web")
            result = admin.audit(db, limit=10, caller="alice")
            assert result.status == "unavailable" and "busy" in result.message
            assert [e.action for e in result.value] == ["login"] and result.value[0].pending
        listed = admin.audit(db, limit=10, actor="alice", caller="alice")
        assert listed.ok and [e.action for e in listed.value] == ["login", "flag.set"]
        assert admin.audit(db, limit=0, caller="alice").status == "rejected"


def test_non_database_commands_keep_working_while_the_database_is_locked(adb: DatabaseManager) -> None:
    admin.register(adb)
    adb.connection.execute("PRAGMA query_only = 1")
    with LockHolder(adb.path):
        assert adb.commands.run("ping").value == "pong"
        assert "flags.set" in adb.commands.run("help").value
        shown = adb.commands.run("config.show").value
        assert shown["admin_actors"] == "alice, root" and shown["audit_hmac_key"] == "***"


# -- authorization belongs to the command (#15 item 6) ------------------------------------------------
def flag_row(db: DatabaseManager, name: str) -> object:
    try:
        return db.fetch_one("SELECT value, updated_by FROM reliability_flags WHERE name = ?", (name,))
    except Exception:
        return None


def test_the_command_registry_refuses_an_unauthorized_actor_and_audits_it(adb: DatabaseManager) -> None:
    admin.register(adb)
    result = adb.commands.run("flags.set", "pwned", "yes", "mallory")
    assert result.status == "denied" and "mallory is not allowed to run 'flags.set'" in result.message
    assert flag_row(adb, "pwned") is None
    denied = adb.audit.entries(limit=1, action="admin.denied")[0]
    assert (denied.actor, denied.target, denied.details) == ("mallory", "pwned", {"command": "flags.set"})
    assert adb.commands.run("flags.set", "pwned", "yes", actor="mallory").status == "denied"
    assert adb.commands.run("flags.set", "ok", "yes", "alice").ok
    assert flag_row(adb, "ok") == ('"yes"', "alice")


def test_run_as_is_the_front_ends_way_to_name_the_caller(adb: DatabaseManager) -> None:
    admin.register(adb)
    assert adb.commands.run_as("alice", "flags.set", "beta", 1).ok
    assert adb.commands.run_as("mallory", "flags.set", "beta", 2).status == "denied"
    two = adb.commands.run_as("mallory", "flags.set", "beta", 3, actor="alice")
    assert two.status == "rejected" and "two actors" in two.message
    assert flag_row(adb, "beta") == ("1", "alice")
    assert adb.commands.run_as("mallory", "ping").value == "pong"  # not an admin command


def test_the_registry_validates_input_like_the_api_does(adb: DatabaseManager) -> None:
    admin.register(adb)
    result = adb.commands.run("flags.set", "x" * (admin.MAX_FLAG_NAME + 1), 1, "alice")
    assert result.status == "rejected" and "at most 200 characters" in result.message
    assert adb.commands.run("flags.set", "a", object(), "alice").status == "rejected"


def test_reading_the_audit_log_needs_an_authorized_caller(adb: DatabaseManager) -> None:
    admin.set_flag(adb, "beta", True, "alice")
    anonymous = admin.audit(adb, limit=5)
    assert anonymous.status == "denied" and anonymous.value is None
    assert admin.audit(adb, limit=5, caller="mallory").status == "denied"
    assert adb.commands.run("audit", "mallory", 5).status == "denied"
    allowed = admin.audit(adb, limit=5, caller="root")
    assert allowed.ok and allowed.value[0].actor in ("(anonymous)", "mallory")
    denials = [(e.actor, e.details["command"]) for e in adb.audit.entries(10, action="admin.denied")]
    assert denials == [("mallory", "audit"), ("mallory", "audit"), ("(anonymous)", "audit")]


def test_a_queued_admin_write_keeps_the_authorization_decided_when_it_was_accepted(db_path: Path) -> None:
    from reliability.reload import apply_config

    with DatabaseManager(fast_config(db_path, journal_mode="DELETE", admin_actors="alice")) as db:
        db.commands.recheck_interval = 0
        admin.set_flag(db, "seed", 0, "alice")
        with LockHolder(db_path):
            queued = admin.set_flag(db, "beta", "on", "alice")
            assert queued.status == "queued"
            assert admin.set_flag(db, "beta", "evil", "mallory").status == "denied"  # refused, never queued
        # alice loses her rights after the write was accepted: it was authorized then, so it replays.
        apply_config(db, db.config.replace(admin_actors="root"))
        report = db.commands.recover(force=True)
        assert report is not None and report.applied == 1
        assert flag_row(db, "beta") == ('"on"', "alice")


def test_a_queue_entry_added_by_hand_for_an_admin_command_is_not_replayed(db_path: Path) -> None:
    import json

    config = fast_config(db_path, journal_mode="DELETE", admin_actors="alice", audit_hmac_key="k")
    with DatabaseManager(config) as db:
        admin.set_flag(db, "seed", 0, "alice")
        queue = db.queue.path
    forged = {"op": "put", "key": "f1", "seq": 1, "command": "flags.set", "args": ["pwned", "yes", "alice"],
              "kwargs": {}, "queued_at": 1.0, "auth": {"actor": "alice", "mac": "0" * 64}}
    unsigned = dict(forged, key="f2", seq=2, args=["pwned2", "yes", "alice"])
    del unsigned["auth"]
    queue.write_text(json.dumps(forged) + "\n" + json.dumps(unsigned) + "\n")
    with DatabaseManager(config) as db:
        admin.register(db)
        report = db.commands.replay()
        assert report.applied == 0 and report.failed == 2
        reasons = dict(report.failures)
        assert "does not match its content" in reasons["f1"] and "no authorization record" in reasons["f2"]
        assert flag_row(db, "pwned") is None and flag_row(db, "pwned2") is None


# -- hostile names: limits, invalid Unicode, control characters (#15 item 10) ----------------------------------
def test_a_ten_megabyte_actor_is_refused_and_never_stored(adb: DatabaseManager) -> None:
    huge = "m" * 10_000_000
    for result in (admin.set_flag(adb, "beta", 1, huge), adb.commands.run("flags.set", "beta", 1, huge),
                   admin.audit(adb, caller=huge)):
        assert result.status == "rejected" and "at most 200 characters" in result.message
        assert len(result.message) < 300  # the name is not echoed back
    assert adb.audit.entries(10) == []


@pytest.mark.parametrize("where", ["actor", "name", "value"])
def test_a_lone_surrogate_is_refused_with_a_clear_message(adb: DatabaseManager, where: str) -> None:
    bad = "x\udcff"  # what os.fsdecode makes of an undecodable byte
    args = {"actor": "alice", "name": "beta", "value": "on"} | {where: bad}
    result = admin.set_flag(adb, args["name"], args["value"], args["actor"])
    assert result.status == "rejected" and "lone surrogate U+DCFF" in result.message
    with pytest.raises(ValueError, match="lone surrogate"):
        adb.audit.record(bad, "act")


def test_names_with_newlines_print_on_one_line_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime_helpers import cli_runner

    run = cli_runner(tmp_path, capsys, monkeypatch)
    sqlite3.connect(run.db).close()  # the CLI creates no database but by migrate
    forged = "mallory\n1700000000.000 alice flag.set beta {}"
    run("flags", "set", "--actor", forged, "beta", "on")  # the OS user (an admin) acts; --actor is a label
    code, out, _ = run("audit")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "mallory\\n1700000000.000 alice" in lines[0] and "flag.set" in lines[0]


def test_printable_escapes_controls_and_keeps_ordinary_text() -> None:
    from reliability.names import printable

    assert printable("alice") == "alice" and printable("Zoë 北京") == "Zoë 北京"
    assert printable("a\nb\rc\td\x1b[31m\u2028e\\") == "a\\nb\\rc\\td\\x1b[31m\\u2028e\\\\"
    assert printable("x\udcff") == "x\\udcff"


def test_text_logs_keep_one_record_per_line(db_path: Path) -> None:
    import io
    import logging

    from reliability.oplog import configure_logging

    stream = io.StringIO()
    handler = configure_logging(fast_config(db_path), stream)
    try:
        logging.getLogger("reliability.test").warning("actor %s refused", "eve\nFAKE ERROR line")
    finally:
        logging.getLogger("reliability").removeHandler(handler)
    assert stream.getvalue().count("\n") == 1 and "eve\\nFAKE ERROR line" in stream.getvalue()


def test_an_administrator_may_act_on_behalf_of_someone_and_both_names_are_audited(adb: DatabaseManager) -> None:
    assert admin.set_flag(adb, "beta", 1, "root", on_behalf_of="bob").ok
    entry = adb.audit.entries(1)[0]
    assert entry.actor == "root" and entry.details["on_behalf_of"] == "bob"
    assert admin.set_flag(adb, "beta", 2, "mallory", on_behalf_of="root").status == "denied"
    assert admin.set_flag(adb, "beta", 3, "root", on_behalf_of="b" * 201).status == "rejected"
