"""Configuration hot reload: valid .env changes applied atomically, invalid ones rejected and logged."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import ConfigError, DatabaseManager


def _write_env(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    # Make the change visible even on filesystems with coarse timestamps.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def env(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("RELIABILITY_RETRY_ATTEMPTS=3\n")
    return path


def test_a_valid_change_is_applied_logged_and_announced(db: DatabaseManager, env: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    watcher = db.watch_env(env, interval=0)
    seen: list[tuple[str, ...]] = []
    watcher.subscribe(lambda old, new, changed: seen.append(changed))
    old_config = db.config
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=7\nRELIABILITY_BUSY_TIMEOUT_MS=33\n")
    with caplog.at_level(logging.INFO, logger="reliability.reload"):
        changed = watcher.check_now()
    assert set(changed) == {"retry_attempts", "busy_timeout_ms"} and seen == [changed]
    assert db.config is not old_config and db.config.retry_attempts == 7 and db.policy.attempts == 7
    assert db.config.db_path == old_config.db_path  # settings not in the file keep their value
    assert db.connection.execute("PRAGMA busy_timeout").fetchone() == (33,)  # reconnected with the new value
    assert db.fetch_one("SELECT count(*) FROM items") == (0,)
    assert any("retry_attempts" in r.getMessage() and "busy_timeout_ms" in r.getMessage() for r in caplog.records)


def test_an_invalid_change_is_rejected_naming_the_keys_and_the_old_config_stays(
        db: DatabaseManager, env: Path, caplog: pytest.LogCaptureFixture) -> None:
    watcher = db.watch_env(env, interval=0)
    before = db.config
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=0\nRELIABILITY_JOURNAL_MODE=bogus\nRELIABILITY_BUSY_TIMEOUT=5\n")
    with caplog.at_level(logging.ERROR, logger="reliability.reload"), pytest.raises(ConfigError) as info:
        watcher.check_now()
    keys = {k for k, _v, _r in info.value.problems}
    assert keys == {"RELIABILITY_RETRY_ATTEMPTS", "RELIABILITY_JOURNAL_MODE", "RELIABILITY_BUSY_TIMEOUT"}
    assert "did you mean RELIABILITY_BUSY_TIMEOUT_MS" in str(info.value)
    assert db.config is before and watcher.last_error is info.value
    assert any("rejected" in r.getMessage() for r in caplog.records)
    assert watcher.check_now() == ()  # reported once; still in force until the file changes again
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=4\n")
    assert watcher.check_now() == ("retry_attempts",) and watcher.last_error is None


def test_an_unchanged_or_missing_file_changes_nothing(db: DatabaseManager, env: Path) -> None:
    watcher = db.watch_env(env, interval=0)
    assert watcher.check_now() == ()
    env.unlink()
    assert watcher.check_now() == () and db.config.retry_attempts == 3


def test_the_background_watcher_applies_a_change(db: DatabaseManager, env: Path) -> None:
    db.watch_env(env, interval=0.01)
    _write_env(env, "RELIABILITY_WRITE_QUEUE_MAX=5\n")
    deadline = time.monotonic() + 10
    while db.config.write_queue_max != 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.config.write_queue_max == 5 and db.queue.max_entries == 5


def test_a_save_in_place_is_never_applied_half_written(db: DatabaseManager, env: Path) -> None:
    # An editor saving in place truncates the file, then writes it. The background thread's look in between used to
    # apply the empty file: every setting back to its base (and a base config_reload_interval of 0 stopped the thread
    # before the finished save was seen; found by a session-28 helper, seen once in the config machine). The thread's
    # look (poll) is called here by hand at the moments that matter, so no timing is involved.
    watcher = db.watch_env(env, interval=0)
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=5\nRELIABILITY_WRITE_QUEUE_MAX=7\n")
    assert watcher.poll() == ()  # changed since the last look: it waits for the file to settle
    assert set(watcher.poll()) == {"retry_attempts", "write_queue_max"}
    applied: list[tuple[str, ...]] = []
    watcher.subscribe(lambda old, new, changed: applied.append(changed))
    with open(env, "w") as half:  # the save in place: truncated ...
        half.flush()
        assert watcher.poll() == ()
        assert (db.config.retry_attempts, db.config.write_queue_max) == (5, 7)
        half.write("RELIABILITY_RETRY_ATTEMPTS=6\nRELIABILITY_WRITE_QUEUE_MAX=7\n")  # ... then written
    st = env.stat()
    os.utime(env, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert watcher.poll() == ()
    assert watcher.poll() == ("retry_attempts",) and db.config.retry_attempts == 6
    assert applied == [("retry_attempts",)]  # the empty file was never in force
    assert watcher.check_now() == ()  # (a call applies at once; nothing is left to apply)


def test_a_change_waits_for_an_open_transaction_to_end(db: DatabaseManager, env: Path) -> None:
    watcher = db.watch_env(env, interval=0)
    _write_env(env, "RELIABILITY_RETRY_ATTEMPTS=9\n")
    with db.transaction():
        db.execute("INSERT INTO items (name, qty) VALUES ('a', 1)")
        assert watcher.check_now() == ()
        assert db.config.retry_attempts == 3
    assert watcher.check_now() == ("retry_attempts",)
    assert db.fetch_one("SELECT count(*) FROM items") == (1,)


def test_reload_can_switch_the_operation_log_on(tmp_path: Path, env: Path) -> None:
    log_path = tmp_path / "ops.log"
    with DatabaseManager(fast_config(tmp_path / "a.db")) as db:
        watcher = db.watch_env(env, interval=0)
        assert db._oplog is None
        _write_env(env, f"RELIABILITY_OPERATION_LOG=true\nRELIABILITY_OPERATION_LOG_PATH={log_path}\n")
        assert set(watcher.check_now()) == {"operation_log", "operation_log_path"}
        db.execute("CREATE TABLE t (v)")
    assert "kind=execute" in log_path.read_text()


def test_the_example_env_file_lists_every_setting_with_its_default() -> None:
    import dataclasses

    from reliability import ReliabilityConfig
    from reliability.config import read_env_file

    example = Path(__file__).parent.parent / ".env.example"
    keys = {k.removeprefix("RELIABILITY_").lower() for k in read_env_file(example)}
    assert keys == {f.name for f in dataclasses.fields(ReliabilityConfig)}
    assert ReliabilityConfig.from_env(example, environ={}) == ReliabilityConfig()
