"""Config hot reload under real faults and bad input: the change applies whole or not at all, the watcher lives on."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from runtime_helpers import fast_config, wait_for

from pytest_dbfault.faults import FileFullFault, LockedFault
from reliability import ConfigError, DatabaseManager
from reliability.config import ReliabilityConfig
from reliability.reload import ConfigWatcher


def _write_env(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # visible on coarse timestamps


def test_a_listener_that_cannot_write_during_a_lock_is_logged_and_the_others_still_run(
        db: DatabaseManager, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_RETRY_ATTEMPTS=3\n")
    watcher = ConfigWatcher(db, env, interval=0, environ={})
    seen: list[tuple[str, ...]] = []

    def remember_in_db(old: ReliabilityConfig, new: ReliabilityConfig, changed: tuple[str, ...]) -> None:
        db.execute("INSERT INTO items (name, qty) VALUES (?, 1)", (",".join(changed),))

    watcher.subscribe(remember_in_db)
    watcher.subscribe(lambda old, new, changed: seen.append(changed))
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=2\n")
    with caplog.at_level(logging.ERROR, logger="reliability.reload"), LockedFault(db.path, mode="write"):
        assert watcher.check_now() == ("retry_attempts",)
    assert db.config.retry_attempts == 2 and seen == [("retry_attempts",)]
    failed = [r for r in caplog.records if r.getMessage().startswith("configuration listener")]
    assert len(failed) == 1 and "remember_in_db" in failed[0].getMessage()
    assert db.fetch_one("SELECT count(*) FROM items")[0] == 0


def test_a_reload_moving_the_operation_log_off_a_full_disk_applies_whole(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old_log, new_log = tmp_path / "old-ops.log", tmp_path / "new-ops.log"
    env = tmp_path / ".env"
    env.write_text("")
    cfg = fast_config(tmp_path / "app.db", operation_log=True, operation_log_path=str(old_log))
    with DatabaseManager(cfg) as db:
        db.execute("CREATE TABLE t (x)")
        db._oplog.flush()  # the old log's file is open
        watcher = ConfigWatcher(db, env, interval=0, environ={})
        db.execute("INSERT INTO t VALUES (1)")  # buffered in the old log
        _write_env(env, f"RELIABILITY_OPERATION_LOG_PATH={new_log}\nRELIABILITY_BUSY_TIMEOUT_MS=30\n")
        with caplog.at_level(logging.ERROR, logger="reliability"), FileFullFault(old_log):
            changed = watcher.check_now()
        assert set(changed) == {"operation_log_path", "busy_timeout_ms"}
        # Applied whole: the new log is installed and the reconnect setting took effect.
        assert db._oplog is not None and db._oplog.path == new_log and not db._oplog.closed
        assert db.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 30
        assert any("last records could not be written" in r.getMessage() for r in caplog.records)
        db.execute("SELECT count(*) FROM t")
    assert "SELECT count(*) FROM t" in new_log.read_text()


def test_a_missing_env_file_changes_nothing_until_it_appears(db: DatabaseManager, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    watcher = ConfigWatcher(db, env, interval=0, environ={})
    assert watcher.check_now(force=True) == () and db.config.retry_attempts == 3
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=5\n")
    assert watcher.check_now() == ("retry_attempts",) and db.policy.attempts == 5


def test_a_reload_inside_an_open_transaction_waits_for_the_next_check(db: DatabaseManager, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("")
    watcher = ConfigWatcher(db, env, interval=0, environ={})
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=6\n")
    with db.transaction():
        assert watcher.check_now() == ()
        assert db.config.retry_attempts == 3
    assert watcher.check_now() == ("retry_attempts",)


def test_the_background_watcher_survives_an_invalid_file_and_an_unexpected_error(
        db: DatabaseManager, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = tmp_path / ".env"
    env.write_text("")

    class Flaky(ConfigWatcher):
        """Fails once with an error check_now does not expect (a bug must not end the thread)."""

        failed = False

        def load(self) -> ReliabilityConfig:
            if not self.failed and "=7" in self.path.read_text():
                Flaky.failed = True
                raise KeyError("unexpected")
            return super().load()

    with caplog.at_level(logging.ERROR, logger="reliability.reload"):
        watcher = Flaky(db, env, interval=0.01, environ={})
        try:
            _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=zero\n")
            assert wait_for(lambda: isinstance(watcher.last_error, ConfigError))
            _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=7\n")
            assert wait_for(lambda: db.config.retry_attempts == 7)  # the failed check is retried
            assert watcher._thread is not None and watcher._thread.is_alive()
        finally:
            watcher.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("configuration change in") for m in messages)
    assert any(m.startswith("configuration reload of") for m in messages)


def test_a_file_change_that_changes_no_setting_reloads_nothing(db: DatabaseManager, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_RETRY_ATTEMPTS=3\n")
    watcher = ConfigWatcher(db, env, interval=0, environ={})
    config = db.config
    _write_env(env, "# a comment\nRELIABILITY_RETRY_ATTEMPTS=3\n")
    assert watcher.check_now() == () and watcher.reloads == 0 and db.config is config


def test_a_reload_to_another_database_file_is_kept_for_the_next_start_and_said(db: DatabaseManager, tmp_path: Path,
                                                                               caplog) -> None:
    """The database file (and with it the default places of its journal, backups and queue) is read at start
    only: switching it live used to open the new file while the journal, backups and queue stayed beside the
    old one, one database's recovery data split across two places. The other settings of the same change
    are applied."""
    old = db.path
    other = tmp_path / "other.db"
    env = tmp_path / ".env"
    env.write_text("")
    watcher = ConfigWatcher(db, env, interval=0, environ={})
    _write_env(env, f"RELIABILITY_DB_PATH={other}\nRELIABILITY_RETRY_ATTEMPTS=7\n")
    with caplog.at_level(logging.WARNING, logger="reliability.reload"):
        assert watcher.check_now() == ("retry_attempts",)
    assert db.path == old and db.config.retry_attempts == 7
    assert watcher.pending_restart == {"db_path": str(other)}
    assert any("db_path is read at start only" in r.getMessage() for r in caplog.records)
    db.execute("CREATE TABLE stays (x)")
    assert not other.exists() and db.fetch_one("SELECT count(*) FROM stays")[0] == 0
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=7\n")  # taken back: nothing waits for a restart any more
    assert watcher.check_now() == () and watcher.pending_restart == {}


def test_the_background_watcher_ends_when_the_database_is_closed(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("")
    db = DatabaseManager(fast_config(tmp_path / "app.db"))
    watcher = ConfigWatcher(db, env, interval=0.01, environ={})
    db.close()
    assert watcher._thread is not None
    watcher._thread.join(5)
    assert not watcher._thread.is_alive()


def test_describe_masks_the_audit_key() -> None:
    from reliability.reload import describe

    shown = describe(ReliabilityConfig(audit_hmac_key="secret"))
    assert shown["audit_hmac_key"] == "***" and shown["retry_attempts"] == ReliabilityConfig().retry_attempts
