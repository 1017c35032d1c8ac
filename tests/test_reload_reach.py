"""A reload reaches every part that reads the changed setting, or says it waits for the next start.

Found by reading each setting against the reload (session 9): the watcher accepted a change, ``db.config``
showed it, and the part that had copied the value at construction went on with the old one. The backups
kept (``backup_keep``) and their lock wait, every schedule (backups, integrity checks, the health check,
the watcher's own pace) and the operation log's ids now follow a reload; the settings that say where the
runtime's data lives (``reliability.reload.RESTART_KEYS``) are kept for the next start, with a warning and
``watcher.pending_restart``, never half-applied. Real managers, real ``.env`` files, real schedules.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from runtime_helpers import fast_config, wait_for

from reliability import DatabaseManager
from reliability.config import ConfigError
from reliability.redo import read_journal
from reliability.reload import RESTART_KEYS, ConfigWatcher


def watch(db: DatabaseManager, env: Path, **kw: object) -> ConfigWatcher:
    """A watcher of ``env`` alone: the ``RELIABILITY_*`` variables of the process (a tox cell sets one) are
    not consulted, so what the test writes is what the reload sees."""
    return ConfigWatcher(db, env, environ={}, **kw)  # type: ignore[arg-type]


def write_env(path: Path, **settings: object) -> None:
    """Write ``RELIABILITY_<KEY>=value`` lines; the mtime moves on even on coarse timestamps."""
    path.write_text("".join(f"RELIABILITY_{k.upper()}={v}\n" for k, v in settings.items()))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def db(tmp_path: Path):
    manager = DatabaseManager(fast_config(tmp_path / "app.db", backup_keep=5))
    manager.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield manager
    manager.close()


def test_backup_keep_lowered_by_a_reload_rotates_at_the_next_backup(db: DatabaseManager, tmp_path: Path) -> None:
    for _ in range(3):
        db.backup()
    assert len(db.backups()) >= 3
    env = tmp_path / ".env"
    env.write_text("")
    watcher = watch(db, env, interval=0)
    write_env(env, backup_keep=1)
    assert watcher.check_now() == ("backup_keep",)
    db.backup()
    assert len(db.backups()) == 1, [b.path for b in db.backups()]


def test_the_backup_lock_wait_follows_busy_timeout_ms(db: DatabaseManager, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("")
    watcher = watch(db, env, interval=0)
    write_env(env, busy_timeout_ms=1234)
    assert watcher.check_now() == ("busy_timeout_ms",)
    assert db.durability.backups.busy_timeout == 1.234
    assert db.fetch_one("PRAGMA busy_timeout") == (1234,)


def test_a_schedule_turned_on_by_a_reload_runs_and_one_turned_off_stops(db: DatabaseManager, tmp_path: Path) -> None:
    scheduler = db.durability.scheduler
    assert not scheduler.running and db.backups() == []  # every interval is 0 in the fast settings
    env = tmp_path / ".env"
    env.write_text("")
    watcher = watch(db, env, interval=0)
    write_env(env, backup_interval=0.05, health_check_interval=0.05)
    assert set(watcher.check_now()) == {"backup_interval", "health_check_interval"}
    assert wait_for(lambda: len(db.backups()) >= 2, timeout=30), "the backup schedule turned on never ran"
    assert wait_for(lambda: scheduler.runs.get("health_check", 0) >= 1, timeout=30)
    write_env(env, backup_interval=0, health_check_interval=0)
    watcher.check_now()
    assert wait_for(lambda: not scheduler.running, timeout=30), "the schedule turned off still runs"
    made = len(db.backups())
    assert scheduler.tasks == [] and not wait_for(lambda: len(db.backups()) > made, timeout=0.3)


def test_the_watcher_follows_config_reload_interval_off_and_on_again(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("")
    with DatabaseManager(fast_config(tmp_path / "app.db", config_reload_interval=0.02)) as db:
        watcher = watch(db, env)  # its pace is the setting's
        write_env(env, config_reload_interval=0, retry_attempts=2)
        assert wait_for(lambda: db.config.retry_attempts == 2)
        thread = watcher._thread
        assert wait_for(lambda: thread is not None and not thread.is_alive()), "0 did not stop the watcher"
        write_env(env, config_reload_interval=0, retry_attempts=3)
        assert not wait_for(lambda: db.config.retry_attempts == 3, timeout=0.3)  # nobody watches now
        write_env(env, config_reload_interval=0.02, retry_attempts=3)
        assert watcher.check_now() == ("retry_attempts", "config_reload_interval")
        write_env(env, config_reload_interval=0.02, retry_attempts=4)
        assert wait_for(lambda: db.config.retry_attempts == 4), "the watcher did not start again"


def test_a_new_operation_log_keeps_the_managers_operation_ids(db: DatabaseManager, tmp_path: Path) -> None:
    log_path = tmp_path / "ops.jsonl"
    env = tmp_path / ".env"
    env.write_text("")
    watcher = watch(db, env, interval=0)
    write_env(env, operation_log="true", operation_log_path=log_path, log_json="true")
    watcher.check_now()
    db.execute("INSERT INTO t (v) VALUES ('logged')")
    db.oplog.flush()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert records and all(r["operation_id"].startswith(db.id_prefix + "-") for r in records), records[:2]


RESTART_VALUES = {
    "db_path": lambda tmp: tmp / "other.db",
    "sqlite_module": lambda tmp: "sqlean",
    "redo_journal": lambda tmp: "false",
    "backup_dir": lambda tmp: tmp / "elsewhere-backups",
    "write_queue_path": lambda tmp: tmp / "elsewhere.queue.jsonl",
    "audit_fallback_path": lambda tmp: tmp / "elsewhere.audit-fallback.jsonl",
}


def test_every_restart_only_setting_is_listed_here() -> None:
    assert set(RESTART_VALUES) == set(RESTART_KEYS)


@pytest.mark.parametrize("key", sorted(RESTART_VALUES))
def test_a_restart_only_setting_keeps_its_running_value_and_says_so(db: DatabaseManager, tmp_path: Path, key: str,
                                                                    caplog) -> None:
    before = getattr(db.config, key)
    value = RESTART_VALUES[key](tmp_path)
    if key == "sqlite_module" and before == value:  # (a tox cell runs on that build already)
        value = "sqlite3"
    env = tmp_path / ".env"
    env.write_text("")
    watcher = watch(db, env, interval=0)
    write_env(env, **{key: value, "retry_attempts": 2})
    with caplog.at_level(logging.WARNING, logger="reliability.reload"):
        assert watcher.check_now() == ("retry_attempts",)  # the rest of the change is applied
    assert getattr(db.config, key) == before and db.config.retry_attempts == 2
    assert list(watcher.pending_restart) == [key]
    assert any(f"{key} is read at start only" in r.getMessage() for r in caplog.records)
    # And the running manager really goes on as before: same file, same journal, same backups and queue.
    size = read_journal(db.redo_journal.path).valid_end
    db.execute("INSERT INTO t (v) VALUES ('after the reload')")
    assert read_journal(db.redo_journal.path).valid_end > size, "the journal stopped taking records"
    db.backup()
    assert all(Path(b.path).parent == Path(db.config.backup_directory) for b in db.backups())
    assert not (tmp_path / "other.db").exists() and not (tmp_path / "elsewhere-backups").exists()
    assert db.queue.path == Path(db.config.write_queue_file)


def test_a_rejected_reload_names_the_line_of_each_invalid_setting(db: DatabaseManager, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    write_env(env, backup_keep=3)
    watcher = watch(db, env)
    watcher.check_now(force=True)
    env.write_text("RELIABILITY_BACKUP_KEEP=3\n\nRELIABILITY_BUSY_TIMEOUT_MS=soon\n")
    with pytest.raises(ConfigError, match=rf"{env}:3: RELIABILITY_BUSY_TIMEOUT_MS='soon': expected a whole number"):
        watcher.check_now(force=True)
    assert watcher.last_error is not None and watcher.last_error.where["RELIABILITY_BUSY_TIMEOUT_MS"] == f"{env}:3"
    assert db.config.backup_keep == 3  # the old config stays
