"""Corruption recovery loses no acknowledged write: real byte damage, real backups, the real redo journal."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability import DatabaseManager, ReliabilityConfig
from reliability.durability.recovery import replay_journal
from reliability.errors import DatabaseError, ErrorKind
from reliability.redo import read_journal


def config(tmp_path: Path | str, **changes: object) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(Path(tmp_path) / "app.db"), backup_interval=0, quick_check_interval=0,
                             integrity_check_interval=0, busy_timeout_ms=50, retry_attempts=1).replace(**changes)


def corrupt(path: Path, how: str) -> None:
    """Damage a closed database file for real: header magic, the table's root page, or truncate it."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
    conn.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if how == "header":
            f.write(b"\x00" * 16)
        elif how == "btree":
            f.seek((root - 1) * page_size)
            f.write(b"\xff" * 12 + os.urandom(200))
        else:
            f.truncate(max(page_size, size // 2))


def table(db: DatabaseManager) -> dict[int, str]:
    return dict(db.fetch_all("SELECT id, v FROM t"))


def new_db(tmp_path: Path | str, **changes: object) -> DatabaseManager:
    db = DatabaseManager(config(tmp_path, **changes))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return db


ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 40), st.text(max_size=8)),
    st.tuples(st.just("update"), st.integers(1, 40), st.text(max_size=8)),
    st.tuples(st.just("delete"), st.integers(1, 40)),
    st.tuples(st.just("txn"), st.lists(st.tuples(st.integers(1, 40), st.text(max_size=8)), max_size=4),
              st.booleans()),
    st.tuples(st.just("backup"),),
), max_size=30)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops, how=st.sampled_from(["header", "btree", "truncate"]), backup_first=st.booleans())
def test_recovery_after_real_corruption_restores_every_acknowledged_write(steps, how, backup_first):
    with tempfile.TemporaryDirectory() as tmp:
        model: dict[int, str] = {}
        db = new_db(tmp)
        if backup_first:
            db.backup()
        for step in steps:
            kind = step[0]
            if kind == "insert":
                _, key, value = step
                try:
                    db.execute("INSERT INTO t (id, v) VALUES (?, ?)", (key, value))
                except DatabaseError as err:
                    assert err.kind is ErrorKind.CONSTRAINT and key in model
                    continue
                model[key] = value
            elif kind == "update":
                _, key, value = step
                db.execute("UPDATE t SET v = ? WHERE id = ?", (value, key))
                if key in model:
                    model[key] = value
            elif kind == "delete":
                db.execute("DELETE FROM t WHERE id = ?", (step[1],))
                model.pop(step[1], None)
            elif kind == "txn":
                _, writes, commit = step
                staged = dict(model)
                try:
                    with db.transaction():
                        for key, value in writes:
                            db.execute("INSERT OR REPLACE INTO t (id, v) VALUES (?, ?)", (key, value))
                            staged[key] = value
                        if not commit:
                            raise KeyboardInterrupt  # any exception: the transaction rolls back
                except KeyboardInterrupt:
                    continue
                model = staged
            else:
                db.backup()
        assert table(db) == model
        db.connections.close()  # checkpoint: the damage below hits every committed page
        corrupt(Path(db.path), how)
        if how == "header":
            # Automatic: the first operation meets the damage, fails, and recovery runs behind it.
            with pytest.raises(DatabaseError) as info:
                db.fetch_all("SELECT id, v FROM t")
            assert info.value.action.value == "restore"
            report = db.monitor.last_recovery
            assert report is not None and report["ok"], report
        else:
            report = db.recover().to_dict()
            assert report["ok"], report
        assert report["quarantined"] and all(Path(p).exists() for p in report["quarantined"])
        assert table(db) == model
        assert db.check_integrity(full=True).ok
        db.execute("INSERT INTO t (id, v) VALUES (1000, 'after recovery')")
        db.close()


def test_automatic_recovery_after_truncation_reports_what_it_replayed(tmp_path):
    db = new_db(tmp_path)
    db.backup()
    for i in range(30):
        db.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}" * 50,))
    expected = table(db)
    db.connections.close()
    corrupt(Path(db.path), "truncate")
    with pytest.raises(DatabaseError) as info:
        db.fetch_all("SELECT id, v FROM t")
    assert info.value.kind is ErrorKind.CORRUPT
    assert table(db) == expected
    report = db.health()
    last = report.to_dict()["last_recovery"]
    assert last["ok"] and last["replayed"] == 30 and last["duration"] > 0
    assert report.errors == {"corrupt": 1}
    assert str(report.status) == "healthy", report.reasons
    db.close()


def test_recovery_without_any_backup_rebuilds_from_the_journal_of_a_new_database(tmp_path):
    with new_db(tmp_path) as db:
        with db.transaction():
            db.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",)])
            db.execute("INSERT INTO t (v) VALUES (?)", (b"\x00bytes\xff",))
        expected = table(db)
        db.connections.close()
        corrupt(Path(db.path), "header")
        report = db.recover()
        assert report.ok and report.backup is None and report.replayed == 2
        assert table(db) == expected


def test_rolled_back_work_and_rolled_back_savepoints_are_never_replayed(tmp_path):
    with new_db(tmp_path) as db:
        db.backup()
        with db.transaction():
            db.execute("INSERT INTO t (id, v) VALUES (1, 'kept')")
            try:
                with db.transaction():
                    db.execute("INSERT INTO t (id, v) VALUES (2, 'savepoint rolled back')")
                    raise ValueError
            except ValueError:
                pass
        with pytest.raises(ValueError), db.transaction():
            db.execute("INSERT INTO t (id, v) VALUES (3, 'rolled back')")
            raise ValueError
        db.execute("BEGIN")
        db.execute("INSERT INTO t (id, v) VALUES (4, 'manual rollback')")
        db.execute("ROLLBACK")
        db.execute("BEGIN")
        db.execute("INSERT INTO t (id, v) VALUES (5, 'manual commit')")
        db.execute("COMMIT")
        db.connections.close()
        corrupt(Path(db.path), "btree")
        assert db.recover().ok
        assert table(db) == {1: "kept", 5: "manual commit"}


def test_replay_is_idempotent_when_run_twice(tmp_path):
    with new_db(tmp_path) as db:
        backup = db.backup()
        for i in range(5):
            db.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
        journal = db.durability.redo.path  # type: ignore[union-attr]
    entries = read_journal(journal).entries
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(backup.path).read_bytes())
    assert replay_journal(copy, entries) == (5, [])
    assert replay_journal(copy, entries) == (0, [])
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (5,)
    conn.close()


def test_a_torn_last_journal_record_is_ignored_and_a_damaged_middle_record_is_reported(tmp_path):
    with new_db(tmp_path) as db:
        db.backup()
        db.execute("INSERT INTO t (v) VALUES ('one')")
        db.execute("INSERT INTO t (v) VALUES ('two')")
        path = db.durability.redo.path  # type: ignore[union-attr]
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # a crash mid-append of the last record (the clean-close one)
    state = read_journal(path)
    assert len(state.entries) == 2 and not state.problems
    at = data.index(b"one")
    path.write_bytes(data[:at] + b"ONE" + data[at + 3:])  # a bit flip in an acknowledged record
    state = read_journal(path)
    assert state.problems and "record 2" in state.problems[0] and "damaged" in state.problems[0]
    assert len(state.entries) == 0


def test_an_incomplete_recovery_says_what_is_missing(tmp_path):
    with new_db(tmp_path, redo_journal=False) as db:
        db.backup()
        db.execute("INSERT INTO t (v) VALUES ('after backup')")
        db.connections.close()
        corrupt(Path(db.path), "btree")
        report = db.recover()
        assert not report.ok and report.backup is not None
        assert any("redo journal is off" in p for p in report.problems)
        assert table(db) == {}
        assert any("last recovery was incomplete" in r for r in db.health().reasons)


def test_without_a_backup_or_journal_the_damaged_file_is_left_in_place(tmp_path):
    with new_db(tmp_path, redo_journal=False) as db:
        db.execute("INSERT INTO t (v) VALUES ('x')")
        db.connections.close()
        corrupt(Path(db.path), "btree")
        report = db.recover()
    assert not report.ok and report.quarantined == [] and "no verified backup" in report.problems[0]
    assert (tmp_path / "app.db").exists()


def test_a_failed_scheduled_quick_check_triggers_recovery(tmp_path):
    db = new_db(tmp_path)
    db.executemany("INSERT INTO t (v) VALUES (?)", [(f"row {i}" * 20,) for i in range(400)])
    db.backup()
    db.execute("INSERT INTO t (v) VALUES ('after backup')")
    expected = table(db)
    db.close()
    conn = sqlite3.connect(tmp_path / "app.db")
    leaf = conn.execute("SELECT max(rootpage) FROM sqlite_master").fetchone()[0] + 2
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(tmp_path / "app.db", "r+b") as f:  # a mid-file leaf: only a check finds it
        f.seek((leaf - 1) * page_size + 8)
        f.write(os.urandom(100))
    db = DatabaseManager(config(tmp_path, quick_check_interval=0.05))
    deadline = time.monotonic() + 5
    while db.monitor.last_recovery is None and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert db.monitor.last_recovery is not None and db.monitor.last_recovery["ok"]
        assert "quick integrity check failed" in db.monitor.last_recovery["reason"]
        assert table(db) == expected
    finally:
        db.close()


def test_an_unclean_shutdown_reanchors_the_journal_with_a_backup_at_startup(tmp_path):
    db = new_db(tmp_path)
    db.execute("INSERT INTO t (v) VALUES ('x')")
    db.connections.close()
    # Simulate a crash: no clean-close record is written (the process never reached close()).
    redo = db.durability.redo
    assert redo is not None and redo._fd is not None
    os.close(redo._fd)
    redo._fd = None
    assert db.backups() == []
    with DatabaseManager(config(tmp_path)) as again:
        assert len(again.backups()) == 1
        assert read_journal(again.durability.redo.path).base == again.backups()[0].last_seq  # type: ignore
    db.close()


def test_a_second_manager_on_the_same_file_journals_into_its_own_slot_and_is_healthy(tmp_path):
    with new_db(tmp_path) as first, DatabaseManager(config(tmp_path)) as second:
        assert first.durability.redo.owned and second.durability.redo.owned  # type: ignore[union-attr]
        assert second.durability.redo.path.name == "app.db.redo.1"  # type: ignore[union-attr]
        assert second.health().status == "healthy", second.health().reasons


def test_a_transaction_rerun_after_its_connection_died_is_journaled_once(tmp_path):
    # The first attempt's statements were captured, then the handle was closed under it: ROLLBACK
    # itself fails, and the captured statements must still be dropped, or replay repeats them.
    with new_db(tmp_path, retry_attempts=3, retry_base_delay=0.0, retry_max_delay=0.0) as db:
        db.backup()
        runs: list[int] = []

        def work() -> None:
            runs.append(1)
            db.execute("INSERT INTO t (id, v) VALUES (1, 'one')")
            if len(runs) == 1:
                db.connection.close()  # a real dead handle mid-transaction
            db.execute("INSERT INTO t (id, v) VALUES (2, 'two')")

        db.run_in_transaction(work)
        assert len(runs) == 2
        corrupt(Path(db.path), "truncate")
        report = db.recover()
        assert report.ok, report.problems
        assert table(db) == {1: "one", 2: "two"}


def test_writes_dropped_by_a_restore_are_not_missing_at_a_later_recovery(tmp_path):
    """Found by the backup machine (backup, write, restore that backup, corrupt, recover): the write
    the restore dropped on purpose was still the highest sequence this manager had seen, so the
    recovery reported it missing (ok=False). The restored file's sequence now moves past it."""
    db = new_db(tmp_path)
    db.execute("INSERT INTO t VALUES (1, 'kept')")
    backup = db.backup()
    db.execute("INSERT INTO t VALUES (2, 'dropped by the restore')")
    db.restore(backup.path)
    db.execute("INSERT INTO t VALUES (3, 'after the restore')")
    path = Path(db.path)
    db.close()
    corrupt(path, "btree")
    db = DatabaseManager(config(tmp_path))
    report = db.recover()
    assert report.ok, report.problems
    assert table(db) == {1: "kept", 3: "after the restore"}
    db.close()


def test_a_restore_then_recovery_with_no_write_between(tmp_path):
    """The machine's exact order: nothing is written after the restore before the corruption."""
    db = new_db(tmp_path)
    db.execute("INSERT INTO t VALUES (1, 'kept')")
    backup = db.backup()
    db.execute("INSERT INTO t VALUES (2, 'dropped by the restore')")
    db.restore(backup.path)
    corrupt(Path(db.path), "btree")
    report = db.recover()
    assert report.ok, report.problems
    assert table(db) == {1: "kept"}
    db.close()


# -- recovery and restore across processes (issue #15: no cross-process lock while installing) ----------
BANK_WORKER = str(Path(__file__).with_name("redo_worker.py"))


def _bank(path: Path) -> DatabaseManager:
    from redo_worker import ACCOUNTS
    from redo_worker import config as worker_config

    db = DatabaseManager(worker_config(str(path)))
    db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)")
    db.executemany("INSERT INTO accounts (id, balance) VALUES (?, 1000)", [(i,) for i in range(1, ACCOUNTS + 1)])
    db.backup()
    return db


def _acked(acks: Path) -> set[str]:
    return {ln for ln in acks.read_text().splitlines() if ln and not ln.startswith("armed")} if acks.exists() else set()


def _check_bank(path: Path, expected: set[str]) -> None:
    from redo_worker import ACCOUNTS

    conn = sqlite3.connect(path)
    try:
        ids = {r[0] for r in conn.execute("SELECT id FROM transfers")}
        (total,) = conn.execute("SELECT sum(balance) FROM accounts").fetchone()
    finally:
        conn.close()
    assert not expected - ids, f"{len(expected - ids)} acknowledged transfers lost: {sorted(expected - ids)[:5]}"
    assert total == ACCOUNTS * 1000


def test_a_process_writing_while_another_installs_loses_no_acknowledged_write(tmp_path, monkeypatch):
    """Another process's writes wait while recovery installs (the writer fence), then go to the new file.

    The install step is held open until the writer has had time to commit: without the fence its
    transfers land in the file being quarantined, acknowledged, and are gone after the install.
    """
    import subprocess
    import sys

    from reliability.durability import recovery as recovery_module

    path = tmp_path / "bank.db"
    db = _bank(path)
    acks = tmp_path / "acks"
    worker = subprocess.Popen([sys.executable, BANK_WORKER, "bank", str(path), "1", "40", str(acks)],
                              stderr=subprocess.PIPE)
    real_install = recovery_module.install
    during: list[int] = []

    def install_after_the_writer_tried(prepared: object, target: object) -> None:
        before = len(_acked(acks))
        try:  # give the writer its chance to commit into the old file (it is blocked: that is the point)
            worker.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            pass
        during.append(len(_acked(acks)) - before)
        real_install(prepared, target)

    try:
        while len(_acked(acks)) < 5 and worker.poll() is None:  # on progress, not on time
            try:
                worker.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        monkeypatch.setattr(recovery_module, "install", install_after_the_writer_tried)
        report = db.recover()
        assert report.ok, report.problems
        assert worker.wait(timeout=120) == 0, worker.stderr.read().decode() if worker.stderr else ""
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        db.close()
    assert during == [0]  # nothing was acknowledged while the new file was being installed
    done = _acked(acks)
    assert len(done) == 40
    _check_bank(path, done)


RECOVER_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[2])
from redo_worker import config
from reliability import DatabaseManager
with DatabaseManager(config(sys.argv[1])) as db:
    print("ok" if db.recover().ok else "incomplete", flush=True)
"""


def test_two_processes_recovering_at_once_take_turns_and_lose_nothing(tmp_path):
    import stat
    import subprocess
    import sys

    path = tmp_path / "bank.db"
    db = _bank(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, "x" * 50) for i in range(50)])
    for i in range(20):
        db.execute("INSERT INTO transfers (id, src, dst, amount) VALUES (?, 1, 1, 0)", (f"t{i}",))
    db.close()
    corrupt(path, "btree")
    procs = [subprocess.Popen([sys.executable, "-c", RECOVER_SCRIPT, str(path), str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    # The process that took a new journal slot on the damaged file could not anchor it (no backup of a
    # damaged file), so its recovery honestly says its journal has no header: "incomplete" is allowed there.
    assert "ok" in [o[0].strip() for o in outs], outs
    _check_bank(path, {f"t{i}" for i in range(20)})
    lock = Path(f"{path}.install-lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600 and not lock.is_symlink()


def test_a_symlink_at_the_install_lock_is_refused_and_nothing_is_installed(tmp_path):
    from reliability.files import UnsafePathError

    db = new_db(tmp_path)
    try:
        db.backup()
        outside = tmp_path / "outside"
        outside.write_text("keep")
        Path(f"{db.path}.install-lock").symlink_to(outside)
        with pytest.raises((DatabaseError, UnsafePathError)) as caught:
            db.recover()
        assert "link" in str(caught.value)
        assert outside.read_text() == "keep"
        assert not list(tmp_path.glob("*.quarantine-*"))
    finally:
        Path(f"{db.path}.install-lock").unlink()
        db.close()


def test_a_manager_started_on_a_damaged_file_says_its_journal_is_not_anchored_until_a_backup(tmp_path):
    """A new journal slot takes no records before a backup anchors it: health says so instead of healthy."""
    first = new_db(tmp_path)
    try:
        first.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, "x" * 50) for i in range(50)])
        first.backup()
        first.connections.close()
        corrupt(Path(first.path), "btree")
        second = DatabaseManager(config(tmp_path, auto_recover=False))  # takes journal slot 1, cannot back up
        try:
            health = second.health()
            assert str(health.status) != "healthy"
            assert any("could not be anchored" in r for r in health.reasons), health.reasons
            # The failed anchoring copy sent the file to the full check: second's own verdict says damaged too.
            assert second.monitor.integrity_ok is False, health.reasons
            assert first.recover().ok
            assert second.check_integrity(full=True).ok  # (its verdict is about the file it saw, until it looks again)
            second.backup()  # the anchoring backup succeeds now: the journal protects writes again
            assert str(second.health().status) == "healthy", second.health().reasons
        finally:
            second.close()
    finally:
        first.close()


# -- defects the data-loss machine found (pytest_dbfault/machines/dataloss.py) ------------------------
def test_a_locked_newer_backup_never_makes_recovery_install_an_older_one_with_a_gap(tmp_path):
    """Recovery skipped the locked newest backup, installed an older one missing a write, and the next
    recovery then called the shortened database complete: a lock had become lost data."""
    from pytest_dbfault.faults import LockedFault

    db = new_db(tmp_path, retry_attempts=2, retry_base_delay=0.001, retry_max_delay=0.002)
    try:
        db.backup()
        db.execute("INSERT INTO t (id, v) VALUES (1, 'covered only by the newer backup')")
        newest = db.backup()  # re-anchors the journal: the write is in this backup, no longer in the journal
        with LockedFault(newest.path, mode="exclusive", holder="subprocess"):
            first = db.recover()
        assert not first.ok and first.backup is None and first.quarantined == []
        assert any("nothing was installed" in p for p in first.problems), first.problems
        assert table(db) == {1: "covered only by the newer backup"}  # the database in place was not touched
        second = db.recover()
        assert second.ok and second.backup == newest.path, second.problems
        assert table(db) == {1: "covered only by the newer backup"}
    finally:
        db.close()


def test_a_deleted_journal_of_another_manager_is_reported_when_the_database_cannot_tell(tmp_path):
    """Header damage hides the writers table; the other manager's journal is gone: recovery said ok."""
    first = new_db(tmp_path)
    second = DatabaseManager(config(tmp_path))
    try:
        first.backup()
        first.execute("INSERT INTO t (id, v) VALUES (1, 'first')")
        second.execute("INSERT INTO t (id, v) VALUES (2, 'second, journaled in slot 1 only')")
        first.connections.close()
        second.connections.close()
        corrupt(Path(first.path), "header")
        Path(str(second.durability.redo.path)).unlink()
        report = first.recover()
        assert not report.ok
        assert any("redo journal of slot 1" in p and "is missing" in p for p in report.problems), report.problems
    finally:
        second.close()
        first.close()


def test_a_worker_killed_between_its_journal_record_and_commit_leaves_no_missing_transaction(tmp_path):
    """The killed process's record was never committed; its file's high-water mark still named it, and
    recovery reported a committed transaction missing (with every journal intact)."""
    import subprocess
    import sys

    path = tmp_path / "bank.db"
    db = _bank(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, "x" * 50) for i in range(50)])
    acks = tmp_path / "acks"
    worker = subprocess.run([sys.executable, BANK_WORKER, "bank", str(path), "1", "2", str(acks), "after_record"],
                            capture_output=True)
    assert worker.returncode < 0  # killed by its own SIGKILL after the record, before COMMIT
    done = _acked(acks)
    assert len(done) == 2
    try:  # no commit after the kill: nothing reuses the orphan's sequence
        db.connections.close()
        corrupt(path, "btree")
        report = db.recover()
        assert report.ok, report.problems
    finally:
        db.close()
    _check_bank(path, done)


def test_one_io_error_with_no_retries_is_no_integrity_verdict(tmp_path):
    """With retry_attempts=1 a single I/O error counted as "persisted through every retry": a sound
    database was marked damaged (and auto-recovery would have replaced it)."""
    from pytest_dbfault.faults import make_fault
    from pytest_dbfault.vfs.errors import VfsUnavailable

    db = new_db(tmp_path, auto_recover=False)
    try:
        db.execute("INSERT INTO t (id, v) VALUES (1, 'sound')")
        try:
            fault = make_fault("io_error", db.path, ops="read", nth=1).inject()
        except VfsUnavailable as exc:
            pytest.skip(f"the VFS shim cannot be registered here: {exc}")
        try:
            with pytest.raises(DatabaseError) as caught:
                db.check_integrity()
        finally:
            fault.heal()
        assert caught.value.kind is ErrorKind.IOERR and "no verdict" in caught.value.detail
        assert db.monitor.integrity_ok is not False
        assert db.check_integrity().ok
    finally:
        db.close()


# A recovery that waited for another process's install lock (issue #15): the other process already
# recovered the database; recovering again would quarantine a good file and restore on top of it.
WAITED_SCRIPT = """
import os, sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from redo_worker import config
from reliability import DatabaseManager
from reliability.durability import recovery
marks = Path(sys.argv[3])
real_install = recovery.install
def install_when_told(prepared, target):
    (marks / "installing").write_text("")
    while not (marks / "go").exists():  # the test says when: it has seen the other recovery wait
        time.sleep(0.01)
    real_install(prepared, target)
recovery.install = install_when_told
with DatabaseManager(config(sys.argv[1])) as db:
    (marks / "ready").write_text("")
    while not (marks / "corrupted").exists():
        time.sleep(0.01)
    report = db.recover()
    print("ok" if report.ok else "incomplete", len(report.quarantined), flush=True)
"""


def test_a_recovery_that_waited_for_another_process_does_not_recover_a_recovered_database_again(tmp_path):
    import logging
    import subprocess
    import sys
    import threading

    from redo_worker import config as worker_config

    path = tmp_path / "app.db"
    marks = tmp_path / "marks"
    marks.mkdir()
    db = DatabaseManager(worker_config(str(path)))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, "x" * 50) for i in range(50)])
    db.backup()
    for i in range(50, 80):  # acknowledged after the backup: only this manager's journal holds them
        db.execute("INSERT INTO t (id, v) VALUES (?, ?)", (i, "after"))
    other = subprocess.Popen([sys.executable, "-c", WAITED_SCRIPT, str(path), str(Path(__file__).parent),
                              str(marks)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiting = threading.Event()

    class SeeWaiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for it" in record.getMessage():
                waiting.set()

    handler = SeeWaiting()
    logging.getLogger("reliability.recovery").addHandler(handler)
    reports: list[object] = []
    try:
        while not (marks / "ready").exists():  # on progress, not on time
            assert other.poll() is None, other.communicate()
            time.sleep(0.01)
        corrupt(path, "btree")
        (marks / "corrupted").write_text("")
        while not (marks / "installing").exists():
            assert other.poll() is None, other.communicate()
            time.sleep(0.01)
        mine = threading.Thread(target=lambda: reports.append(db.recover()))
        mine.start()
        while not waiting.is_set():
            assert mine.is_alive()
            waiting.wait(0.05)
        (marks / "go").write_text("")
        out, err = other.communicate(timeout=120)
        mine.join(timeout=120)
        assert other.returncode == 0, err[-2000:]
        assert out.split()[0] == "ok" and int(out.split()[1]) >= 1, (out, err[-2000:])
        (report,) = reports
        assert report.ok, report.problems
        assert report.quarantined == [] and report.backup is None and report.replayed == 0
        assert "another process" in report.note
        # Only the other process's quarantine, of the damaged file (with its -wal/-shm): none of the good one.
        assert len([p for p in tmp_path.glob("app.db.quarantine*") if not p.name.endswith(("-wal", "-shm"))]) == 1
        assert table(db) == {**{i: "x" * 50 for i in range(50)}, **{i: "after" for i in range(50, 80)}}
        db.execute("INSERT INTO t (id, v) VALUES (80, 'next')")  # and this manager writes to the recovered file
    finally:
        logging.getLogger("reliability.recovery").removeHandler(handler)
        (marks / "go").write_text("")
        if other.poll() is None:
            other.kill()
            other.communicate()
        db.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 81
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()
