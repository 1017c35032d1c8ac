"""The runtime's own files: created 0600 under umask 022, never written through a planted link (#15 items 11, 12)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseError, DatabaseManager, admin
from reliability.files import UnsafePathError


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the umask under which the issue found 0644 files
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_runtime_file_is_created_0600_and_every_directory_0700(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    oplog = tmp_path / "logs" / "ops.log"
    config = fast_config(db_path, journal_mode="WAL", operation_log=True, operation_log_path=str(oplog),
                         admin_actors="alice")
    with DatabaseManager(config) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        admin.set_flag(db, "beta", True, "alice")
        with LockHolder(db_path):
            assert db.audit.record("alice", "during-outage").pending
            assert admin.set_flag(db, "beta", False, "alice").status == "queued"
        info = db.backup()
        db._oplog.flush()
        made = {
            "database": db_path, "wal": Path(f"{db_path}-wal"), "shm": Path(f"{db_path}-shm"),
            "redo journal": config.redo_journal_file, "write queue": config.write_queue_file,
            "audit fallback": next(iter(db.audit._fallback_files())), "audit key": config.audit_key_file,
            "audit anchor": config.audit_anchor_file, "operation log": oplog, "backup": Path(info.path),
            "backup manifest": Path(info.path + ".json"),
        }
        missing = [name for name, path in made.items() if not path.exists()]
        assert not missing
        loose = {name: oct(mode(path)) for name, path in made.items() if mode(path) != 0o600}
        assert loose == {}
        assert mode(config.backup_directory) == 0o700


@pytest.mark.parametrize("which", ["write queue", "audit fallback", "operation log", "database", "audit anchor"])
def test_a_symlink_planted_where_a_runtime_file_goes_is_refused_and_its_target_untouched(
        tmp_path: Path, which: str) -> None:
    db_path = tmp_path / "app.db"
    config = fast_config(db_path, journal_mode="DELETE", operation_log=True,
                         operation_log_path=str(tmp_path / "ops.log"), audit_hmac_key="k")
    where = {"write queue": config.write_queue_file, "audit fallback": config.audit_fallback_file,
             "operation log": tmp_path / "ops.log", "database": db_path,
             "audit anchor": config.audit_anchor_file}[which]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    where.symlink_to(victim)

    def exercise() -> None:
        with DatabaseManager(config) as db:
            db.execute("CREATE TABLE t (x)")
            if which == "audit fallback":
                with LockHolder(db_path):
                    db.audit.record("alice", "act")
            elif which == "audit anchor":  # refused and reported (an entry is never refused for it)
                db.audit.record("alice", "act")
                health = db.health()
                assert health.status.value == "degraded"
                assert any("audit log" in r and "symbolic link" in r for r in health.reasons)
                assert not db.audit.verify().ok
            elif which == "write queue":
                db.queue.put("x", [1])

    if which == "audit anchor":
        exercise()
    else:
        with pytest.raises((UnsafePathError, DatabaseError), match="link"):
            exercise()
    assert victim.read_text() == "precious\n" and mode(victim) == 0o644
    assert where.is_symlink()


def test_the_write_queue_temporary_is_never_opened_through_a_planted_link(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    with DatabaseManager(fast_config(db_path, journal_mode="DELETE")) as db:
        db.queue.put("x", [1])
        db.queue.mark_done(db.queue.pending()[0].key)
        victim = tmp_path / "victim.txt"
        victim.write_text("precious\n")
        Path(f"{db.queue.path}.tmp").symlink_to(victim)
        with pytest.raises(UnsafePathError, match="symbolic link"):
            db.queue.compact()
    assert victim.read_text() == "precious\n"


def test_the_redo_journal_temporary_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """The link the independent test found followed: ``<db>.redo.tmp`` overwritten with the journal header."""
    db_path = tmp_path / "app.db"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    with DatabaseManager(fast_config(db_path)) as db:
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES (1)")
        Path(f"{db_path}.redo.tmp").symlink_to(victim)
        db.backup()  # re-anchors the journal through <db>.redo.tmp
        db.execute("INSERT INTO t VALUES (2)")
        assert db.fetch_all("SELECT v FROM t") == [(1,), (2,)]
    assert victim.read_text() == "precious\n"
    assert not Path(f"{db_path}.redo").is_symlink()


def test_backups_never_go_into_a_linked_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked = tmp_path / "backups"
    linked.symlink_to(elsewhere)
    with DatabaseManager(fast_config(tmp_path / "app.db", backup_dir=str(linked))) as db:
        db.execute("CREATE TABLE t (x)")
        with pytest.raises(DatabaseError) as info:
            db.backup()
        assert "symbolic link" in info.value.detail and "RELIABILITY_BACKUP_DIR" in info.value.user_message
        assert db.health().status.value == "degraded"
    assert list(elsewhere.iterdir()) == []


# -- an unusable backup_dir (#15 item 12) ------------------------------------------------------------------
_CRASH = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from runtime_helpers import fast_config
    from reliability import DatabaseManager

    db = DatabaseManager(fast_config({path!r}))
    db.execute("CREATE TABLE IF NOT EXISTS t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("kind", ["a file", "under a file", "missing parent that cannot be made"])
def test_an_unusable_backup_dir_degrades_health_and_the_runtime_starts_and_serves(tmp_path: Path,
                                                                                  kind: str) -> None:
    db_path = tmp_path / "app.db"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    backup_dir = {"a file": blocker, "under a file": blocker / "sub",
                  "missing parent that cannot be made": Path("/proc/self/no-such-dir")}[kind]
    script = tmp_path / "crash.py"
    script.write_text(_CRASH.format(tests=str(Path(__file__).parent), path=str(db_path)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    # After the crash, startup wants a fresh backup to anchor the journal: it fails, and the runtime starts.
    with DatabaseManager(fast_config(db_path, backup_dir=str(backup_dir))) as db:
        assert db.fetch_one("SELECT count(*) FROM t") == (1,)
        db.execute("INSERT INTO t VALUES (2)")
        health = db.health()
        assert health.status.value == "degraded"
        assert any("backup directory" in r and str(backup_dir) in r for r in health.reasons), health.reasons
        with pytest.raises(DatabaseError) as info:
            db.backup()
        assert "RELIABILITY_BACKUP_DIR" in info.value.user_message and str(backup_dir) not in info.value.user_message
        assert health.extra["last_backup_error"]
