"""A manager whose redo journal never anchored anchors once a sound file is at the path (found in session 26).

A manager that starts on a damaged database (``reliability recover`` beside a running service, a second manager on a
file with a damaged page) cannot anchor its journal: the anchoring backup fails ``integrity_check``, so the journal
gets no header and takes no record. Once another manager recovered the database, the first stayed unanchored for
good (with ``backup_interval=0`` nothing else takes a backup): its acknowledged writes went into no journal, and the
next recovery from damage lost them. Now a sound file put at the path by another manager of this process, or found
by this manager's own ``recover()`` ("recovered by another"), makes the journal anchor before the next write.

Real files, real damage (``pytest_dbfault``'s corrupt fault), real processes for the recovery done elsewhere.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config

from pytest_dbfault.faults import LockedFault, make_fault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseError, DatabaseManager, ReliabilityConfig
from reliability.damage_mark import DamageMarker
from reliability.durability.recovered_elsewhere import RECOVERED_BY_ANOTHER
from reliability.errors import ErrorKind
from reliability.redo import read_journal
from reliability.retry import RetryPolicy


def config(tmp_path: Path, **overrides: object) -> ReliabilityConfig:
    """No schedules (``backup_interval=0``: nothing but the fix re-anchors), no automatic recovery, patient."""
    values: dict[str, object] = {"backup_dir": str(tmp_path / "backups"), "auto_recover": False,
                                 "busy_timeout_ms": 2000, "retry_budget": 30.0}
    values.update(overrides)
    return fast_config(tmp_path / "app.db", **values)


def damage(path: Path, seed: int) -> None:
    """A real damaged page: the root of ``t`` (the file is checkpointed first, by another process)."""
    make_fault("corrupt", str(path), part="btree", table="t", seed=seed).inject()


def quiet_start(cfg: ReliabilityConfig, policy: RetryPolicy | None = None) -> DatabaseManager:
    """A manager started on a damaged file (its startup complaints are expected, not what is judged)."""
    logging.disable(logging.CRITICAL)
    try:
        return DatabaseManager(cfg, policy=policy)
    finally:
        logging.disable(logging.NOTSET)


def start_beside_damage(tmp_path: Path, b_config: ReliabilityConfig | None = None,
                        b_policy: RetryPolicy | None = None) -> tuple[DatabaseManager, DatabaseManager, set[str]]:
    """Manager A with rows and a backup; a page of ``t`` damaged; manager B started on it (anchoring refused)."""
    path = tmp_path / "app.db"
    a = DatabaseManager(config(tmp_path, journal_mode=b_config.journal_mode) if b_config else config(tmp_path))
    a.execute("CREATE TABLE t (id TEXT PRIMARY KEY, pad TEXT)")
    a.backup()
    acked = set()
    for i in range(30):
        a.execute("INSERT INTO t (id, pad) VALUES (?, ?)", (f"a{i}", "x" * 200))
        acked.add(f"a{i}")
    damage(path, seed=1)
    b = quiet_start(b_config or config(tmp_path), b_policy)
    redo = b.redo_journal
    assert redo is not None and redo.owned and not redo.anchored, "B's anchoring backup should have failed"
    assert "could not be anchored at startup" in (redo.error or "")
    return a, b, acked


def recover_from_fresh_manager(tmp_path: Path) -> tuple[bool, list[str], set[str]]:
    """A fresh manager (as ``reliability recover`` starts one) recovers the damaged file: (ok, problems, ids)."""
    fresh = quiet_start(config(tmp_path))
    try:
        report = fresh.recover()
        ids = {r[0] for r in fresh.fetch_all("SELECT id FROM t")}
    finally:
        fresh.close()
    return report.ok, report.problems, ids


def test_a_recovery_by_another_manager_of_this_process_anchors_the_journal(tmp_path, monkeypatch):
    """A recovers; B's next write is journaled; damage again: a fresh manager's recovery brings B's row back, ok."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    a, b, acked = start_beside_damage(tmp_path)
    try:
        assert a.recover().ok
        b.execute("INSERT INTO t (id, pad) VALUES ('from-b', 'y')")  # acknowledged
        acked.add("from-b")
        redo = b.redo_journal
        assert redo.anchored and redo.error is None and redo.unrecorded == 0
        assert not [r for r in b.health().reasons if "redo journal" in r], b.health().reasons
        damage(tmp_path / "app.db", seed=2)
        ok, problems, ids = recover_from_fresh_manager(tmp_path)
        assert acked <= ids, f"lost {sorted(acked - ids)}; ok={ok} {problems}"  # (was: 'from-b' lost)
        assert ok, problems
    finally:
        b.close()
        a.close()


_RECOVER_ELSEWHERE = textwrap.dedent("""
    import logging, sys
    logging.disable(logging.CRITICAL)
    from reliability import DatabaseManager, ReliabilityConfig
    cfg = ReliabilityConfig(db_path=sys.argv[1], backup_dir=sys.argv[2], auto_recover=False, backup_interval=0,
                            quick_check_interval=0, integrity_check_interval=0, health_check_interval=0,
                            config_reload_interval=0, busy_timeout_ms=2000, sqlite_module=sys.argv[3])
    db = DatabaseManager(cfg)
    report = db.recover()
    db.close()
    print("ok" if report.ok else "not ok", report.problems)
""")


def recover_in_another_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _RECOVER_ELSEWHERE, str(tmp_path / "app.db"),
                           str(tmp_path / "backups"), SQLITE_MODULE_NAME],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("ok"), (done.stdout, done.stderr[-2000:])


def test_recover_that_finds_the_database_recovered_by_another_anchors_the_journal(tmp_path, monkeypatch):
    """Another process recovers (no hook reaches B); B's own recover() finds it done and anchors its journal."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    a, b, acked = start_beside_damage(tmp_path)
    try:
        a.close()  # (the service's manager goes; B stays, unanchored)
        recover_in_another_process(tmp_path)
        report = b.recover()
        assert report.ok and report.note == RECOVERED_BY_ANOTHER, report
        redo = b.redo_journal
        assert redo.anchored and redo.error is None, redo.error  # (was: unanchored for good)
        b.execute("INSERT INTO t (id, pad) VALUES ('from-b', 'y')")
        acked.add("from-b")
        assert redo.unrecorded == 0
        damage(tmp_path / "app.db", seed=3)
        ok, problems, ids = recover_from_fresh_manager(tmp_path)
        assert acked <= ids, f"lost {sorted(acked - ids)}; ok={ok} {problems}"
        assert ok, problems
    finally:
        b.close()
        a.close()


def test_a_recovery_by_another_process_this_manager_never_asks_about_anchors_the_journal(tmp_path, monkeypatch):
    """Another process recovers and B is never told (no hook, no recover() of its own): its next write finds another
    file at the path (one stat per write while unanchored), anchors on it and is journaled."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    a, b, acked = start_beside_damage(tmp_path)
    try:
        a.close()
        recover_in_another_process(tmp_path)
        b.execute("INSERT INTO t (id, pad) VALUES ('from-b', 'y')")  # (B reopens on the new file: no error)
        acked.add("from-b")
        redo = b.redo_journal
        assert redo.anchored and redo.error is None and redo.unrecorded == 0, redo.error
        damage(tmp_path / "app.db", seed=4)
        ok, problems, ids = recover_from_fresh_manager(tmp_path)
        assert acked <= ids, f"lost {sorted(acked - ids)}; ok={ok} {problems}"
        assert ok, problems
    finally:
        b.close()
        a.close()


def test_a_manager_that_cannot_anchor_does_not_try_at_every_write_on_the_same_file(tmp_path, monkeypatch, caplog):
    """Nothing was installed: B's writes on the damaged file it started on do not each take a backup that fails
    (they go unrecorded, counted and reported)."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    a, b, acked = start_beside_damage(tmp_path)
    try:
        b.execute("CREATE TABLE side (v)")
        with caplog.at_level(logging.INFO, logger="reliability"):
            caplog.clear()  # (A's backup above is logged too when an earlier test left the logger at INFO)
            for i in range(3):
                b.execute("INSERT INTO side (v) VALUES (?)", (i,))
        assert not [r for r in caplog.records if "backup" in r.getMessage()], caplog.text
        redo = b.redo_journal
        assert not redo.anchored and redo.unrecorded == 4
    finally:
        b.close()
        a.close()


class HealOnSleep:
    """A retry policy's sleep that lifts the lock the first time the policy backs off (nothing timed)."""

    def __init__(self) -> None:
        self.fault: Any = None
        self.sleeps = 0

    def __call__(self, seconds: float) -> None:
        self.sleeps += 1
        if self.fault is not None:
            self.fault.heal()


def test_a_lock_met_while_anchoring_is_waited_for_under_the_shared_policy(tmp_path, monkeypatch):
    """Another process holds the database's lock as B anchors: retried under B's policy, then anchored (a lock
    is never a verdict on the file or the backups). (A rollback journal: in WAL mode a lock keeps writers out,
    not the backup's reads.)"""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    cfg = config(tmp_path, busy_timeout_ms=20, retry_attempts=5, journal_mode="DELETE")
    sleep = HealOnSleep()
    a, b, acked = start_beside_damage(tmp_path, cfg, RetryPolicy.from_config(cfg, sleep=sleep))
    try:
        assert a.recover().ok
        sleep.fault = LockedFault(tmp_path / "app.db", mode="exclusive", holder="subprocess")
        sleep.fault.inject()
        b.execute("INSERT INTO t (id, pad) VALUES ('from-b', 'y')")
        assert sleep.sleeps >= 1  # (the lock was met, and waited for)
        redo = b.redo_journal
        assert redo.anchored and redo.error is None and redo.unrecorded == 0
        assert read_journal(redo.path).entries, "the write after the anchoring took no record"
        assert all(info.verified for info in b.backups())
    finally:
        if sleep.fault is not None:
            sleep.fault.heal()
        b.close()
        a.close()


def test_a_lock_that_outlasts_the_policy_is_no_verdict_and_is_tried_again_later_not_at_every_write(
        tmp_path, monkeypatch, caplog):
    """The lock outlasts B's policy: nothing is marked (backups stay verified, no damage mark), the journal stays
    unanchored saying so, the next write does not try again at once, and a write after the wait anchors it."""
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)
    cfg = config(tmp_path, busy_timeout_ms=20, retry_attempts=2, journal_mode="DELETE")
    a, b, acked = start_beside_damage(tmp_path, cfg, RetryPolicy.from_config(cfg, sleep=lambda s: None))
    path = tmp_path / "app.db"
    fault = LockedFault(path, mode="exclusive", holder="subprocess")
    try:
        assert a.recover().ok
        fault.inject()
        tries = []
        for i in range(3):
            with caplog.at_level(logging.ERROR, logger="reliability.recovery"):
                caplog.clear()
                with pytest.raises(DatabaseError) as caught:  # (the write meets the same lock)
                    b.execute("INSERT INTO t (id, pad) VALUES (?, 'y')", (f"locked{i}",))
                assert caught.value.kind is ErrorKind.BUSY
                tries.append(sum("could not anchor the redo journal" in r.getMessage() for r in caplog.records))
        assert tries == [1, 0, 0], tries  # (one try, then none until the wait is over)
        redo = b.redo_journal
        assert not redo.anchored and "could not be anchored" in (redo.error or "")
        assert all(info.verified for info in b.backups())
        assert not DamageMarker(str(path)).present()
        fault.heal()
        journal = b.durability.journal
        journal.clock = lambda: time.monotonic() + 3600.0  # the wait is over
        b.execute("INSERT INTO t (id, pad) VALUES ('from-b', 'y')")
        assert redo.anchored and redo.error is None and redo.unrecorded == 0
        assert read_journal(redo.path).entries
    finally:
        fault.heal()
        b.close()
        a.close()
