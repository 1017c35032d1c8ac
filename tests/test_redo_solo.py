"""The only writer commits without a sequence row (issue #17, synchronous NORMAL), and nothing is given up.

At synchronous NORMAL a manager that holds the claim to commit alone skips the per-commit row of
``_reliability_redo_writers`` (one WAL page per commit) and writes its journal record after COMMIT.
These tests check the skip really happens, that every other writer, backup and recovery first
publishes the sequence it skipped, and that kill -9 at each point of that commit path loses no
acknowledged write, replays no write the database does not hold, and never lets journal and
database diverge. Real processes, real files, real damage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from test_redo_multiprocess import WORKER, acked, check_bank, damage, setup_bank, transfer

from reliability import DatabaseManager
from reliability.redo import SOLO_SLOT, WRITERS_TABLE, journal_files, read_journal


def normal(path) -> DatabaseManager:
    from redo_worker import config
    return DatabaseManager(config(str(path)).replace(synchronous="NORMAL"))


def normal_bank(path) -> DatabaseManager:
    """The bank set up at the default settings, then opened at NORMAL (where a manager commits alone)."""
    setup_bank(path).close()
    return normal(path)


def writers(db: DatabaseManager) -> dict[int, int]:
    return dict(db.fetch_all(f"SELECT slot, seq FROM {WRITERS_TABLE}"))


def test_the_only_writer_writes_no_sequence_row_per_commit_and_recovery_still_replays_all(tmp_path):
    path = tmp_path / "bank.db"
    db = normal_bank(path)
    try:
        db.backup()
        transfer(db, "t-0", 1, 2, 5)  # the first commit records its sequence and claims the run alone
        before = writers(db)
        assert before[SOLO_SLOT] == -(db._redo.slot + 1)
        for i in range(1, 8):
            transfer(db, f"t-{i}", i, i + 1, 3)
        assert writers(db) == before  # seven commits, not one sequence row written
        state = read_journal(db._redo.path)
        assert len(state.entries) == 8 and len(state.alone) == 7
        db.connections.close()
        damage(path, "transfers")
        report = db.recover()
        assert report.ok and report.replayed == 8, report
        check_bank(db, {f"t-{i}" for i in range(8)})
    finally:
        db.close()


def test_a_second_writer_publishes_the_first_ones_sequence_and_the_order_survives(tmp_path):
    path = tmp_path / "bank.db"
    first = normal_bank(path)
    try:
        first.backup()
        for i in range(4):
            transfer(first, f"a-{i}", 1, 2, 1)
        assert first._redo.solo_conn is not None
        second = normal(path)  # its startup backup already publishes the first one's sequence
        try:
            assert first._redo.claim.revoked()
            for i in range(3):
                # order-dependent writes from both: replay in any other order gives other balances
                transfer(second, f"b-{i}", 2, 3, 2)
                transfer(first, f"c-{i}", 3, 1, 1)
            seqs = writers(first)
            assert SOLO_SLOT not in seqs and seqs[0] != seqs[1]
            expected = dict(first.fetch_all("SELECT id, balance FROM accounts"))
            first.connections.close()
            second.connections.close()
            damage(path, "transfers")
            report = first.recover()
            assert report.ok, report
            assert dict(first.fetch_all("SELECT id, balance FROM accounts")) == expected
            check_bank(first, {f"a-{i}" for i in range(4)} | {f"{k}-{i}" for k in "bc" for i in range(3)})
        finally:
            second.close()
    finally:
        first.close()


def test_a_backup_by_a_manager_without_a_journal_publishes_the_sequence_first(tmp_path):
    # Otherwise the copy would carry a sequence older than its content and recovery would replay twice.
    path = tmp_path / "bank.db"
    alone = normal_bank(path)
    off = None
    try:
        alone.backup()
        for i in range(5):
            transfer(alone, f"t-{i}", 1, 2, 1)
        from redo_worker import config
        off = DatabaseManager(config(str(path)).replace(redo_journal=False))
        info = off.durability.backup()
        assert info.last_seq == alone._redo.seq  # every commit made alone is counted in the copy
        off.close()
        off = None
        transfer(alone, "after", 3, 4, 7)
        alone.connections.close()
        damage(path, "transfers")
        report = alone.recover()
        # (not ok for another reason: the copy was taken while a manager without a journal was open)
        assert any("without a redo journal" in p for p in report.problems), report
        assert report.replayed == 1, report  # "after" only: t-0..t-4 are in the copy and counted in its sequence
        check_bank(alone, {f"t-{i}" for i in range(5)} | {"after"})  # (a double replay breaks the balances)
    finally:
        if off is not None:
            off.close()
        alone.close()


@pytest.mark.parametrize("point", ["before_commit", "before_record", "after_record", "after_commit"])
def test_kill_9_at_each_point_of_the_commit_path_of_the_only_writer(tmp_path, point):
    path = tmp_path / "bank.db"
    db = setup_bank(path)
    db.backup()
    db.close()
    acks = tmp_path / "acks"
    env = dict(os.environ, REDO_WORKER_SYNC="NORMAL")
    worker = subprocess.Popen([sys.executable, WORKER, "bank", str(path), "1", "6", str(acks), point],
                              stderr=subprocess.PIPE, env=env)
    assert worker.wait() == -signal.SIGKILL, worker.stderr.read().decode() if worker.stderr else ""
    done = acked(acks)
    assert len(done) == 6
    slot0 = read_journal(journal_files(path.with_name("bank.db.redo"))[0][1])
    assert len(slot0.alone) >= 5  # the worker did commit alone before it was killed
    again = normal(path)  # takes over the dead worker's slot: an unclean start
    try:
        in_flight = "1-6"
        was_committed = in_flight in {r[0] for r in again.fetch_all("SELECT id FROM transfers")}
        assert was_committed == (point != "before_commit")
        transfer(again, "again-1", 5, 6, 4)
        expected = done | {"again-1"} | ({in_flight} if was_committed else set())
        again.connections.close()
        damage(path, "transfers")
        report = again.recover()
        assert report.ok, report
        check_bank(again, expected)
        ids = {r[0] for r in again.fetch_all("SELECT id FROM transfers")}
        assert (in_flight in ids) == was_committed  # the journal and the database never diverge
    finally:
        again.close()


def test_a_transaction_committed_without_its_record_is_reported_missing_not_papered_over(tmp_path, caplog):
    # The worker commits alone (the FULL manager open meanwhile never claims) and is killed between a
    # COMMIT and its record. The next writer leaves that sequence out, so a recovery from the older
    # backup says a committed transaction is missing instead of replaying later writes onto a state
    # without it (the database and the journal never diverge silently).
    path = tmp_path / "bank.db"
    main = setup_bank(path)  # synchronous FULL: slot 0, no claim
    try:
        main.backup()
        acks = tmp_path / "acks"
        env = dict(os.environ, REDO_WORKER_SYNC="NORMAL")
        worker = subprocess.Popen([sys.executable, WORKER, "bank", str(path), "1", "3", str(acks), "before_record"],
                                  stderr=subprocess.PIPE, env=env)
        assert worker.wait() == -signal.SIGKILL
        assert main.fetch_one("SELECT count(*) FROM transfers WHERE id = '1-3'") == (1,)  # committed, no record
        slot1 = read_journal(journal_files(path.with_name("bank.db.redo"))[1][1])
        assert len(slot1.alone) == 2 and writers(main)[SOLO_SLOT] == -2
        with caplog.at_level("WARNING", "reliability.redo"):
            transfer(main, "main-1", 1, 2, 3)
        assert any("left out" in r.getMessage() for r in caplog.records)
        gap = slot1.entries[-1][0] + 1
        assert writers(main)[1] == gap and writers(main)[0] == gap + 1
        main.connections.close()
        damage(path, "transfers")
        report = main.recover()
        assert not report.ok
        assert any(f"sequence {gap}" in p for p in report.problems), report.problems
    finally:
        main.close()


def test_a_restart_with_auto_migrate_migrates_while_the_only_writer_commits_alone(tmp_path):
    """Regression: the backup before a migration ran under the write block (``query_only``) of the
    untrusted schema, so publishing the lone writer's sequence failed ("readonly"), no backup was
    taken and the pending migration was never applied: writes stayed refused."""
    from redo_worker import config

    from reliability.schema import Migration

    m1 = Migration(1, "notes", "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
    m2 = Migration(2, "tags", "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT)")
    path = tmp_path / "app.db"
    base = config(str(path)).replace(synchronous="NORMAL", auto_migrate=True)
    db = DatabaseManager(base, migrations=[m1])
    db.execute("INSERT INTO notes(body) VALUES ('kept')")
    db.close()
    db = DatabaseManager(base, migrations=[m1, m2])
    try:
        tables = {r[0] for r in db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "tags" in tables, db.health().reasons
        db.execute("INSERT INTO tags(name) VALUES ('x')")
        assert db.fetch_all("SELECT body FROM notes") == [("kept",)]
        assert db.backups(), "the migration of a database holding data is preceded by a backup"
    finally:
        db.close()


def _vfs_or_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VFS shim of the runtime's own SQLite build, and faults given a path aimed at that build."""
    from pytest_dbfault.faults.target import MODULE_ENV
    from pytest_dbfault.vfs import vfs_available
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"  # the cell's build
    ok, reason = vfs_available(module)
    if not ok:
        pytest.skip(f"VFS shim unavailable for {module}: {reason}")
    monkeypatch.setenv(MODULE_ENV, module)


@pytest.mark.parametrize("fault", ["io_error", "deferred_foreign_key"])
def test_a_commit_failing_right_after_publishing_the_run_alone_leaves_no_false_gap(tmp_path, caplog, fault,
                                                                                   monkeypatch):
    """Regression: allocating a sequence publishes the run alone (the SOLO_SLOT row) and, before the fix,
    updated the journal's state as if that row were written. A COMMIT failing right after it wrote nothing,
    yet the journal believed its run alone was over: the next commit took its own run for a dead owner's and
    left a sequence number out, and recovery reported a transaction missing that never existed."""
    from redo_worker import config

    from reliability import DatabaseError
    if fault == "io_error":
        _vfs_or_skip(monkeypatch)
        from pytest_dbfault.vfs.faults import IoErrorFault
    path = tmp_path / "app.db"
    # On the cell's SQLite build, the one the VFS fault below goes into.
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"
    db = DatabaseManager(config(str(path)).replace(synchronous="NORMAL", retry_attempts=1, sqlite_module=module))
    hold = None
    try:
        db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
        db.execute("INSERT INTO parent VALUES (1)")
        db.backup()
        for i in range(2, 5):
            db.execute("INSERT INTO parent VALUES (?)", (i,))
        if fault == "io_error":
            # A rule that never fires keeps the shim on while the next connection opens through it.
            hold = IoErrorFault(db.path, ops="write", nth=10**9)
            hold.__enter__()
        assert db._redo.solo_conn is db.connections.connection, "this manager commits alone"
        # On a new connection the next commit allocates a sequence: it publishes its own run alone first.
        db._drop_connection()
        seq_before = db._redo.seq
        with pytest.raises(DatabaseError):
            if fault == "io_error":
                with IoErrorFault(db.path, ops="write", nth=1) as failing:
                    with db.transaction():
                        db.execute("INSERT INTO parent VALUES (5)")
                assert failing.fired == 1
            else:
                with db.transaction():
                    db.execute("INSERT INTO child VALUES (99)")  # no parent 99: COMMIT fails
        if hold is not None:
            hold.__exit__(None, None, None)
            hold = None
        assert db._redo.seq == seq_before
        assert writers(db)[SOLO_SLOT] == -(db._redo.slot + 1), "the failed COMMIT wrote nothing"
        caplog.set_level("WARNING", logger="reliability")
        for i in range(6, 9):
            db.execute("INSERT INTO parent VALUES (?)", (i,))
        assert "left out" not in caplog.text, "the failed COMMIT made this live manager look dead"
        expected = {r[0] for r in db.fetch_all("SELECT id FROM parent")}
        assert expected == {1, 2, 3, 4, 6, 7, 8}
        db.connections.close()
        damage(path, "parent")
        report = db.recover()
        assert report.ok, report.problems  # before the fix: "1 committed transaction(s) are missing"
        assert {r[0] for r in db.fetch_all("SELECT id FROM parent")} == expected
    finally:
        if hold is not None:
            hold.__exit__(None, None, None)
        db.close()


def test_a_publisher_waits_for_the_commit_window_of_a_live_owner(tmp_path):
    """The owner opens its window (a store into the claim file's mapping) before COMMIT and closes it
    once the record is written; a publisher must read the owner's journal only after that, or it would
    miss the last committed transaction. (A window left open by a dead owner: the kill -9 tests.)"""
    import threading

    from reliability.redo import _last_committed_alone
    path = tmp_path / "bank.db"
    owner = normal_bank(path)
    try:
        transfer(owner, "t-0", 1, 2, 5)
        transfer(owner, "t-1", 2, 3, 5)
        journal = owner._redo
        assert journal.solo_mine
        seq = journal.seq
        journal.claim.enter()  # as commit_alone does before COMMIT
        got: list[int] = []
        publisher = threading.Thread(target=lambda: got.append(_last_committed_alone(
            journal.base_path, journal.slot, 0, own=False, running=True)))
        publisher.start()
        publisher.join(0.3)
        assert publisher.is_alive(), "the publisher read the journal while the owner's window was open"
        journal.capture("INSERT INTO transfers (id, src, dst, amount) VALUES ('t-2', 1, 2, 0)", (), False)
        assert journal.write_record(seq + 1, sync=False, alone=True)  # the record of the COMMIT in the window
        journal.claim.leave()
        publisher.join(30)
        assert got == [seq + 1]
        assert journal.claim.revoked()
    finally:
        owner.close()


def test_an_older_copy_put_in_place_is_refused_naming_every_commit_since_it(tmp_path):
    """The refusal says how many and which: the commits written alone after the first missing one count too."""
    import shutil

    from reliability import DatabaseError

    path = tmp_path / "bank.db"
    db = normal_bank(path)
    try:
        backup = db.backup()
        for i in range(4):
            transfer(db, f"t-{i}", i + 1, i + 2, 3)  # the first records its sequence, the other three alone
        assert len(read_journal(db._redo.path).alone) == 3
    finally:
        db.close()
    for side in ("-wal", "-shm"):
        if os.path.exists(f"{path}{side}"):
            os.remove(f"{path}{side}")
    shutil.copyfile(str(backup.path), str(path))  # an operator's `cp` of the newest backup over the database
    db = normal(path)
    try:
        with pytest.raises(DatabaseError) as refused:
            db.fetch_one("SELECT count(*) FROM transfers")
        assert refused.value.kind == "unavailable"
        assert "is missing 4 committed transaction(s) that the redo journal(s) hold (sequence " in \
            refused.value.detail, refused.value.detail
        report = db.recover()
        assert report.ok, report
        check_bank(db, {f"t-{i}" for i in range(4)})
    finally:
        db.close()


def test_an_owner_that_closes_while_its_run_is_published_leaves_no_sequence_out(tmp_path, monkeypatch):
    """The publisher asks whether the owner runs before it reads the owner's file: an owner that closes cleanly in
    between must not look like one that died in its commit window (a sequence left out for nobody makes recovery
    report it missing and hold back everything after it)."""
    from reliability import redo

    path = tmp_path / "bank.db"
    owner = normal_bank(path)
    transfer(owner, "t-0", 1, 2, 5)
    transfer(owner, "t-1", 2, 3, 5)
    journal = owner._redo
    assert journal.solo_mine
    last = journal.seq
    real = redo.read_journal
    closed: list[bool] = []

    def read_then_owner_closes(p):
        state = real(p)
        if str(p) == str(journal.path) and not closed:
            closed.append(True)
            owner.close()  # its clean close, then its lock released: after this reader's look at the file
        return state

    monkeypatch.setattr(redo, "read_journal", read_then_owner_closes)
    got = redo._last_committed_alone(journal.base_path, journal.slot, 0, own=False, running=True)
    assert closed and got == last, (got, last)
