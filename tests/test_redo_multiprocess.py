"""Several processes on one database: every acknowledged write survives recovery (issue #15 items 0, 1; #17).

Real worker processes do bank transfers through ``run_in_transaction``; one is killed with SIGKILL; the
database is damaged for real; recovery must bring back every acknowledged transfer and keep the
invariant (the total of the balances). Journals cut short must be reported, never accepted as complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from redo_worker import ACCOUNTS, config

from reliability import DatabaseError, DatabaseManager
from reliability.redo import journal_files, read_journal

WORKER = str(Path(__file__).with_name("redo_worker.py"))
TOTAL = ACCOUNTS * 1000


def setup_bank(path: Path) -> DatabaseManager:
    db = DatabaseManager(config(str(path)))
    db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)")
    db.executemany("INSERT INTO accounts (id, balance) VALUES (?, 1000)", [(i,) for i in range(1, ACCOUNTS + 1)])
    return db


def spawn(path: Path, worker: int, count: int, acks: Path, kill_point: str | None = None) -> subprocess.Popen:
    args = [sys.executable, WORKER, "bank", str(path), str(worker), str(count), str(acks)]
    return subprocess.Popen(args + ([kill_point] if kill_point else []), stderr=subprocess.PIPE)


def acked(acks: Path) -> set[str]:
    if not acks.exists():
        return set()
    return {line for line in acks.read_text().splitlines() if line and not line.startswith("armed")}


def damage(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` in the closed database file (a real btree corruption)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 12 + os.urandom(300))


def check_bank(db: DatabaseManager, expected_ids: set[str]) -> None:
    (total,) = db.fetch_one("SELECT sum(balance) FROM accounts")
    ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
    assert total == TOTAL
    lost = expected_ids - ids
    assert not lost, f"{len(lost)} acknowledged transfers lost: {sorted(lost)[:10]}"
    # the balances are exactly the sum of the transfers that are present (nothing half-applied)
    net = dict.fromkeys(range(1, ACCOUNTS + 1), 1000)
    for _tid, src, dst, amount in db.fetch_all("SELECT id, src, dst, amount FROM transfers"):
        net[src] -= amount
        net[dst] += amount
    assert dict(db.fetch_all("SELECT id, balance FROM accounts")) == net


def transfer(db: DatabaseManager, tid: str, a: int, b: int, amount: int) -> None:
    def run() -> None:
        (ba,) = db.fetch_one("SELECT balance FROM accounts WHERE id = ?", (a,))
        (bb,) = db.fetch_one("SELECT balance FROM accounts WHERE id = ?", (b,))
        db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (ba - amount, a))
        db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (bb + amount, b))
        db.execute("INSERT INTO transfers (id, src, dst, amount) VALUES (?, ?, ?, ?)", (tid, a, b, amount))
    db.run_in_transaction(run)


def test_two_managers_on_one_file_both_survive_recovery(tmp_path):
    first = setup_bank(tmp_path / "bank.db")
    first.backup()
    second = DatabaseManager(config(str(tmp_path / "bank.db")))
    try:
        transfer(first, "first-1", 1, 2, 10)
        transfer(second, "second-1", 3, 4, 20)  # before the fix: not journaled, gone after recover()
        transfer(first, "first-2", 2, 3, 5)
        assert second.health().status == "healthy", second.health().reasons
        first.connections.close()
        second.connections.close()
        damage(tmp_path / "bank.db", "transfers")
        report = first.recover()
        assert report.ok and report.replayed == 3, report
        check_bank(first, {"first-1", "second-1", "first-2"})
    finally:
        second.close()
        first.close()


def test_worker_processes_killed_and_corrupted_lose_no_acknowledged_transfer(tmp_path):
    path = tmp_path / "bank.db"
    db = setup_bank(path)
    db.backup()
    acks = [tmp_path / f"acks-{w}" for w in range(5)]
    # worker 0 has more transfers than it can finish before the kill: on a fast disk 60 took under one poll
    workers = [spawn(path, 0, 1_000_000, acks[0])] + [spawn(path, w, 60, acks[w]) for w in (1, 2)]
    try:
        while len(acked(acks[0])) < 15 and workers[0].poll() is None:  # wait on progress, not on time
            with contextlib.suppress(subprocess.TimeoutExpired):
                workers[0].wait(timeout=0.05)
        assert workers[0].poll() is None, workers[0].stderr.read().decode() if workers[0].stderr else ""
        os.kill(workers[0].pid, signal.SIGKILL)  # kill -9 in the middle of its transfers
        assert workers[0].wait() == -signal.SIGKILL
        db.backup()  # a backup while the others keep writing: replay must continue from its sequence
        workers += [spawn(path, w, 30, acks[w]) for w in (3, 4)]  # processes that only write after it
        for w in workers[1:]:
            assert w.wait() == 0, w.stderr.read().decode() if w.stderr else ""
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    done = set().union(*(acked(a) for a in acks))
    assert len(done) >= 15 + 120 + 60
    for i in range(5):  # and this process keeps writing too
        transfer(db, f"main-{i}", 1 + i, 2 + i, 7)
    done |= {f"main-{i}" for i in range(5)}
    db.connections.close()
    damage(path, "transfers")
    with pytest.raises(DatabaseError):
        db.fetch_all("SELECT * FROM transfers")  # really damaged
    report = db.recover()
    assert report.ok, report
    check_bank(db, done)
    assert db.health().status == "healthy", db.health().reasons
    db.close()


def record_ends(path: Path) -> list[int]:
    """Byte offsets where each record of a journal file ends (the header block is 64 bytes)."""
    data = path.read_bytes()
    offset, ends = 64, []
    while offset + 12 <= len(data):
        length = struct.unpack_from("<I", data, offset)[0]
        offset += 12 + length
        ends.append(offset)
    return ends


@pytest.mark.parametrize("cut", ["half", "record_boundary"])
def test_a_journal_cut_short_after_corruption_is_reported_not_accepted(tmp_path, cut, caplog):
    path = tmp_path / "app.db"
    cfg = config(str(path)).replace(operation_log=True, operation_log_path=str(tmp_path / "ops.jsonl"),
                                    log_json=True)
    db = DatabaseManager(cfg)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    base = db.backup().last_seq
    assert base is not None
    for i in range(40):
        db.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
    db.close()
    journal = tmp_path / "app.db.redo"
    data = journal.read_bytes()
    if cut == "half":
        journal.write_bytes(data[:len(data) // 2])
    else:  # exactly after the 15th record (the header record is the first): 14 of 40 entries left
        journal.write_bytes(data[:record_ends(journal)[14]])
    kept = len(read_journal(journal).entries)
    assert 0 < kept < 40
    damage(path, "t")
    db = DatabaseManager(cfg)
    try:
        with caplog.at_level(logging.ERROR, "reliability"):
            report = db.recover()
        assert not report.ok
        missing = [p for p in report.problems if "missing from the redo journals" in p]
        assert missing and f"{40 - kept} committed transaction(s)" in missing[0], report.problems
        assert f"sequence {base + kept + 1}-{base + 40}" in missing[0]
        assert report.replayed == kept
        assert db.fetch_one("SELECT count(*) FROM t") == (kept,)
        health = db.health()
        assert health.status == "degraded" and any("missing from the redo journals" in r for r in health.reasons)
        assert any("missing from the redo journals" in r.getMessage() for r in caplog.records
                   if r.levelno >= logging.ERROR)
    finally:
        db.close()
    ops = (tmp_path / "ops.jsonl").read_text()
    assert '"kind": "recovery"' in ops and '"outcome": "incomplete"' in ops


def test_a_deleted_journal_is_still_reported(tmp_path):
    db = DatabaseManager(config(str(tmp_path / "app.db")))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.backup()
        db.execute("INSERT INTO t (v) VALUES ('x')")
        os.unlink(tmp_path / "app.db.redo")
        db.connections.close()
        damage(tmp_path / "app.db", "t")
        report = db.recover()
        assert not report.ok and any("missing or lost its header" in p for p in report.problems), report
    finally:
        db.close()


def test_a_failed_commit_gets_an_abort_marker_and_is_never_replayed(tmp_path):
    db = DatabaseManager(config(str(tmp_path / "app.db")))
    try:
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
        db.backup()
        with pytest.raises(DatabaseError) as info:  # a deferred foreign key fails at COMMIT itself
            with db.transaction():
                db.execute("INSERT INTO c (id, p) VALUES (1, 99)")
        assert info.value.kind == "constraint"
        state = read_journal(db.durability.redo.path)  # type: ignore[union-attr]
        assert len(state.aborted) == 1 and state.entries == []
        db.execute("INSERT INTO p (id) VALUES (1)")  # reuses the failed transaction's sequence
        assert [seq for seq, _ in read_journal(db.durability.redo.path).entries] == state.aborted  # type: ignore
        db.connections.close()
        damage(tmp_path / "app.db", "p")
        report = db.recover()
        assert report.ok, report
        assert db.fetch_all("SELECT id FROM p") == [(1,)] and db.fetch_all("SELECT * FROM c") == []
    finally:
        db.close()


@pytest.mark.parametrize("point", ["before_record", "between_flushes", "after_record", "after_commit"])
def test_kill_9_at_each_point_of_the_commit_path(tmp_path, point, caplog):
    path = tmp_path / "bank.db"
    main = setup_bank(path)  # holds slot 0 all along; the worker journals into slot 1
    main.backup()
    acks = tmp_path / "acks"
    worker = spawn(path, 1, 10, acks, point)
    assert worker.wait() == -signal.SIGKILL, worker.stderr.read().decode() if worker.stderr else ""
    done = acked(acks)
    assert len(done) == 10
    in_flight = "1-10"
    was_committed = in_flight in {r[0] for r in main.fetch_all("SELECT id FROM transfers")}
    # SQLite rolled the killed transaction back unless COMMIT had finished; between the flushes the
    # journal's fsync runs on the writer thread while COMMIT runs, so either outcome is possible there
    # (never acknowledged), but whichever it is, recovery must agree with it.
    if point != "between_flushes":
        assert was_committed == (point == "after_commit")
    transfer(main, "main-1", 5, 6, 3)  # the next transaction reuses an orphan's sequence
    expected = done | {"main-1"} | ({in_flight} if was_committed else set())
    # an unclean start: the dead worker's orphan record is marked aborted before anything else runs
    with caplog.at_level(logging.WARNING, "reliability.redo"):
        again = DatabaseManager(config(str(path)))  # takes over the dead worker's slot 1
    marked = [r for r in caplog.records if "never committed as aborted" in r.getMessage()]
    # a record written (fsynced or not: the page cache survives kill -9) that SQLite never committed
    assert bool(marked) == (point in ("between_flushes", "after_record") and not was_committed), marked
    try:
        transfer(again, "again-1", 7, 8, 4)
        expected.add("again-1")
        main.connections.close()
        again.connections.close()
        damage(path, "transfers")
        report = main.recover()
        assert report.ok, report
        check_bank(main, expected)
        ids = {r[0] for r in main.fetch_all("SELECT id FROM transfers")}
        assert (in_flight in ids) == was_committed  # the journal and the database never diverge
    finally:
        again.close()
        main.close()


def test_an_orphan_record_is_not_replayed_even_when_the_database_cannot_say(tmp_path):
    # The worker dies between its durable record and COMMIT; nobody restarts; the main process commits
    # the same sequence; the damaged database's header is gone so recovery cannot read which committed.
    path = tmp_path / "bank.db"
    main = setup_bank(path)
    main.backup()
    worker = spawn(path, 1, 3, tmp_path / "acks", "after_record")
    assert worker.wait() == -signal.SIGKILL
    transfer(main, "main-1", 1, 2, 3)
    slots = {slot: read_journal(p) for slot, p in journal_files(path.with_name("bank.db.redo"))}
    assert slots[1].entries[-1][0] == slots[0].entries[-1][0]  # two records with one sequence
    main.connections.close()
    with open(path, "r+b") as f:
        f.write(b"\x00" * 16)  # the header: nothing in the file can be read
    report = main.recover()
    assert report.ok, report
    check_bank(main, acked(tmp_path / "acks") | {"main-1"})
    assert main.fetch_one("SELECT count(*) FROM transfers WHERE id = '1-3'") == (0,)
    main.close()


def test_a_manager_without_a_journal_on_a_journaled_database_makes_recovery_refuse_ok(tmp_path):
    path = tmp_path / "bank.db"
    first = setup_bank(path)
    first.backup()
    off = DatabaseManager(config(str(path)).replace(redo_journal=False))
    try:
        transfer(first, "first-1", 1, 2, 10)
        transfer(off, "off-1", 3, 4, 20)  # acknowledged, but no journal holds it
        first.connections.close()
        off.connections.close()
        damage(path, "transfers")
        report = first.recover()
        assert not report.ok
        assert any("redo_journal=false" in p and "did not close" in p for p in report.problems), report.problems
        check_bank(first, {"first-1"})  # what the journals hold is back; the rest is reported, not hidden
    finally:
        off.close()
        first.close()


def test_a_closed_manager_without_a_journal_is_covered_by_a_later_backup(tmp_path):
    path = tmp_path / "bank.db"
    first = setup_bank(path)
    with DatabaseManager(config(str(path)).replace(redo_journal=False)) as off:
        transfer(off, "off-1", 3, 4, 20)
    transfer(first, "first-1", 1, 2, 10)
    first.backup()  # holds off-1: the closed writer's writes are all before it
    transfer(first, "first-2", 2, 3, 5)
    first.connections.close()
    damage(path, "transfers")
    report = first.recover()
    assert report.ok, report
    check_bank(first, {"off-1", "first-1", "first-2"})
    first.close()


def test_an_unclean_start_reconciles_every_dead_journal_not_only_the_slot_it_takes(tmp_path, caplog):
    path = tmp_path / "bank.db"
    main = setup_bank(path)  # slot 0
    main.backup()
    holder = DatabaseManager(config(str(path)))  # slot 1, so the worker gets slot 2
    acks = tmp_path / "acks"
    worker = spawn(path, 2, 5, acks, "after_record")  # killed between its durable record and COMMIT
    assert worker.wait() == -signal.SIGKILL
    assert read_journal(path.with_name("bank.db.redo.2")).entries  # the orphan is there
    holder.close()  # slot 1 is free again, closed cleanly
    with caplog.at_level(logging.WARNING, "reliability.redo"):
        again = DatabaseManager(config(str(path)))  # takes slot 1; slot 2's owner is gone
    assert again.durability.redo.slot == 1  # type: ignore[union-attr]
    marked = [r.getMessage() for r in caplog.records if "never committed as aborted" in r.getMessage()]
    assert len(marked) == 1 and "bank.db.redo.2" in marked[0], marked
    assert len(read_journal(path.with_name("bank.db.redo.2")).aborted) == 1  # marked in place, before anything ran
    try:
        transfer(main, "main-1", 1, 2, 3)  # reuses the orphan's sequence
        main.connections.close()
        again.connections.close()
        with open(path, "r+b") as f:
            f.write(b"\x00" * 16)  # the database can no longer say which record committed
        report = main.recover()
        assert report.ok, report
        check_bank(main, acked(acks) | {"main-1"})
        assert main.fetch_one("SELECT count(*) FROM transfers WHERE id = '2-5'") == (0,)
    finally:
        again.close()
        main.close()


def test_a_failed_commit_as_the_last_transaction_is_not_reported_missing(tmp_path):
    db = DatabaseManager(config(str(tmp_path / "app.db")))
    try:
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
        db.backup()
        db.execute("INSERT INTO p (id) VALUES (1)")
        with pytest.raises(DatabaseError):
            with db.transaction():
                db.execute("INSERT INTO c (id, p) VALUES (1, 99)")  # fails at COMMIT: its sequence never exists
        db.connections.close()
        damage(tmp_path / "app.db", "p")
        report = db.recover()  # nothing acknowledged is missing, so nothing may be reported missing
        assert report.ok and report.replayed == 1, report
        assert db.fetch_all("SELECT id FROM p") == [(1,)] and db.fetch_all("SELECT * FROM c") == []
    finally:
        db.close()
