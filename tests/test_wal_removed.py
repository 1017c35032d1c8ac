"""A ``-wal`` removed on its own while rows committed in it were not yet checkpointed (issue #15).

SQLite says nothing either way (checked here for real): with no connection open the database opens
as of the last checkpoint, integrity ``ok``, every later commit gone; with a connection open that
connection keeps using the unlinked WAL while every other one sees the old state or a disk I/O error.
At a restart the runtime finds the loss in the redo journals, refuses the database naming the missing
sequences, and recovery brings every acknowledged write back; never silently. (A -wal removed under running
managers: tests/test_wal_removed_live.py.)
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redo_worker import ACCOUNTS
from redo_worker import config as worker_config

from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind
from reliability.redo import journal_files, read_committed, read_journal, slot_path

BANK_WORKER = str(Path(__file__).with_name("redo_worker.py"))


def _bank(path: Path) -> None:
    with DatabaseManager(worker_config(str(path))) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("CREATE TABLE transfers (id TEXT PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)")
        db.executemany("INSERT INTO accounts (id, balance) VALUES (?, 1000)", [(i,) for i in range(1, ACCOUNTS + 1)])
        db.backup()


def _acked(acks: Path) -> set[str]:
    return {ln for ln in acks.read_text().splitlines() if ln and not ln.startswith("armed")}


def _transfers(path: Path) -> tuple[set[str], int]:
    conn = sqlite3.connect(path)
    try:
        ids = {r[0] for r in conn.execute("SELECT id FROM transfers")}
        (total,) = conn.execute("SELECT sum(balance) FROM accounts").fetchone()
    finally:
        conn.close()
    return ids, total


def _crash_after_writes(tmp_path: Path, count: int = 20) -> tuple[Path, set[str]]:
    """A worker process acknowledges ``count`` transfers and is killed -9 in the next one (after its COMMIT):
    nothing checkpoints, the rows stay in the -wal."""
    path = tmp_path / "bank.db"
    _bank(path)
    acks = tmp_path / "acks"
    done = subprocess.run([sys.executable, BANK_WORKER, "bank", str(path), "1", str(count), str(acks), "after_commit"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert os.path.getsize(f"{path}-wal") > 0
    return path, _acked(acks)


@pytest.mark.parametrize("shm", ["kept", "removed"])
def test_a_wal_removed_after_a_crash_is_found_at_restart_and_recovery_brings_every_write_back(tmp_path, shm):
    path, acked = _crash_after_writes(tmp_path)
    os.unlink(f"{path}-wal")
    if shm == "removed":
        os.unlink(f"{path}-shm")
    assert _transfers(path)[0] == set()  # what SQLite alone gives: the file as of the last checkpoint, silently
    db = DatabaseManager(worker_config(str(path)))  # auto_recover=False
    try:
        with pytest.raises(DatabaseError) as caught:
            db.fetch_all("SELECT id FROM transfers")
        assert caught.value.kind is ErrorKind.UNAVAILABLE
        assert "committed transaction(s)" in caught.value.detail and "sequence" in caught.value.detail
        health = db.health()
        assert str(health.status) == "unavailable" and any("-wal was removed" in r for r in health.reasons)
        with pytest.raises(DatabaseError):
            db.execute("INSERT INTO transfers (id, src, dst, amount) VALUES ('new', 1, 1, 0)")
        report = db.recover()
        assert report.ok, report.problems
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert acked <= ids and len(acked) == 20
        assert str(db.health().status) == "healthy"
    finally:
        db.close()
    ids, total = _transfers(path)
    assert acked <= ids and total == ACCOUNTS * 1000


def test_with_auto_recover_a_wal_removed_after_a_crash_is_recovered_at_startup(tmp_path):
    path, acked = _crash_after_writes(tmp_path)
    os.unlink(f"{path}-wal")
    with DatabaseManager(worker_config(str(path)).replace(auto_recover=True)) as db:
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert acked <= ids
        assert db.monitor.recoveries == 1 and db.monitor.last_recovery["ok"]
        assert str(db.health().status) == "healthy"


def test_a_crash_without_a_removed_wal_is_no_incident(tmp_path):
    """The detection does not fire on a plain crash: the WAL is replayed by SQLite, nothing is missing."""
    path, acked = _crash_after_writes(tmp_path)
    with DatabaseManager(worker_config(str(path))) as db:
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert acked <= ids
        assert db.connections.refused is None and str(db.health().status) == "healthy"


# -- the last record of a stopped journal after commits the database lost (issue #15 leftover) ----------------
# A process writes its next journal record only after the previous COMMIT finished, so only the last record of
# a journal whose process died can be an orphan (a crash between the record and COMMIT). When the database
# provably lost commits before it, that last record may just as well be the process's last acknowledged commit.

def _spawn(path: Path, worker: int, count: int, acks: Path, kill_point: str,
           go: Path | None = None, *, marks: bool = True, sync: str | None = None) -> subprocess.Popen:
    """A bank worker; ``marks=False``: it writes its journal as before committed marks existed."""
    env = dict(os.environ)
    env.update({"REDO_WORKER_GO": str(go)} if go is not None else {})
    env.update({} if marks else {"REDO_WORKER_MARKS": "off"})
    env.update({"REDO_WORKER_SYNC": sync} if sync else {})
    return subprocess.Popen([sys.executable, BANK_WORKER, "bank", str(path), str(worker), str(count), str(acks),
                             kill_point], stderr=subprocess.PIPE, env=env)


def _killed(proc: subprocess.Popen) -> None:
    assert proc.wait(timeout=120) == -9, proc.stderr.read().decode()[-2000:] if proc.stderr else ""


def _journal_of(path: Path, tid: str) -> tuple[int, list[int]]:
    """The journal slot whose records hold transfer ``tid``, and that file's live sequences."""
    for slot, file in journal_files(f"{path}.redo"):
        state = read_journal(file)
        if any(tid in params for _seq, ops in state.entries for _sql, params, _many in ops):
            return slot, [seq for seq, _ops in state.entries]
    raise AssertionError(f"no journal holds {tid}")


def _marks(file: Path) -> set[int]:
    """The sequences of ``file`` whose record carries its committed mark.

    (Read with getattr: these tests are also run on the runtime before marks, where they must fail on what it
    does, not on this attribute; a runtime without marks wrote none.)
    """
    return set(getattr(read_journal(file), "marked", set()))


def _refused(db: DatabaseManager) -> str:
    with pytest.raises(DatabaseError) as caught:
        db.fetch_all("SELECT id FROM transfers")
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    return caught.value.detail


def _wait_ready(proc: subprocess.Popen, go: Path) -> None:
    for _ in range(6000):
        if Path(f"{go}.ready").exists() or proc.poll() is not None:
            break
        time.sleep(0.01)
    assert Path(f"{go}.ready").exists(), proc.stderr.read().decode()[-2000:] if proc.stderr else ""


def _damage(path: Path) -> None:
    """Overwrite the root page of ``transfers`` in the closed database file (the writers table stays readable)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'transfers'").fetchone()[0]
    finally:
        conn.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 12 + os.urandom(300))


@pytest.mark.parametrize("marks", ["marked", "old_journal"])
@pytest.mark.parametrize("recovering", ["in_the_worker_slot", "in_another_slot"])
def test_the_acknowledged_last_transfer_of_a_killed_worker_is_not_taken_for_an_orphan(tmp_path, recovering, marks,
                                                                                      caplog):
    """Killed -9 right after its 5th acknowledged transfer, its -wal removed: the 5th record is its file's last.

    The manager that recovers takes the worker's slot, or (another worker, idle, held slot 0 and was killed
    too) the idle one's. The 5th record carries its committed mark (counted as surely committed), or the
    journal was written without marks (an older version: it may have committed, named apart)."""
    old = marks == "old_journal"
    path = tmp_path / "bank.db"
    _bank(path)
    acks = tmp_path / "acks"
    idle = None
    if recovering == "in_another_slot":
        idle = _spawn(path, 3, 0, tmp_path / "idle-acks", "before_record", go=tmp_path / "go", marks=not old)
        _wait_ready(idle, tmp_path / "go")
    _killed(_spawn(path, 1, 5, acks, "before_record", marks=not old))  # dies in the 6th, before writing its record
    if idle is not None:
        idle.kill()
        _killed(idle)
    acked = _acked(acks)
    assert len(acked) == 5
    slot, seqs = _journal_of(path, "1-4")
    last = seqs[-1]
    assert _marks(slot_path(f"{path}.redo", slot)) == (set() if old else set(seqs))
    os.unlink(f"{path}-wal")
    assert _transfers(path)[0] == set()
    db = DatabaseManager(worker_config(str(path)))
    try:
        assert (db.durability.redo.slot == slot) == (recovering == "in_the_worker_slot")  # type: ignore[union-attr]
        detail, reasons = _refused(db), db.health().reasons
        with caplog.at_level(logging.WARNING, "reliability.recovery"):
            report = db.recover()
        # replayed: if it never committed its process died before anyone was told, so either outcome is allowed
        assert {r[0] for r in db.fetch_all("SELECT id FROM transfers")} == acked
        assert report.ok and report.replayed == 5, report
        if not old:  # its mark says it committed: lost with the others, nothing in doubt
            assert "missing 5 committed transaction(s)" in detail and "may be missing" not in detail, detail
            assert not any("may be missing" in r for r in reasons), reasons
            assert not any("replaying sequence" in r.getMessage() for r in caplog.records)
            return
        # four surely committed, the fifth named apart: it may never have committed, but it may be acknowledged
        assert "missing 4 committed transaction(s)" in detail, detail
        assert f"sequence {last} of journal slot {slot} may be missing too" in detail, detail
        assert any(f"sequence {last} of journal slot {slot} may be missing too" in r for r in reasons), reasons
        assert any(f"replaying sequence {last} of journal slot {slot}" in r.getMessage() for r in caplog.records)
    finally:
        db.close()
    ids, total = _transfers(path)
    assert ids == acked and total == ACCOUNTS * 1000


def test_a_genuine_orphan_is_neither_reported_nor_replayed(tmp_path):
    """Killed between its durable record and COMMIT, no -wal removed: the last record is an orphan, as before."""
    path = tmp_path / "bank.db"
    _bank(path)
    main = DatabaseManager(worker_config(str(path)))  # running all along: the orphan is still unmarked at recovery
    try:
        acks = tmp_path / "acks"
        _killed(_spawn(path, 1, 5, acks, "after_record"))
        acked = _acked(acks)
        slot, seqs = _journal_of(path, "1-5")  # the orphan's record is there, its file's last
        assert len(acked) == 5 and "1-5" not in acked and len(seqs) >= 6
        main.connections.close()
        _damage(path)
        report = main.recover()
        assert report.ok and report.replayed == 5, report
        ids = {r[0] for r in main.fetch_all("SELECT id FROM transfers")}
        assert ids == acked  # the orphan is not replayed
        with DatabaseManager(worker_config(str(path))) as again:  # and at a start, nothing is reported
            assert again.connections.refused is None
            assert again.fetch_one("SELECT count(*) FROM transfers WHERE id = '1-5'") == (0,)
            assert str(again.health().status) == "healthy", again.health().reasons
    finally:
        main.close()
    ids, total = _transfers(path)
    assert ids == acked and total == ACCOUNTS * 1000


def _orphan_then_reuse(tmp_path: Path, reuser_count: int, slot_zero: str,
                       marks: bool = True) -> tuple[Path, set[str], tuple[int, int], tuple[int, int]]:
    """Both workers open (``slot_zero`` takes slot 0: the one a manager opened next inherits); worker 1 makes 5
    transfers and dies between the record of its 6th and COMMIT; worker 2, running all along (nobody marks the
    orphan), makes ``reuser_count`` transfers, the first reusing the orphan's sequence, and is killed -9 right
    after the last ack; then the -wal is removed. Returns the database, the acknowledged transfers, and
    (slot, sequence) of the orphan and of worker 2's last record."""
    path = tmp_path / "bank.db"
    _bank(path)
    acks = tmp_path / "acks"
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in ("orphan", "reuser") if slot_zero == "orphan" else ("reuser", "orphan"):
            go = tmp_path / f"go-{name}"
            procs[name] = (_spawn(path, 1, 5, acks, "after_record", go=go, marks=marks) if name == "orphan"
                           else _spawn(path, 2, reuser_count, acks, "before_record", go=go, marks=marks))
            _wait_ready(procs[name], go)
        (tmp_path / "go-orphan").touch()
        _killed(procs["orphan"])
        (tmp_path / "go-reuser").touch()
        _killed(procs["reuser"])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    acked = _acked(acks)
    assert len(acked) == 5 + reuser_count and "1-5" not in acked
    orphan_slot, orphan_seqs = _journal_of(path, "1-5")
    reuser_slot, reuser_seqs = _journal_of(path, "2-0")
    assert orphan_seqs[-1] in reuser_seqs  # the sequence was reused
    assert (orphan_slot if slot_zero == "orphan" else reuser_slot) == 0
    os.unlink(f"{path}-wal")
    return path, acked, (orphan_slot, orphan_seqs[-1]), (reuser_slot, reuser_seqs[-1])


@pytest.mark.parametrize("marks", ["marked", "old_journal"])
@pytest.mark.parametrize("slot_zero", ["orphan", "reuser"])
def test_an_orphan_whose_sequence_another_worker_reused_is_neither_reported_nor_replayed(tmp_path, slot_zero, marks):
    old = marks == "old_journal"
    path, acked, (orphan_slot, orphan_seq), (slot, last) = _orphan_then_reuse(tmp_path, 3, slot_zero, not old)
    # the decision itself, on the files as the crash left them: the reused sequence makes the orphan one
    # (worker 2's later records alone would make it look committed); worker 2's last is committed by its mark
    from reliability.redo import LAST_COMMITTED, LAST_ORPHAN, LAST_UNSURE, last_record_verdict, read_journals
    journals, committed = read_journals(f"{path}.redo"), read_committed(path)
    assert last_record_verdict(orphan_slot, journals, committed) == LAST_ORPHAN
    assert last_record_verdict(slot, journals, committed) == (LAST_UNSURE if old else LAST_COMMITTED)
    db = DatabaseManager(worker_config(str(path)))  # takes slot 0, the dead worker's file as it was
    try:
        assert db.durability.redo.slot == 0  # type: ignore[union-attr]
        detail = _refused(db)
        report = db.recover()
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert ids == acked  # every acknowledged transfer, worker 2's last included; never the orphan
        assert report.ok and report.replayed == 8, report
        # worker 1's five, worker 2's first two (the orphan's sequence among them, counted once); worker 2's
        # last apart (with its mark: with them); the orphan's record is named nowhere
        if old:
            assert "missing 7 committed transaction(s)" in detail, detail
            assert f"sequence {last} of journal slot {slot} may be missing too" in detail, detail
        else:
            assert "missing 8 committed transaction(s)" in detail and "may be missing" not in detail, detail
        assert f"of journal slot {orphan_slot} may be missing" not in detail, detail
        assert orphan_seq < last
    finally:
        db.close()
    assert _transfers(path)[1] == ACCOUNTS * 1000


@pytest.mark.parametrize("slot_zero", ["orphan", "reuser"])
def test_two_last_records_of_one_sequence_after_lost_commits_are_told_apart_by_the_mark(tmp_path, slot_zero):
    """Worker 2's only transfer reuses the orphan's sequence and is its file's last: its committed mark says
    which of the two records committed (the database lost commits before them); the orphan has none."""
    path, acked, (orphan_slot, seq), (slot, last) = _orphan_then_reuse(tmp_path, 1, slot_zero)
    assert seq == last
    db = DatabaseManager(worker_config(str(path)))
    try:
        detail = _refused(db)
        report = db.recover()
        assert {r[0] for r in db.fetch_all("SELECT id FROM transfers")} == acked  # worker 2's "2-0" included
        assert report.ok and report.replayed == 6, report
        assert "missing 6 committed transaction(s)" in detail and "may be missing" not in detail, detail
    finally:
        db.close()
    assert _transfers(path)[1] == ACCOUNTS * 1000


@pytest.mark.parametrize("slot_zero", ["orphan", "reuser"])
def test_two_last_records_of_one_sequence_in_old_journals_are_reported_not_guessed(tmp_path, slot_zero):
    """The same with journals written without marks (an older version): one of the two records committed,
    which one cannot be told from the files."""
    path, acked, (orphan_slot, seq), (slot, last) = _orphan_then_reuse(tmp_path, 1, slot_zero, marks=False)
    assert seq == last
    db = DatabaseManager(worker_config(str(path)))
    try:
        detail = _refused(db)
        report = db.recover()
        ids = {r[0] for r in db.fetch_all("SELECT id FROM transfers")}
        assert ids == acked - {"2-0"}  # worker 1's five are back; the one that cannot be told is reported
        assert not report.ok, report
        assert any(f"sequence {seq} has 2 candidate records" in p for p in report.problems), report.problems
        assert any(f"1 committed transaction(s) are missing from the redo journals (sequence {seq};" in p
                   for p in report.problems), report.problems
        assert "missing 5 committed transaction(s)" in detail, detail
        assert (f"sequence {seq} of journal slot {min(slot, orphan_slot)} or {max(slot, orphan_slot)} (two records "
                "of one sequence") in detail, detail
    finally:
        db.close()


# -- the committed mark: the lone last record past the database (issue #15 leftover) ---------------------------
# A record followed by its committed mark committed (written after COMMIT, before the ack); one without it was
# never acknowledged. Before marks a lone last record past the database (nothing else lost) was taken for an
# orphan: a worker's only transfer after the last checkpoint, lost with its -wal, was gone and recovery said ok.

def _only_transfer(tmp_path: Path, kill_point: str, sync: str | None = None) -> tuple[Path, set[str], Path]:
    """A worker whose only journaled transfer comes after the last checkpoint (the bank's setup) is killed -9 at
    ``kill_point`` of it (``before_record``: in the next transfer, i.e. right after its ack). At ``sync=NORMAL``
    another manager (idle, killed too) holds the claim to commit alone, so the worker writes its record before
    COMMIT. Returns the database, the acknowledged transfers and the worker's journal file."""
    path = tmp_path / "bank.db"
    _bank(path)
    acks = tmp_path / "acks"
    idle = None
    if sync == "NORMAL":
        idle = _spawn(path, 3, 0, tmp_path / "idle-acks", "before_record", go=tmp_path / "go", sync=sync)
        _wait_ready(idle, tmp_path / "go")
    try:
        _killed(_spawn(path, 1, 1 if kill_point == "before_record" else 0, acks, kill_point, sync=sync))
    finally:
        if idle is not None:
            idle.kill()
            _killed(idle)
    slot, _seqs = _journal_of(path, "1-0")
    file = slot_path(f"{path}.redo", slot)
    state = read_journal(file)
    assert len(state.entries) == 1 and not state.alone and not state.problems  # one record, before its COMMIT
    if os.path.exists(f"{path}-wal"):
        os.unlink(f"{path}-wal")
    assert _transfers(path)[0] == set()  # the database lost it (or never had it)
    return path, _acked(acks), file


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_the_only_acknowledged_transfer_lost_with_its_wal_is_brought_back(tmp_path, sync):
    path, acked, file = _only_transfer(tmp_path, "before_record", sync)
    assert acked == {"1-0"}
    marked, (seq, _ops) = _marks(file), read_journal(file).entries[-1]
    db = DatabaseManager(worker_config(str(path)))
    try:
        detail = _refused(db)  # (before marks: served as it is, the transfer silently gone)
        assert "missing 1 committed transaction(s)" in detail and "may be missing" not in detail, detail
        report = db.recover()
        assert report.ok and report.replayed == 1, report
        assert {r[0] for r in db.fetch_all("SELECT id FROM transfers")} == acked
    finally:
        db.close()
    ids, total = _transfers(path)
    assert ids == acked and total == ACCOUNTS * 1000
    assert marked == {seq}  # its committed mark (read before the recovery re-anchored the file)


@pytest.mark.parametrize("point", ["after_record", "before_mark"])
def test_a_lone_last_record_without_its_mark_is_an_orphan(tmp_path, point):
    """Killed between the record and COMMIT (``after_record``), or after COMMIT before the mark
    (``before_mark``: committed, never acknowledged): the last record has no mark, nothing else was lost, so
    it is taken for an orphan, as before marks: not reported, not replayed. For ``before_mark`` that drops a
    committed transaction nobody was told of (the crash landing before its COMMIT: a state that could have
    existed); replaying it would be allowed too."""
    path, acked, file = _only_transfer(tmp_path, point)
    assert acked == set() and _marks(file) == set()
    with DatabaseManager(worker_config(str(path))) as db:
        assert db.connections.refused is None
        report = db.recover()
        assert report.ok and report.replayed == 0, report
        assert db.fetch_all("SELECT id FROM transfers") == []
        assert str(db.health().status) == "healthy", db.health().reasons
    assert _transfers(path) == (set(), ACCOUNTS * 1000)
