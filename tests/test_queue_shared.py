"""One write queue file, several processes: no queued write is ever rewritten away (issue #15).

Every manager of a database queues into ``<db>.queue.jsonl`` by default: the workers of one
application, and the ``reliability`` command line beside them. Before the queue took a file lock and
read the others' lines, a running application's replay found nothing of its own pending and compacted
the file, deleting a ``flags set`` the command line had just acknowledged with exit 5.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from runtime_helpers import CLI_ENV, LockHolder, fast_config, os_user

from reliability import DatabaseManager, admin, cli
from reliability.degraded import WriteQueue

ROOT = Path(__file__).parents[1]


def puts(path: Path) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["op"] == "put"]


def flags_set_during_a_lock(db_path: Path, env: Path, name: str, value: str, capsys) -> None:
    """`reliability flags set NAME VALUE` while another connection holds the database: it must exit 5 (queued)."""
    with LockHolder(db_path):
        code = cli.main(["--db", str(db_path), "--env", str(env), "flags", "set", name, value], environ={})
    assert code == cli.EXIT_QUEUED, capsys.readouterr()
    capsys.readouterr()


def test_a_compaction_keeps_what_another_queue_appended_and_seqs_stay_in_order(tmp_path: Path) -> None:
    path = tmp_path / "app.db.queue.jsonl"
    mine, theirs = WriteQueue(path), WriteQueue(path)
    done = mine.put("add", [1])
    mine.mark_done(done.key)
    waiting = theirs.put("add", [2])  # after mine last looked
    assert mine.compact() is False  # it reads to the end first: something waits
    assert [e["key"] for e in puts(path)] == [done.key, waiting.key]
    assert [w.key for w in mine.pending()] == [waiting.key]  # and now it knows, so a replay would apply it
    mine.mark_done(waiting.key)
    assert mine.compact() is True and puts(path) == []
    later = theirs.put("add", [3])  # theirs finds the file replaced and reads the new one
    assert later.seq > waiting.seq and [w.key for w in theirs.pending()] == [later.key]
    assert [w.key for w in WriteQueue(path).pending()] == [later.key]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from reliability.degraded import WriteQueue
    queue = WriteQueue({path!r})
    for i in range({count}):
        queue.put("add", [{who}, i], key=f"{who}-{{i}}")
""")


def test_processes_putting_while_another_replays_and_compacts_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.db.queue.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), path=str(path), count=60,
                                                                      who=w)]) for w in range(3)]
    replayer, applied = WriteQueue(path), []
    while any(w.poll() is None for w in writers) or len(replayer):
        replayer.refresh()  # what a replay does first
        for entry in replayer.pending():
            applied.append(entry.key)
            replayer.mark_done(entry.key)
        replayer.compact()
    assert all(w.wait() == 0 for w in writers)
    replayer.refresh()
    left = [w.key for w in replayer.pending()]
    assert sorted(applied + left) == sorted(f"{w}-{i}" for w in range(3) for i in range(60))  # none lost, none twice


def test_a_flag_the_command_line_queued_is_applied_by_the_running_application(tmp_path: Path, capsys) -> None:
    db_path, env = tmp_path / "app.db", tmp_path / ".env"
    user = os_user()
    env.write_text(CLI_ENV)  # (this user an administrator, audit key "cli-key": the application's too)
    app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="cli-key"))
    try:
        assert admin.set_flag(app, "before", "1", user).ok  # the application's admin commands are registered
        with LockHolder(db_path):
            code = cli.main(["--db", str(db_path), "--env", str(env), "flags", "set", "beta", "on"], environ={})
        assert code == cli.EXIT_QUEUED, capsys.readouterr()
        assert [e["args"][:2] for e in puts(app.queue.path)] == [["beta", "on"]]
        report = app.commands.replay()  # before the fix: nothing of its own pending, then the file emptied
        assert (report.applied, report.remaining, report.error) == (1, 0, None), report
        assert admin.get_flag(app, "beta").value.value == "on"
    finally:
        app.close()


def test_a_command_line_write_the_application_cannot_run_does_not_hold_its_own_writes(tmp_path: Path,
                                                                                     capsys) -> None:
    # The application registers only its own command; the operator's `flags set` queued beside its writes waits
    # for a runtime with the admin commands, and neither the application's queued nor its direct writes wait
    # behind it.
    db_path, env = tmp_path / "app.db", tmp_path / ".env"
    env.write_text(CLI_ENV)
    app = DatabaseManager(fast_config(db_path, admin_actors=os_user(), audit_hmac_key="cli-key"))
    try:
        app.execute("CREATE TABLE items (name TEXT)")
        app.commands.register("add", "write", lambda db, name: db.execute("INSERT INTO items VALUES (?)", (name,)))
        with LockHolder(db_path):
            assert app.commands.run("add", "first").status == "queued"
            assert cli.main(["--db", str(db_path), "--env", str(env), "flags", "set", "beta", "on"],
                            environ={}) == cli.EXIT_QUEUED
            assert app.commands.run("add", "second").status == "queued"
        capsys.readouterr()
        app.execute("INSERT INTO items VALUES ('direct')")  # replays its own backlog first, then writes
        assert [r[0] for r in app.fetch_all("SELECT name FROM items")] == ["first", "second", "direct"]
        assert [w.command for w in app.queue.pending()] == ["flags.set"]  # still waiting, not dropped
        admin.register(app)  # a runtime that has the admin commands applies it
        assert app.commands.replay().applied == 1 and admin.get_flag(app, "beta").value.value == "on"
        assert len(app.queue) == 0
    finally:
        app.close()


def test_the_application_notices_a_change_the_command_line_queued_and_a_later_change_wins(tmp_path: Path,
                                                                                       capsys) -> None:
    # `flags set` exits 5 ("will be saved automatically"): the running application must save it by itself once
    # the lock is gone (its next command or direct write sees the other process's line in the shared file),
    # and before its own later change of the same flag. Before, it saw the line only when it degraded itself
    # or restarted: the change waited unsaved, and the later change was then overwritten by it.
    db_path, env = tmp_path / "app.db", tmp_path / ".env"
    user = os_user()
    env.write_text(CLI_ENV)
    app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="cli-key"))
    try:
        assert admin.set_flag(app, "before", "1", user).ok
        flags_set_during_a_lock(db_path, env, "beta", "old", capsys)
        assert admin.get_flag(app, "beta").value.value == "old"  # the next command saved it, no restart
        assert puts(app.queue.path) == []  # and the shared file holds nothing waiting (compacted)
        flags_set_during_a_lock(db_path, env, "beta", "queued", capsys)
        assert admin.set_flag(app, "beta", "later", user).ok  # acknowledged after the command line's change
        app.close()
        app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="cli-key"))
        admin.register(app)
        app.commands.replay()
        assert admin.get_flag(app, "beta").value.value == "later"
    finally:
        app.close()


def test_a_direct_write_replays_what_another_process_queued_first(tmp_path: Path) -> None:
    # The same for a plain `db.execute`: a write another process queued (and acknowledged) before it may not
    # land after it.
    db_path = tmp_path / "app.db"
    app = DatabaseManager(fast_config(db_path))
    other = DatabaseManager(fast_config(db_path))
    try:
        for db in (app, other):
            db.commands.register("put", "write", lambda db, v: db.execute("INSERT OR REPLACE INTO kv VALUES (1, ?)",
                                                                          (v,)))
        app.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        assert app.fetch_one("SELECT count(*) FROM kv")[0] == 0  # (app has looked at the queue: nothing waits)
        with LockHolder(db_path):
            assert other.commands.run("put", "queued first").status == "queued"
        other.close()
        app.execute("INSERT OR REPLACE INTO kv VALUES (1, 'direct, later')")
        app.commands.replay()  # (what any later command or a restart does: nothing may be left to land late)
        assert app.fetch_one("SELECT v FROM kv WHERE k = 1")[0] == "direct, later"
        assert len(app.queue) == 0 and puts(app.queue.path) == []
    finally:
        app.close()


def test_an_admin_write_queued_under_another_audit_key_waits_named_in_health_not_set_aside(tmp_path: Path,
                                                                                         capsys, caplog) -> None:
    # The command line's .env names another audit key than the application's. Its queued `flags set` cannot be
    # checked with the application's key, and is no proof of an edit either: it waits (health says why) for a
    # runtime with that key, instead of being set aside as "edited" (an acknowledged change dropped).
    db_path, env = tmp_path / "app.db", tmp_path / ".env"
    user = os_user()
    env.write_text(CLI_ENV.replace("cli-key", "the-other-key"))
    assert "the-other-key" in env.read_text()
    app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="cli-key"))
    try:
        assert admin.set_flag(app, "before", "1", user).ok
        flags_set_during_a_lock(db_path, env, "beta", "on", capsys)
        report = app.commands.replay()
        assert (report.applied, report.failed, report.remaining) == (0, 0, 1), report
        assert app.commands.replay().remaining == 1  # (every recheck replays again while it waits)
        said = [r for r in caplog.records if "another audit key" in r.getMessage()]
        assert len(said) == 1 and said[0].levelname == "ERROR", said  # named once, not at every recheck
        assert app.queue.failed == {} and admin.get_flag(app, "beta").value is None
        health = app.health()
        assert str(health.status) == "degraded"
        assert any("another audit key" in r and "RELIABILITY_AUDIT_HMAC_KEY" in r for r in health.reasons), health
    finally:
        app.close()
    other = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="the-other-key"))
    try:
        admin.register(other)
        assert other.commands.replay().applied == 1  # a runtime with the key it was accepted under applies it
        assert admin.get_flag(other, "beta").value.value == "on"
    finally:
        other.close()


def test_an_admin_write_queued_under_a_retired_audit_key_is_replayed(tmp_path: Path, capsys) -> None:
    # The key was rotated while a `flags set` waited in the queue: the old key, listed in audit_previous_keys,
    # still vouches for the write's authorization record (before session 16 it waited forever, "another key").
    db_path, env = tmp_path / "app.db", tmp_path / ".env"
    user = os_user()
    env.write_text(CLI_ENV.replace("cli-key", "the-old-key"))
    app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="the-old-key"))
    try:
        assert admin.set_flag(app, "before", "1", user).ok
        flags_set_during_a_lock(db_path, env, "beta", "on", capsys)
    finally:
        app.close()
    for retired in ("", "the-old-key"):
        rotated = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="the-new-key",
                                              audit_previous_keys=retired))
        try:
            admin.register(rotated)
            report = rotated.commands.replay()
            if not retired:  # the old key not configured: it waits, as for any key this runtime does not hold
                assert (report.applied, report.remaining) == (0, 1), report
                continue
            assert (report.applied, report.failed, report.remaining) == (1, 0, 0), report
            assert admin.get_flag(rotated, "beta").value.value == "on"
            assert rotated.audit.verify().ok  # the entries of both keys verify
        finally:
            rotated.close()


def test_an_admin_write_edited_in_the_queue_file_is_still_set_aside(tmp_path: Path, capsys) -> None:
    # The key id does not open a way around the MAC: an entry whose content was edited is refused as before,
    # whatever key id it carries.
    db_path = tmp_path / "app.db"
    user = os_user()
    app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="k"))
    try:
        admin.register(app)
        with LockHolder(db_path):
            queued = admin.set_flag(app, "beta", "on", user)
        assert queued.status == "queued"
        path = app.queue.path
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for e in lines:
            if e["op"] == "put":
                e["args"][1] = "edited"
        path.write_text("".join(json.dumps(e) + "\n" for e in lines))
        app.close()
        app = DatabaseManager(fast_config(db_path, admin_actors=user, audit_hmac_key="k"))
        admin.register(app)
        report = app.commands.replay()
        assert (report.applied, report.failed) == (0, 1) and "edited" in next(iter(app.queue.failed.values()))
        assert admin.get_flag(app, "beta").value is None
    finally:
        app.close()


def test_a_link_planted_at_the_queue_path_is_not_followed_and_does_not_stop_direct_writes(tmp_path: Path,
                                                                                        caplog) -> None:
    # The runtime now looks at the queue file before every direct write: a link put there (by someone else) is
    # refused, reported once, and is no reason to fail the application's writes.
    db_path, secret = tmp_path / "app.db", tmp_path / "secret.txt"
    secret.write_text("not a queue\n")
    app = DatabaseManager(fast_config(db_path))
    try:
        app.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        app.queue.path.write_text("")  # (a queue file that was in use, compacted)
        app.queue.refresh()
        app.queue.path.unlink()
        app.queue.path.symlink_to(secret)
        for i in range(3):
            app.execute("INSERT INTO kv VALUES (?, 'v')", (i,))
        assert app.fetch_one("SELECT count(*) FROM kv")[0] == 3
        assert secret.read_text() == "not a queue\n"
        said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
        assert len(said) == 1 and "symbolic link" in said[0], said
    finally:
        app.close()


def test_a_damaged_line_another_process_appends_is_named_by_its_number_in_the_file(tmp_path: Path, caplog) -> None:
    """The ERROR record says which line of the file is unreadable, counting the lines this queue wrote itself and
    starting again after a compaction rewrote the file."""
    path = tmp_path / "app.db.queue.jsonl"
    queue = WriteQueue(path)
    first = queue.put("add", [1])
    queue.put("add", [2])
    with path.open("a", encoding="utf-8") as fh:  # another process's append, cut off by a crash and then continued
        fh.write('{"op": "put", "key"\n')
    with caplog.at_level("ERROR", logger="reliability"):
        queue.refresh()
    said = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"write queue {path} line 3 is unreadable ("), said
    caplog.clear()
    queue.mark_done(first.key)
    queue.mark_failed(queue.pending()[0].key, "refused")
    assert queue.compact()  # one line left: the failed write's record
    with path.open("a", encoding="utf-8") as fh:
        fh.write("not json\n")
    with caplog.at_level("ERROR", logger="reliability"):
        queue.refresh()
    said = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"write queue {path} line 2 is unreadable ("), said
