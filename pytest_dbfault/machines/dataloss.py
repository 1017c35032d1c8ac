"""The data-loss classes of issue #15 as machine rules: no acknowledged write is lost silently.

Several writers share one database: the machine's runtime, a second manager on the same file
(in this process: its own connection, journal slot and retry policy) and short-lived worker
*processes* (real subprocesses, one ``DatabaseManager`` each, some killed with SIGKILL in the
middle of a commit). Every write is a bank transfer (two balances and one row in ``xfer``), so
beyond "every acknowledged transfer is there" the *transfer invariant* is checked: the balances
are exactly the opening balances plus the transfers present (nothing half-applied, the total
unchanged). Each rule makes one class of the issue's defects happen for real, with the faults of
:mod:`pytest_dbfault.faults` (through the registry), and judges what the runtime reports:

* ``corrupt_and_recover`` — (a) several writers, then real damage and ``recover()`` by one of
  them: every acknowledged write of every writer is back and ``ok`` is True; (b) the same with a
  redo journal cut to half its length, exactly at a record boundary, or deleted: recovery is never
  ``ok`` while an acknowledged write is missing, says how many transactions it could not restore
  (at least the number actually lost) and the recovering manager is not ``healthy`` afterwards;
* ``delete_database`` — (c) the database file deleted under the running runtime (or while it was
  stopped, then started with ``auto_recover=false``): health is not ``healthy`` while it is gone, a
  write acknowledged meanwhile is not lost, and ``recover()`` brings every acknowledged write back
  (reads may serve the open file for up to the runtime's identity-check interval, so they are not judged);
* ``replace_and_heal`` — (d) the database replaced by another file (its ``-wal`` moved away with it)
  and put back after the runtime reopened the stand-in: every row committed in the original's
  WAL is still there, on disk and through the runtime; with a second manager open, a worker process
  and then the second manager write to the original too and it stays sound (``quick_check``). After the
  runtime reopened the original, and after a second manager started, another process must not be able to
  take the database EXCLUSIVE (:meth:`~DataLossMachine.check_locks_kept`): a dropped POSIX lock of this
  process is caught on every SQLite build, not only where its damage shows;
* ``remove_wal`` — (f) the ``-wal`` removed on its own after a crash, while rows committed in it were
  not yet checkpointed, then a restart: a manager that says ``healthy`` serves every acknowledged
  transfer, and otherwise ``recover()`` brings every one back;
* ``remove_wal_live`` — (g) the ``-wal`` (or the ``-wal`` and the ``-shm``) removed while the managers of this
  process and a paused worker process have the database open (the registry's ``disconnect_remove_wal[_shm]``),
  then one of them, a new worker process or a restart acts first: a manager that says ``healthy`` serves every
  acknowledged transfer, one that does not says why and ``recover()`` brings every one back, and afterwards
  another process reads every acknowledged transfer (one of this process shares the managers' WAL index);
* ``another_application_opens_after_removal`` — (g) with the ``-shm`` removed too and the tables only in the removed
  WAL, another application opens the database first: recovery in this process (whose connections read through the
  removed WAL's index) still brings every acknowledged transfer back, seen by another process too;
* ``transient_in_maintenance`` — (e) a lock held by another connection, or a one-off I/O error of
  the VFS shim, while recovery verifies a backup, while an integrity check runs or while a backup is
  taken: it is retried or reported as an error, never a verdict (no sound backup marked unverified,
  no sound database marked damaged).

Rules in which another live process acts at the same moment as this one (no fault in force: the other
process is the condition):

* ``queue_from_another_process`` — another process appends writes to the shared durable write queue while
  this runtime replays it over and over: every write acknowledged as queued is applied exactly once (none
  lost to a compaction, none set aside as applied twice) and the runtime's count of waiting writes is the
  file's (P14);
* ``temps_of_a_live_process`` — a manager starts while another live process has a temporary named as the
  runtime names them (older than the leftover age), beside a young one of a process that is gone and a
  name that is no temporary: its sweep leaves all three (P13, P11 for the damage marker's);
* ``solo_writer_process`` — a writer process at synchronous NORMAL commits alone and is killed -9 between
  a COMMIT and its record; this process's managers write on, then damage and recovery (judged as (a)):
  never ``ok`` unless every acknowledged transfer is back and the balances add up. Whenever every manager of
  this process closed, another process finds the claim to commit alone free (:meth:`~DataLossMachine.check_claim_free`).

Checks are P13 (no acknowledged write lost; recovery honest), P10 (health) P11 (integrity
verdicts), P12 (backup verdicts) and P14 (queued writes), labelled with the faults in force (``journal_cut``,
``worker_killed`` join the fault kinds when they happened).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import time
import zlib
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ..faults import FaultError, make_fault
from ..stats import NO_FAULT, STATS
from .base import RuntimeMachine
from .loss_report import disagreements, loss_statements, reported_loss
from .served import run_script, start_script

ACCOUNTS = 5
OPENING = 100
ACCT_TABLE = "CREATE TABLE IF NOT EXISTS acct (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"
XFER_TABLE = ("CREATE TABLE IF NOT EXISTS xfer (id TEXT PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL, "
              "amount INTEGER NOT NULL)")
#: Worker processes per example: a real process costs ~0.5 s (interpreter, runtime, anchoring backup).
MAX_PROCESSES = 1
#: Share of examples that start a worker process (drawn from the example's Hypothesis-seeded random).
PROCESS_SHARE = 0.35
#: Where a SIGKILLed worker dies (see WORKER): after its journal record (never committed) or after COMMIT (never acked).
KILL_POINTS = (None, "after_record", "after_commit")
#: (``solo_writer_process``'s worker dies at ``in_window``: committing alone at NORMAL, after its COMMIT and before
#: its record; a worker that does not commit alone is not killed there. ``write_in_a_live_commit_window``'s worker
#: stops there instead (``stop_in_window``, SIGSTOP) until this process continues it.)
#: How long the worker stays stopped in its commit window while this process writes (s).
WINDOW_STOP = 0.2
#: Where ``remove_wal``'s worker dies: after its COMMIT, or after its record and before COMMIT twice as often (a
#: targeted weight, session 29: only there, at synchronous FULL/EXTRA, does its last record stay in doubt, and a
#: refusal that left it out passed one default run in four).
KILLS_BEFORE_REMOVED_WAL = ("after_commit", "after_record", "after_record")
JOURNAL_CUTS = ("none", "half", "boundary", "delete")
CORRUPTIONS = ("btree", "header", "truncate")
#: What acts first after a -wal was removed under the live writers (``remove_wal_live``): a manager writes, reads
#: or asks for health, the second manager writes, a new worker process starts, the paused worker goes on or is
#: killed -9, or the service restarts (every manager closed and opened again).
#: ``foreign_write``: another application (plain SQLite, another process) writes first: with the ``-shm`` removed
#: too, on the database as of the last checkpoint (a split history).
AFTER_REMOVAL = ("write", "read", "health", "peer_write", "newcomer", "worker_goes_on", "worker_killed", "restart",
                 "foreign_write")
#: Held out of the draw while the runtime fails them (tests/machines/test_dataloss_bite.py keeps each as a strict
#: xfail, so a fix shows). Empty: ``foreign_write`` was held until recovery could fence writers out from a process
#: of its own when this one reads through a removed WAL's index (reliability/durability/outside_fence.py).
HELD_AFTER_REMOVAL: tuple[str, ...] = ()
#: The draw of ``remove_wal_live``'s ``first``: a newcomer twice as often as the rest (a targeted weight, session 28).
#: With the ``-shm`` removed it is the only actor that meets the removed index from another process's runtime (it
#: must be refused, or it builds a second index and commits into a history the managers here never see: planted bug
#: ``s27_c_second_index_outside_wal``), and one default run draws the rule about five times.
#: ``foreign_write`` three times as often (session 29): with the ``-shm`` removed too it is the split history, the one
#: draw where closing the managers' handle on the removed WAL as the file's last writes its old frames over another
#: application's commit (planted bug ``s28_d_removed_wal_handle_counts_itself``). Drawn with the ``-shm`` removed in one
#: call of the rule in 22, it met none of seven default runs; with this weight and ``count`` leaning it toward the
#: removed ``-shm`` (see the rule), about one call in five. It runs one plain-SQLite script (no worker process).
FIRST_DRAWN = tuple(a for a in (*AFTER_REMOVAL, "newcomer", "foreign_write", "foreign_write")
                    if a not in HELD_AFTER_REMOVAL)

#: A worker process: ``python -c WORKER DB PREFIX COUNT KILL SYNCHRONOUS MODULE [HOW]``. It prints ``ack ID SRC DST
#: AMOUNT`` after each acknowledged transfer and ``armed ID`` before the one it will be killed in. ``HOW``
#: (``remove_wal_live``): ``tolerant`` — a refusal is an answer, not a failure: a manager that cannot start prints
#: ``refused KIND``, a transfer that fails prints ``error ID KIND`` (its outcome unknown) and ends the run, exit 0;
#: ``pause`` — tolerant, and after COUNT transfers it prints ``paused`` and waits, its manager open, for a line
#: ``go N`` on stdin (N more transfers) or the end of its input.
WORKER = r"""
import os, random, signal, sys
from reliability import DatabaseError, DatabaseManager, ReliabilityConfig
from reliability import redo
db_path, prefix, count, kill, sync, module = sys.argv[1:7]
how = sys.argv[7] if len(sys.argv) > 7 else ""
cfg = ReliabilityConfig(db_path=db_path, backup_interval=0, quick_check_interval=0, integrity_check_interval=0,
                        health_check_interval=0, config_reload_interval=0, busy_timeout_ms=5000, retry_attempts=8,
                        retry_base_delay=0.005, retry_max_delay=0.05, retry_budget=30.0, auto_recover=False,
                        synchronous=sync, sqlite_module=module)
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def arm(point):
    if point == "after_record":
        original = redo.RedoJournal.write_record
        def write_then_die(self, seq, **kw):
            original(self, seq, **kw)
            redo._datasync(self._fd)
            die()
        redo.RedoJournal.write_record = write_then_die
    elif point == "in_window":  # committing alone: after its COMMIT, before its record (see redo.py)
        original = redo.RedoJournal.write_record
        def die_if_alone(self, seq, **kw):
            if kw.get("alone"):
                die()
            return original(self, seq, **kw)
        redo.RedoJournal.write_record = die_if_alone
    elif point == "stop_in_window":  # committing alone, in the same window: stopped (SIGSTOP) until continued
        original = redo.RedoJournal.write_record
        def stop_if_alone(self, seq, **kw):
            if kw.get("alone"):
                redo.RedoJournal.write_record = original
                print("window", seq, flush=True)
                os.kill(os.getpid(), signal.SIGSTOP)
            return original(self, seq, **kw)
        redo.RedoJournal.write_record = stop_if_alone
    else:
        redo.RedoJournal.committed = lambda self, seq: die()
rng = random.Random(prefix)
def run(db):
    def transfer(tid, a, b, amount):
        (ba,) = db.fetch_one("SELECT balance FROM acct WHERE id = ?", (a,))
        (bb,) = db.fetch_one("SELECT balance FROM acct WHERE id = ?", (b,))
        db.execute("UPDATE acct SET balance = ? WHERE id = ?", (ba - amount, a))
        db.execute("UPDATE acct SET balance = ? WHERE id = ?", (bb + amount, b))
        db.execute("INSERT INTO xfer (id, src, dst, amount) VALUES (?, ?, ?, ?)", (tid, a, b, amount))
    n = int(count)
    i = 0
    while True:
        if i == n and how == "pause":
            print("paused", flush=True)
            words = sys.stdin.readline().split()
            if words[:1] != ["go"]:
                return
            n += int(words[1])
        if i >= n + (1 if kill else 0):
            return
        tid = f"{prefix}-{i}"
        i += 1
        a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
        amount = rng.randint(1, 30)
        if kill and i == n + 1:
            print("armed", tid, flush=True)
            arm(kill)
        try:
            db.run_in_transaction(transfer, tid, a, b, amount)
        except DatabaseError as exc:
            if not how:
                raise
            print("error", tid, exc.kind, flush=True)
            return
        print("ack", tid, a, b, amount, flush=True)
try:
    db = DatabaseManager(cfg)
except DatabaseError as exc:
    if not how:
        raise
    print("refused", exc.kind, flush=True)
    sys.exit(0)
with db:
    run(db)
""".replace("ACCOUNTS", str(ACCOUNTS))

#: The start of every helper script below: ``sys.argv[2]`` names the runtime's SQLite build (``sqlite3``,
#: ``pysqlite3``, ``sqlean``), whose DB-API module the script uses, so its locks are the ones the runtime sees.
SCRIPT_PRELUDE = r"""
import importlib, json, os, pathlib, sys
module = importlib.import_module(sys.argv[2])
module = getattr(module, "dbapi2", module) if not hasattr(module, "connect") else module
"""

#: Another process that tries to take the database EXCLUSIVE at once: ``python -c PROBE DB MODULE`` prints ``taken``
#: or ``busy``. ``locking_mode=EXCLUSIVE`` makes a WAL reader take SQLite's EXCLUSIVE lock on the database file itself,
#: which every connection that has the file open in WAL mode blocks with its SHARED lock: the lock a plain
#: ``open()``/``close()`` of the file in this process silently drops. The probe exits without closing, so even a
#: lock it should not have got changes nothing (no checkpoint-on-close, no WAL deleted).
PROBE = SCRIPT_PRELUDE + r"""
try:
    uri = pathlib.Path(sys.argv[1]).resolve().as_uri() + "?mode=rw"
    conn = module.connect(uri, uri=True, timeout=0, isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    print("taken", flush=True)
except module.OperationalError as exc:
    print("busy" if "locked" in str(exc) or "busy" in str(exc) else "error " + str(exc), flush=True)
os._exit(0)
"""

#: Another application writes a row: ``python -c FOREIGN_WRITER DB MODULE ID`` inserts transfer ``ID`` of amount 0
#: (the transfer invariant holds whether it stays or not) with plain SQLite and prints ``wrote`` or ``error ...``.
FOREIGN_WRITER = SCRIPT_PRELUDE + r"""
try:
    conn = module.connect(pathlib.Path(sys.argv[1]).resolve().as_uri() + "?mode=rw", uri=True, timeout=1,
                          isolation_level=None)
    conn.execute("INSERT INTO xfer (id, src, dst, amount) VALUES (?, 1, 1, 0)", (sys.argv[3],))
    print("wrote", flush=True)
    conn.close()
except module.Error as exc:
    print("error", exc, flush=True)
"""

#: Another process reads the bank: ``python -c OUTSIDE_READER DB MODULE`` prints ``{"xfer": [[id, src, dst, amount],
#: ...], "acct": [[id, balance], ...]}`` or ``{"error": "..."}``. SQLite shares one WAL index per database file within
#: a process, so only another process sees what a newcomer would (with the ``-shm`` removed: its own index built
#: from the files at the path). Exits without closing, like :data:`PROBE`: its close never checkpoints anything.
OUTSIDE_READER = SCRIPT_PRELUDE + r"""
try:
    uri = pathlib.Path(sys.argv[1]).resolve().as_uri() + "?mode=rw"
    conn = module.connect(uri, uri=True, timeout=5, isolation_level=None)
    conn.execute("BEGIN")
    out = {"xfer": [list(r) for r in conn.execute("SELECT id, src, dst, amount FROM xfer")],
           "acct": [list(r) for r in conn.execute("SELECT id, balance FROM acct")]}
except module.Error as exc:
    out = {"error": str(exc)}
print(json.dumps(out), flush=True)
os._exit(0)
"""

#: Another process queues writes in the database's shared durable write queue: ``python -c QUEUER QUEUE_FILE PREFIX
#: COUNT GAP``. It appends each through the runtime's own queue (``WriteQueue.put``, what a manager's ``commands.run``
#: does while its database is unavailable, and the ``reliability`` command line's queued ``flags set``) as the command
#: ``bank_transfer`` ``[ID, SRC, DST, AMOUNT]`` keyed by its id, prints ``queued ID SRC DST AMOUNT`` once ``put``
#: returned (acknowledged as queued: durable) and waits up to GAP seconds before the next.
QUEUER = r"""
import random, sys, time
from reliability.degraded.queue import WriteQueue
path, prefix, count, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rng = random.Random(prefix)
queue = WriteQueue(path)
for i in range(count):
    tid = f"{prefix}-{i}"
    a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
    amount = rng.randint(1, 30)
    queue.put("bank_transfer", [tid, a, b, amount], key=tid)
    print("queued", tid, a, b, amount, flush=True)
    time.sleep(rng.random() * gap)
""".replace("ACCOUNTS", str(ACCOUNTS))

#: Another process in the middle of an operation that writes a temporary named as the runtime names them
#: (``reliability.files.process_temp``: ``<path>.<tag>-<pid>-<tid>``): ``python -c TEMP_HOLDER PATH TAG`` creates it
#: with the runtime's own ``create_temp``, prints its path and waits (its operation not finished) until its input
#: ends; then it finishes its operation (removes its temporary) and prints ``kept`` or ``lost`` (it was removed).
TEMP_HOLDER = r"""
import os, sys
from reliability import files
tmp = files.process_temp(sys.argv[1], sys.argv[2])
fd = files.create_temp(tmp)
files.write_all(fd, b"an operation of another process, in progress\n")
print(tmp, flush=True)
sys.stdin.read()
os.close(fd)
try:
    os.unlink(tmp)
    print("kept", flush=True)
except FileNotFoundError:
    print("lost", flush=True)
"""

#: Another process asks whether the claim to commit alone (``<db>.redo.solo``, an exclusive ``flock``: see "The only
#: writer" in reliability/redo.py) is free: ``python -c CLAIM_PROBE PATH`` prints ``free`` or ``held``.
CLAIM_PROBE = r"""
import fcntl, os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
except FileNotFoundError:
    print("free", flush=True)
    sys.exit(0)
try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    print("free", flush=True)
except BlockingIOError:
    print("held", flush=True)
"""

def bank_transfer(db: Any, tid: str, a: int, b: int, amount: int) -> list[Any] | None:
    """One transfer inside the caller's transaction (read-modify-write of two balances, one row). Returns the rows
    its ``INSERT … RETURNING id`` gave (as a list; None when it booked its row with a plain ``execute``)."""
    (ba,) = db.fetch_one("SELECT balance FROM acct WHERE id = ?", (a,))
    (bb,) = db.fetch_one("SELECT balance FROM acct WHERE id = ?", (b,))
    db.execute("UPDATE acct SET balance = ? WHERE id = ?", (ba - amount, a))
    db.execute("UPDATE acct SET balance = ? WHERE id = ?", (bb + amount, b))
    crc = zlib.crc32(tid.encode())
    if crc % 2:
        # Half the transfers book their row as an application reading back what it wrote does: a write given to a
        # read call must be journaled like any other (it once took the read path, outside the block's record).
        # Half of those through ``fetch_one``, half through ``fetch_all`` (each read call has its own write path).
        sql = "INSERT INTO xfer (id, src, dst, amount) VALUES (?, ?, ?, ?) RETURNING id"
        if crc % 4 == 3:
            return [tuple(r) for r in db.fetch_all(sql, (tid, a, b, amount))]
        row = db.fetch_one(sql, (tid, a, b, amount))
        return [] if row is None else [tuple(row)]
    db.execute("INSERT INTO xfer (id, src, dst, amount) VALUES (?, ?, ?, ?)", (tid, a, b, amount))
    return None


def _is_stopped(pid: int) -> bool:
    """Is process ``pid`` stopped by a signal (state ``T`` in /proc)? False where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _continue(pid: int) -> None:
    """SIGCONT to ``pid`` (it may have ended meanwhile)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def release_path_checks(held: list[tuple[Any, float]]) -> None:
    """Put back the identity-check intervals :meth:`DataLossMachine.hold_path_checks` held (shorter again, the
    interval counts from the last check: the next read looks at the path)."""
    for m, every in held:
        m.identity_check_interval = every


class DataLossMachine(RuntimeMachine):
    """Several writers (managers and processes) on one database, and the faults that used to lose their writes."""

    # WAL: its rules are the WAL hazards that lost writes (a -wal moved with its file, removed under running
    # managers, checkpointed by the "last user"). Rollback-journal modes are drawn in the other machines;
    # here, with a reader and a second manager open, they end in plain lock waits that the rules do not model.
    settings_overrides: ClassVar[dict[str, Any]] = {"redo_journal": True, "auto_recover": False,
                                                    "backup_interval": 0.0, "journal_mode": "WAL"}
    fault_kinds = ("none",)

    def after_start(self) -> None:
        self.db.execute(ACCT_TABLE)
        self.db.execute(XFER_TABLE)
        self.db.executemany("INSERT INTO acct (id, balance) VALUES (?, ?)",
                            [(i, OPENING) for i in range(1, ACCOUNTS + 1)])
        self.db.backup()
        #: transfer id -> (src, dst, amount) of every acknowledged transfer
        self.acked: dict[str, tuple[int, int, int]] = {}
        #: transfers whose outcome the caller never learnt (an error, a killed process): may or may not be there
        self.maybe: set[str] = set()
        self.peer: Any = None
        self.processes = 0
        self.serial = 0
        #: a journal was cut or deleted in this example: from then on recovery may honestly fail
        self.journal_damaged = False
        #: journal slots this example deleted (their writes past every other journal cannot be counted)
        self.journals_deleted: set[int] = set()
        self.worker_killed = False
        #: A writer process committing alone was killed between a COMMIT and its record while managers of this
        #: process kept running (``solo_writer_process``): recovery from a backup older than that moment honestly
        #: reports a transaction missing (and holds back the later ones) until a newer backup covers it.
        self.window_gap = False
        self.solo_done = False
        #: ``another_application_opens_after_removal`` ran in this example (once: it needs the tables in the WAL).
        self.opened_beside_removal = False
        #: Worker processes run in about a third of the examples (each costs ~0.5-1 s of the main job).
        self.use_processes = self.rng.random() < PROCESS_SHARE

    # -- writers -----------------------------------------------------------------------------
    def writer(self, who: int) -> Any:
        """Manager ``who`` (0: the machine's runtime, 1: the second manager, when one is open)."""
        return self.peer if who == 1 and self.peer is not None else self.db

    def managers(self) -> list[Any]:
        """The in-process managers now open."""
        return [m for m in (self.db, self.peer) if m is not None]

    def teardown(self) -> None:
        """Close the second manager too, then the base teardown."""
        if getattr(self, "peer", None) is not None:
            try:
                self.peer.close()
            except Exception:  # pragma: no cover - teardown releases what it can
                pass
        super().teardown()

    def restart_all(self) -> None:
        """Stop every in-process manager and start them again (a restart of the service); in between, with no
        manager of this process "killed" earlier (their claim stays with them here), the claim to commit alone
        must be free (:meth:`check_claim_free`)."""
        had_peer = self.peer is not None
        for m in self.managers():
            m.close()
        if not self.abandoned:
            self.check_claim_free("at a restart of the service")
        self.db = self.open_runtime(self.config)
        self.peer = self.open_runtime(self.config) if had_peer else None

    def check_claim_free(self, what: str) -> None:
        """P13: with every manager of this process closed, another process finds the claim to commit alone free.

        At synchronous NORMAL/OFF a manager holds the claim (an exclusive ``flock`` on ``<db>.redo.solo``, see "The
        only writer" in reliability/redo.py) while it runs; one that keeps it after its close leaves every other
        writer paying the sequence row per commit for as long as this process lives. Asked from another process
        (``flock`` locks of one process on different descriptors conflict too, but the probe must not be one of
        ours)."""
        if str(self.config.synchronous).upper() not in ("NORMAL", "OFF") or not self.config.redo_journal:
            return
        claim = str(self.config.redo_journal_file) + ".solo"
        out = run_script(CLAIM_PROBE, [claim], timeout=60)
        answer = out.stdout.strip()
        if answer not in ("free", "held"):
            # Not a verdict on the runtime: the probe itself could not ask (report why).
            raise RuntimeError(f"claim probe on {claim} failed ({out.returncode}): {out.stderr[-2000:]}")
        self.check(13, answer == "free", f"{what}, every manager of this process closed, yet the claim to commit "
                   f"alone ({claim}) is still held: a closed manager kept it, so no other writer commits alone",
                   faults=[NO_FAULT])

    def extra_labels(self) -> list[str]:
        """Report labels of what happened earlier in the example and still shapes recovery."""
        return (["worker_killed"] if self.worker_killed else []) + (["journal_cut"] if self.journal_damaged else [])

    @precondition(lambda self: self.peer is None)
    @rule()
    def open_second_manager(self) -> None:
        """A second manager on the same file in this process (a second web worker); starting it keeps the
        first one's locks."""
        self.peer = self.open_runtime(self.config)
        self.check_locks_kept("after a second manager started in this process")

    def check_locks_kept(self, what: str, faults: list[str] | None = None) -> None:
        """P13: while this process has the database open in WAL mode, another process cannot take it EXCLUSIVE.

        The POSIX locks SQLite holds are per process and per file: closing *any* descriptor of the
        database file in this process drops every one of them, and SQLite does not notice. From then on
        another process takes itself for the only user: its last close checkpoints and deletes the WAL and
        the -shm under the connections here (SQLite 3.40), or, on builds that also honour the -shm's
        dead-man-switch lock at close (3.51), an exclusive-mode connection does the same. The data lost then
        depends on timing and build; the dropped lock does not, so it is what is checked, from another
        process (POSIX locks never conflict within one), on the runtime's own SQLite build.
        """
        if self.config.journal_mode.upper() != "WAL" or not os.path.isfile(self.db_path):
            return  # rollback-journal connections hold no lock between transactions; no file: nothing to lock
        try:
            # A reader of this process that holds SHARED whatever the managers' state (one may be closed or
            # refused): if the other connections' lock was dropped, SQLite does not take it again for this one
            # (it counts the process's SHARED locks per file itself), so the probe still finds it gone.
            with self.raw() as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                out = run_script(PROBE, [self.db_path, self.config.sqlite_module], timeout=60)
        except sqlite3.Error:
            return  # the file is not readable as a database now (damaged, replaced): other checks judge that
        answer = out.stdout.strip()
        if answer not in ("taken", "busy"):
            # Not a verdict on the runtime: the probe itself could not ask (report why).
            raise RuntimeError(f"lock probe on {self.db_path} failed ({out.returncode}): {answer} {out.stderr[-2000:]}")
        self.check(13, answer == "busy", lambda: f"{what}: another process took the database EXCLUSIVE while "
                   f"{len(self.managers())} manager(s) of this process had it open in WAL mode (their SQLite locks "
                   "were dropped: a plain open()/close() of the database file?); its checkpoint-on-close would "
                   "delete the WAL under them", faults=faults)

    @rule(who=st.integers(0, 1), src=st.integers(1, ACCOUNTS), dst=st.integers(1, ACCOUNTS),
          amount=st.integers(1, 30))
    def transfer(self, who: int, src: int, dst: int, amount: int) -> None:
        """A transfer through one of the in-process managers; acknowledged when the call returns."""
        if src == dst:
            dst = src % ACCOUNTS + 1
        self.transfer_through(who, self.writer(who), src, dst, amount)

    @precondition(lambda self: self.use_processes and self.processes < MAX_PROCESSES)
    @rule(count=st.integers(1, 3), kill=st.sampled_from(KILL_POINTS))
    def worker_process(self, count: int, kill: str | None) -> None:
        """A real process does ``count`` transfers through its own manager; maybe killed -9 in the next commit.

        After a kill, what it left is judged at once (``after:worker_killed``): every transfer it acknowledged is
        on disk, the one it died in is all there or not at all. Without this, an example ending here injected
        the kill and checked nothing after it (the report's warning)."""
        self.run_worker(count, kill)
        if kill:
            self.last_healed = "worker_killed"
            self.check_bank(13, f"after a worker process was killed -9 ({kill})", ["after:worker_killed"])

    def worker_args(self, count: int, kill: str | None, how: str = "") -> list[str]:
        """The arguments of the next worker process (``sys.argv[1:]`` of :data:`WORKER`)."""
        self.processes += 1
        return [self.db_path, f"p{self.processes}", str(count), kill or "", self.config.synchronous,
                self.config.sqlite_module, how]

    def take_in(self, line: str) -> None:
        """One line of a worker's output: an acknowledged transfer, or one whose outcome it never learnt."""
        words = line.split()
        if words[:1] == ["ack"]:
            self.acked[words[1]] = (int(words[2]), int(words[3]), int(words[4]))
        elif words[:1] in (["armed"], ["error"]):
            self.maybe.add(words[1])

    def run_worker(self, count: int, kill: str | None, how: str = "") -> None:
        """Run one worker process (see :data:`WORKER`) and take in what it acknowledged."""
        args = self.worker_args(count, kill, how)
        prefix = args[1]
        out = run_script(WORKER, args, timeout=120)
        for line in out.stdout.splitlines():
            self.take_in(line)
        if kill:
            self.worker_killed = True
            STATS.record_fault("worker_killed")
        elif out.returncode != 0:
            # Not a verdict on the runtime's recovery: the worker could not do its job (report why).
            raise RuntimeError(f"worker process {prefix} failed ({out.returncode}): {out.stderr[-2000:]}")

    @rule(who=st.integers(0, 1))
    def take_backup(self, who: int) -> None:
        """A backup through one of the managers (it re-anchors that manager's journal)."""
        from reliability import DatabaseError

        try:
            self.writer(who).backup()
        except DatabaseError:
            pass
        else:
            self.window_gap = False  # (recovery starts from this backup now: past the gap)

    # -- a writer process committing alone (synchronous NORMAL), killed in its commit window --------------
    @precondition(lambda self: not self.solo_done)
    @rule(count=st.integers(1, 3), who=st.integers(0, 1), part=st.sampled_from(CORRUPTIONS),
          seed=st.integers(0, 2**16))
    def solo_writer_process(self, count: int, who: int, part: str, seed: int) -> None:
        """P13: a writer process at synchronous NORMAL, journals on, takes the claim to commit alone (reliability/
        redo.py, "The only writer"), acknowledges ``count`` transfers and is killed -9 in its next commit between
        its COMMIT and its record (the one moment a committed transaction has no record); the managers of this
        process write on (transfers touching four of the five accounts, so a transaction missing under them shows
        in the balances), then real damage and ``recover()`` by one of them, judged as ``corrupt_and_recover``:
        never ``ok`` unless every acknowledged transfer is back and the balances are exactly the opening ones plus
        the transfers present (later writes replayed onto a state without the killed process's last transaction
        break that); otherwise it says why and at least how many are missing.

        With this process at NORMAL too, its managers hold the claim: the service stops first, and then another
        process must find the claim free (a closed manager keeps nothing of the database); their restart covers
        the killed process's transaction with its startup backup, so recovery must be ``ok``. At FULL/EXTRA they
        never claim and write on while the writer process lies dead: one sequence number must be left out for it,
        so recovery from the older backup reports it missing rather than replaying the later writes without it.
        Once per example (a process with a runtime costs ~0.1-0.5 s)."""
        from reliability import DatabaseError

        self.solo_done = True
        normal = str(self.config.synchronous).upper() in ("NORMAL", "OFF")
        had_peer = self.peer is not None
        if normal:
            for m in self.managers():
                m.close()
            self.peer = None
            for m in self.abandoned:  # (managers "killed" earlier: their claim goes with them, as at a real kill -9)
                redo = getattr(getattr(m, "durability", None), "redo", None)
                held = getattr(redo, "claim", None)
                if held is not None:
                    redo.claim = None
                    held.close()
            self.check_claim_free("before a writer process started")
        args = self.worker_args(count, "in_window", "tolerant")
        args[4] = "NORMAL"  # (the writer process commits alone only with its journal not fsynced)
        out = run_script(WORKER, args, timeout=120)
        for line in out.stdout.splitlines():
            self.take_in(line)
        if out.returncode == -9:
            self.worker_killed = True
            STATS.record_fault("worker_killed")
            self.window_gap = self.window_gap or not normal
        elif out.returncode != 0:
            # Not a verdict on the runtime: the worker could not do its job (report why).
            raise RuntimeError(f"worker process {args[1]} failed ({out.returncode}): {out.stderr[-2000:]}")
        if normal:
            self.db = self.open_runtime(self.config)
            self.peer = self.open_runtime(self.config) if had_peer else None
        self.transfer_through(0, self.db, 1, 2, 1 + seed % 30)
        self.transfer_through(1, self.writer(1), 3, 4, 1 + seed % 29)
        fault = self.damage(part, seed)
        labels = ["corrupt", *self.extra_labels()]
        what = (f"after recovery from {part} damage, a writer process at NORMAL killed in its commit window alone "
                f"({'this process at NORMAL, restarted' if normal else 'this process at ' + self.config.synchronous})")
        if self.recover_and_judge(who, fault, labels, what):
            try:  # a backup past the gap: later recoveries start from it
                self.db.backup()
                self.window_gap = False
            except DatabaseError:
                pass

    # Held out of the main job for one stop (session 24) after its first CI run failed once, "1 committed
    # transaction(s) are missing from the redo journals (sequence 9; the journals reach 10)": a race in the runtime
    # (redo._last_committed_alone read the owner's journal before asking whether it still ran; fixed in ac9bbac).
    # A sleep planted between that read and the lock check reproduces the message in 39 of 40 direct calls of this
    # rule before the fix and 0 of 40 after (session 25).
    @precondition(lambda self: self.use_processes and self.processes < MAX_PROCESSES and os.path.isdir("/proc/self")
                  and str(self.config.synchronous).upper() not in ("NORMAL", "OFF"))
    @rule(count=st.integers(1, 2), who=st.integers(0, 1), part=st.sampled_from(CORRUPTIONS),
          seed=st.integers(0, 2**16))
    def write_in_a_live_commit_window(self, count: int, who: int, part: str, seed: int) -> None:
        """P13: a writer process at synchronous NORMAL commits alone (reliability/redo.py, "The only writer") and is
        stopped (SIGSTOP, not killed) in its commit window: its transaction committed, its record not yet written.
        A manager of this process (at FULL/EXTRA: it never claims) writes meanwhile: it must take its sequence only
        after the live owner's window closed (the owner continued after ``WINDOW_STOP`` s), or two journals hold the
        same sequence and the writer's last transaction cannot be told from this one's. Then real damage and
        ``recover()``, judged as ``corrupt_and_recover``: every journal is intact, so it must be ``ok`` with every
        acknowledged transfer back and the balances exact."""
        import signal
        import threading

        self.processes += 1
        args = self.worker_args(count, "stop_in_window", "tolerant")
        args[4] = "NORMAL"  # (the writer process commits alone only with its journal not fsynced)
        proc = start_script(WORKER, args)
        assert proc.stdout is not None
        stopped = False
        for line in proc.stdout:
            if line.startswith("window"):
                stopped = True
                break
            self.take_in(line)
        timer = None
        try:
            if stopped:
                deadline = time.monotonic() + 30
                while not _is_stopped(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.002)
                timer = threading.Timer(WINDOW_STOP, lambda: _continue(proc.pid))
                timer.start()
                self.transfer_through(who, self.writer(who), 1, 2, 1 + seed % 30)
        finally:
            if timer is not None:
                timer.join()
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # (a harness failure above must not leave it stopped)
            out, err = proc.communicate(timeout=120)
        for line in out.splitlines():
            self.take_in(line)
        if proc.returncode != 0:
            # Not a verdict on the runtime: the worker could not do its job (report why).
            raise RuntimeError(f"worker process {args[1]} failed ({proc.returncode}): {err[-2000:]}")
        if not stopped:
            return  # (it never committed alone: nothing in a window to meet)
        fault = self.damage(part, seed)
        labels = ["corrupt", *self.extra_labels()]
        self.recover_and_judge(who, fault, labels, f"after recovery from {part} damage, this process having written "
                               "while a writer process committing alone was stopped in its commit window")

    # -- the shared write queue, appended to by another process while this one replays it ------------
    def register_queue_command(self, m: Any) -> None:
        """The write command of :data:`QUEUER`'s writes (``bank_transfer``), registered on manager ``m``."""
        from reliability import Needs

        if "bank_transfer" not in m.commands:
            m.commands.register("bank_transfer", Needs.WRITE,
                                lambda db, tid, a, b, amount: bank_transfer(db, tid, a, b, amount))

    @rule(count=st.integers(3, 12), gap=st.sampled_from((0.0, 0.001, 0.003)), who=st.integers(0, 1))
    def queue_from_another_process(self, count: int, gap: float, who: int) -> None:
        """P14: another process appends writes to the shared durable write queue (README: every manager of a
        database shares its queue file) while this runtime replays it over and over, as its rechecks do.

        Every write acknowledged as queued is applied exactly once: none lost (neither in the database nor
        waiting in the file: a compaction that replaced the file while the other process appended dropped it),
        none set aside (applied twice, the second time refused by the transfer's primary key); once a replay
        leaves nothing waiting, nothing of them waits in the file, and the runtime's count of waiting writes
        is the file's. No fault is in force: another live process acting at the same moment is the condition.
        """
        import threading

        for m in self.managers():
            self.register_queue_command(m)
        replayer = self.writer(who)
        path = str(self.config.write_queue_file)
        self.serial += 1
        proc = start_script(QUEUER, [path, f"q{self.serial}", str(count), str(gap)])
        queued: dict[str, tuple[int, int, int]] = {}

        def take_in() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                words = line.split()
                if words[:1] == ["queued"]:
                    queued[words[1]] = (int(words[2]), int(words[3]), int(words[4]))

        reader = threading.Thread(target=take_in, name="dbfault-queuer-output", daemon=True)
        reader.start()
        set_aside: set[str] = set()
        try:
            while reader.is_alive():  # replays while the other process appends (each may compact the file)
                set_aside.update(key for key, _ in replayer.commands.replay().failures)
        finally:
            _, err = proc.communicate(timeout=120)
            reader.join(60)
        if proc.returncode != 0:
            # Not a verdict on the runtime: the other process could not queue (report why).
            raise RuntimeError(f"queueing process failed ({proc.returncode}): {err[-2000:]}")
        final = replayer.commands.replay()
        set_aside.update(key for key, _ in final.failures)
        waiting = queue_file_pending(path)
        state = self.read_bank()
        labels = [NO_FAULT]
        if isinstance(state, str):  # (the database unreadable: what earlier damage left; other checks judge it)
            self.maybe.update(queued)
            return
        applied = set(state[0])
        what = f"another process queued {len(queued)} write(s) while manager {who} replayed the shared queue"
        lost = sorted(set(queued) - applied - set(waiting))
        self.check(14, not lost, lambda: f"{what}: {len(lost)} write(s) acknowledged as queued are neither applied "
                   f"nor waiting in the queue file (lost): {lost[:6]}", faults=labels)
        twice = sorted(set(queued) & set_aside)
        self.check(14, not twice, lambda: f"{what}: queued write(s) set aside on replay (applied twice?): "
                   f"{twice[:6]}", faults=labels)
        if final.error is None:
            left = sorted(set(queued) & set(waiting))
            self.check(14, not left, lambda: f"{what}: a replay that reported no error left queued write(s) "
                       f"waiting: {left[:6]}", faults=labels)
        self.check(14, final.remaining == len(waiting), lambda: f"{what}: the runtime counts {final.remaining} "
                   f"queued write(s) waiting, the queue file {len(waiting)}", faults=labels)
        for tid, transfer in queued.items():
            if tid in applied:
                self.acked[tid] = transfer
            else:
                self.maybe.add(tid)  # waiting (a replay could not run): applied by a later one
        self.check_bank(13, what, labels, state)

    # -- temporaries of another live process, met by a manager's start -------------------------------
    @rule(tag=st.sampled_from(("create", "damaged")), age=st.sampled_from((2, 30, 1000)),
          odd=st.sampled_from(("no_tid", "not_a_pid")))
    def temps_of_a_live_process(self, tag: str, age: int, odd: str) -> None:
        """P13/P11: a manager's start removes the temporaries crashes left, never one of a live process.

        Another process is in the middle of an operation whose temporary is named as the runtime names them
        (:data:`TEMP_HOLDER`: the database created under a temporary name, ``create``, or the damage marker
        ``<db>.damaged`` written through one, ``tmp``), and has been for ``age`` times the runtime's leftover age
        (a slow disk, a stopped process); beside it a young temporary of a process that is gone, and a file
        that only looks like one (no thread id, or no pid). Then a manager starts (the second manager, opened
        or restarted). All three are left: only a crash's temporary (its process gone, older than the
        leftover age) may be removed, and the live process finishes its operation with its temporary there.
        """
        from reliability import DatabaseError
        from reliability.files import LEFTOVER_AGE

        target = self.db_path if tag == "create" else self.db_path + ".damaged"
        suffix = "create" if tag == "create" else "tmp"
        number = 13 if tag == "create" else 11
        holder = start_script(TEMP_HOLDER, [target, suffix])
        assert holder.stdout is not None
        live = holder.stdout.readline().strip()
        strays: list[str] = []
        finished = ""
        try:
            if not live:
                raise RuntimeError(f"temporary holder failed: {holder.communicate(timeout=60)[1][-2000:]}")
            then = time.time() - LEFTOVER_AGE * age
            os.utime(live, (then, then))
            gone = run_script("import os; print(os.getpid())", [], timeout=60).stdout.strip()  # a pid now free
            young = f"{target}.{suffix}-{gone}-1"
            odd_name = f"{target}.{suffix}-{gone}" if odd == "no_tid" else f"{target}.{suffix}-x{gone}-1"
            for name, mtime in ((young, None), (odd_name, then)):
                with open(name, "wb") as fh:
                    fh.write(b"not a leftover of a crash\n")
                if mtime is not None:
                    os.utime(name, (mtime, mtime))
                strays.append(name)
            what = f"a manager started while another live process (pid {holder.pid}) had a temporary {live!r}"
            try:
                started = self.open_runtime(self.config)
            except DatabaseError:
                started = None  # (refused by what earlier rules left: its start ran the sweep first)
            except Exception as exc:  # noqa: BLE001 - a start that breaks on a file name is the verdict
                self.check(number, False, f"{what}: the start failed: {type(exc).__name__}: {exc}", faults=[NO_FAULT])
                return
            if started is not None:
                if self.peer is not None:
                    self.peer.close()
                self.peer = started
            self.check(number, os.path.lexists(live), f"{what} ({age} x the leftover age old): its start removed "
                       "that process's temporary (its operation in progress)", faults=[NO_FAULT])
            removed = [name for name in strays if not os.path.lexists(name)]
            self.check(number, not removed, lambda: f"{what}: its start removed file(s) it must leave: {removed} "
                       "(a young temporary of a process that is gone; a name that is no temporary of the runtime)",
                       faults=[NO_FAULT])
        finally:
            if live:
                finished = holder.communicate(timeout=60)[0].strip()
            else:
                holder.kill()
            for name in strays:
                with contextlib.suppress(OSError):
                    os.unlink(name)
        self.check(number, finished == "kept", f"another process's operation found its temporary {live!r} "
                   f"removed under it by a manager's start ({finished!r})", faults=[NO_FAULT])

    # -- reading the truth ---------------------------------------------------------------------
    def read_bank(self) -> tuple[dict[str, tuple[int, int, int]], dict[int, int]] | str:
        """The transfers and balances on disk (a plain connection), or why they cannot be read."""
        try:
            with self.raw() as conn:
                xfers = {t: (s, d, a) for t, s, d, a in conn.execute("SELECT id, src, dst, amount FROM xfer")}
                balances = dict(conn.execute("SELECT id, balance FROM acct").fetchall())
        except sqlite3.Error as exc:
            return f"unreadable: {exc}"
        return xfers, balances

    def read_bank_outside(self) -> tuple[dict[str, tuple[int, int, int]], dict[int, int]] | str:
        """:meth:`read_bank` as another process sees it (see :data:`OUTSIDE_READER`)."""
        import json

        out = run_script(OUTSIDE_READER, [self.db_path, self.config.sqlite_module], timeout=60)
        try:
            data = json.loads(out.stdout)
        except ValueError:
            # Not a verdict on the runtime: the reader itself could not ask (report why).
            raise RuntimeError(f"outside reader failed ({out.returncode}): {out.stderr[-2000:]}") from None
        if "error" in data:
            return f"unreadable from another process: {data['error']}"
        return ({t: (s, d, a) for t, s, d, a in data["xfer"]}, {i: b for i, b in data["acct"]})

    def check_bank(self, number: int, what: str, faults: list[str],
                   state: tuple[dict[str, tuple[int, int, int]], dict[int, int]] | str | None = None,
                   ) -> dict[str, tuple[int, int, int]] | None:
        """Every acknowledged transfer is on disk, nothing unknown is, and the balances are exactly the
        opening ones plus the transfers present (the transfer invariant). Returns the transfers present.

        ``state``: what was read (default: :meth:`read_bank` now)."""
        state = self.read_bank() if state is None else state
        if isinstance(state, str):
            self.check(number, False, f"{what}: the database is {state}", faults=faults)
            return None
        xfers, balances = state
        lost = sorted(set(self.acked) - set(xfers))
        self.check(number, not lost, lambda: f"{what}: {len(lost)} acknowledged transfer(s) lost: {lost[:6]}",
                   faults=faults)
        unknown = sorted(set(xfers) - set(self.acked) - self.maybe)
        self.check(number, not unknown, f"{what}: transfers nobody made are present: {unknown[:6]}", faults=faults)
        net = dict.fromkeys(range(1, ACCOUNTS + 1), OPENING)
        for src, dst, amount in xfers.values():
            net[src] -= amount
            net[dst] += amount
        self.check(number, balances == net and sum(balances.values()) == ACCOUNTS * OPENING,
                   lambda: f"{what}: the transfer invariant broke (balances {balances}, expected {net})", faults=faults)
        return xfers

    # -- (a) (b): several writers, damage, cut journals, recovery ---------------------------------
    def cut_journal(self, how: str, pick: int) -> str | None:
        """Cut one journal file for real (the ``disconnect`` fault's truncate/delete modes); what was done."""
        from reliability.redo import journal_files, read_journal

        files = [(slot, path) for slot, path in journal_files(self.config.redo_journal_file)
                 if read_journal(path).entries]
        if how == "none" or not files:
            return None
        slot, path = files[pick % len(files)]
        size = os.path.getsize(path)
        if how == "delete":
            fault = make_fault("disconnect", str(path), mode="delete", kind="journal_cut", counted_in=STATS)
        else:
            keep = size // 2 if how == "half" else record_ends(path)[-2]
            if keep >= size:
                return None
            # (keep + 0.5) / size: the fault keeps int(size * fraction) bytes, exactly ``keep``.
            fault = make_fault("disconnect", str(path), mode="truncate", fraction=(keep + 0.5) / size,
                               kind="journal_cut", counted_in=STATS)
        fault.inject()
        self.journal_damaged = True
        if how == "delete":
            self.journals_deleted.add(slot)
        return f"journal slot {slot} {how} ({size} bytes)"

    def count_is_a_floor(self, problems: list[str]) -> bool:
        """Does the report say a journal the machine deleted is missing? Then its count is a floor, not a claim.

        A deleted journal's transactions past every other journal's last sequence leave no gap anyone can see
        (the database's own sequence was in the damaged file); the report says that journal's writes "may be
        missing", which is the honest answer the issue asks to keep. Only the slots this example deleted count.
        """
        from reliability.redo import slot_path

        text = " ".join(problems)
        base = self.config.redo_journal_file

        def named(slot: int) -> bool:  # (another manager's journal, or the recovering manager's own)
            return (f"the redo journal of slot {slot} " in text and "is missing" in text) or \
                f"the redo journal {str(slot_path(base, slot))!r} is missing" in text

        return bool(self.journals_deleted) and all(named(slot) for slot in self.journals_deleted)

    def kill_all_and_start(self) -> None:
        """Every in-process manager dies as under kill -9 (no clean-close record, journal locks released,
        nothing checkpointed) and a fresh one starts: it knows only what the files tell."""
        from reliability import redo as redo_module

        for m in self.managers():
            redo = getattr(getattr(m, "durability", None), "redo", None)
            fd = getattr(redo, "_fd", None)
            if redo is not None and fd is not None:
                redo_module._SYNCER.drain(fd)
                redo._fd = None
                os.close(fd)  # what the kernel does at kill -9: the flock goes with it
            self.abandoned.append(m)
        self.peer = None
        self.db = self.open_runtime(self.config)

    def damage(self, part: str, seed: int) -> Any:
        """Real damage of ``part`` of the database (the ``xfer`` table's pages for ``btree``), the file copied aside
        first; counted and recorded like every fault of the example. Returns the injected fault."""
        params: dict[str, Any] = {"part": part, "seed": seed, "backup_before": True}
        if part == "btree":
            params["table"] = "xfer"
        fault = make_fault("corrupt", self.db_path, counted_in=STATS, **params)
        fault.inject()
        self.fault_history.append("corrupt")
        return fault

    @rule(part=st.sampled_from(CORRUPTIONS), who=st.sampled_from((0, 1, 2, 3, 3)), cut=st.sampled_from(JOURNAL_CUTS),
          pick=st.integers(0, 7), seed=st.integers(0, 2**16))
    def corrupt_and_recover(self, part: str, who: int, cut: str, pick: int, seed: int) -> None:
        """P13: real damage (and maybe a cut journal), then ``recover()`` by one of the writers, (``who`` 2, the
        issue's reproduction) by a fresh manager after every writer was killed, or (3) by a fresh manager started
        beside the live writers, as ``reliability recover`` run while the service is up: its own journal never
        anchored on the damaged file and took no write, so it is no reason to report a loss. With ``who`` 3 and an
        odd ``pick`` (unused there otherwise) the damage is to the header, writer 0 recovers instead, and the manager
        started beside writes after it (:meth:`write_beside_after_recovery`)."""
        from reliability import DatabaseError

        if who == 3 and part == "truncate":
            part = "btree"  # (beside the writers: damage its startup check finds, so its journal never anchors)
        watching = who == 3 and pick % 2 == 1  # (beside the writers, it watches writer 0 recover)
        if watching:
            # (Damage its start cannot miss: a page of a table grown past its root may be damaged where the anchoring
            # backup's check does not look, and then the journal anchors and the case is not the one it is for.)
            part = "header"
        fault = self.damage(part, seed)
        # (Beside the writers, what is judged is the fresh manager's own journal: the others' are left whole.)
        cut_done = self.cut_journal(cut, pick) if who != 3 else ""
        labels = ["corrupt", *self.extra_labels()]
        if who == 2:
            self.kill_all_and_start()
        beside = None
        if who == 3:
            try:
                beside = self.open_runtime(self.config)
            except DatabaseError:
                beside = None  # (refused at startup: one of the writers recovers instead)
        what = f"after recovery from {part} damage" + (f" with {cut_done}" if cut_done else "")
        watching = watching and beside is not None
        try:
            judged = self.recover_and_judge(0 if who == 3 else who, fault, labels,
                                            what + (" by a manager started beside the writers"
                                                    if beside and not watching else ""),
                                            recoverer=None if watching else beside)
            if judged and watching:
                self.write_beside_after_recovery(beside, part, seed, labels)
                beside = None  # (closed there)
        finally:
            if beside is not None:
                beside.close()
        if judged and cut_done:
            self.restart_all()  # the issue's reproduction: cut the journal and restart

    def write_beside_after_recovery(self, beside: Any, part: str, seed: int, labels: list[str]) -> None:
        """P13: a manager started on the damaged file (its redo journal's anchoring backup failed the check: no
        header, no record) watched writer 0 recover; now it writes a transfer, which is acknowledged. A sound file is
        at the path, so its journal anchors on it before the write (reliability/durability/journal.py,
        ``anchor_if_due``: "a journal whose anchoring failed ... anchors on it before the next write") and the write
        is journaled. The manager closes; the database is damaged again and writer 0 recovers, judged as every
        recovery here: with every journal intact it is ``ok`` with every acknowledged transfer back, the new one too
        (before session 26 the journal stayed unanchored for good and the next recovery lost such writes)."""
        try:
            self.transfer_through(2, beside, 4, 5, 1)
        finally:
            beside.close()
        fault = self.damage(part, seed + 1)
        self.recover_and_judge(0, fault, labels, f"after recovery from {part} damage, a write by a manager started "
                               "on the damaged file and the same damage again")

    @rule(last=st.integers(0, 1), who=st.sampled_from((0, 1, 2, 2)), entries=st.integers(1, 2),
          part=st.sampled_from(("header", "page_size")), amount=st.integers(1, 30), seed=st.integers(0, 2**16))
    def cut_tail_unreadable_sequence(self, last: int, who: int, entries: int, part: str, amount: int,
                                     seed: int) -> None:
        """P13/P10: a journal's last transaction(s) cut off exactly at a record boundary, and the database damaged
        so that its own sequence can no longer be read; then ``recover()`` by the other writer, the same one, or a
        fresh manager after every writer was killed.

        Both managers write (manager ``last`` last), then the journal of manager ``last`` loses its last
        ``entries`` transaction records and everything after them (a file cut where a record starts reads as a
        complete, shorter journal: only its high-water mark tells; ``corrupt_and_recover``'s ``boundary`` cut
        drops the last frame only, mostly a committed mark). Recovery never reports ``ok`` while an acknowledged
        transfer is missing, and when it fails it says how many (at least the number lost) and the recovering
        manager is not ``healthy`` (README: a missing journal tail is detected, never silently accepted). A fresh
        manager recovers twice as often as each writer: it saw no sequence of its own, so only the files can tell
        (the writer that did not write last saw none of the cut records either; the one that did saw them all)."""
        if self.peer is None:
            self.peer = self.open_runtime(self.config)
        self.transfer_through(1 - last, self.writer(1 - last), 1, 2, amount)
        self.transfer_through(last, self.writer(last), 3, 4, amount)
        redo = getattr(getattr(self.writer(last), "durability", None), "redo", None)
        path = getattr(redo, "path", None)
        starts = entry_starts(path) if path is not None and os.path.isfile(path) else []
        if not starts:
            return  # no transaction record in that journal (its writes failed): nothing to cut
        size = os.path.getsize(path)
        keep = starts[-min(entries, len(starts))]
        make_fault("disconnect", str(path), mode="truncate", fraction=(keep + 0.5) / size, kind="journal_cut",
                   counted_in=STATS).inject()
        self.journal_damaged = True
        fault = make_fault("corrupt", self.db_path, counted_in=STATS, part=part, seed=seed, backup_before=True)
        fault.inject()
        self.fault_history.append("corrupt")
        labels = ["corrupt", *self.extra_labels()]
        if who == 2:
            self.kill_all_and_start()
        what = (f"after recovery from {part} damage with the last {entries} transaction record(s) of manager {last}'s "
                f"journal cut off at a record boundary ({size} -> {keep} bytes)")
        if self.recover_and_judge(who, fault, labels, what):
            self.restart_all()

    def hold_path_checks(self, recoverer: Any) -> list[tuple[Any, float]]:
        """Before ``recoverer`` recovers: every other manager of this process reads once (its read looks at the
        path now) and then waits an hour before its reads look again (``identity_check_interval``), so that only
        the recovering manager's word can make them read the file it installs. Returns what to put back
        (:func:`release_path_checks`)."""
        from reliability import DatabaseError

        held = []
        for m in self.managers():
            if m is recoverer:
                continue
            try:
                m.fetch_one("SELECT 1")
            except DatabaseError:
                pass  # (a damaged file may refuse even this: the interval is held all the same)
            held.append((m, m.identity_check_interval))
            # The hour counts from the last look (executor.identity_check_interval; before session 27 a longer
            # interval left the look due 50 ms after the read, and on a loaded machine the judge's read looked on
            # its own: the bite test of a recovery that does not tell the peer found nothing in CI).
            m.identity_check_interval = 3600.0
        return held

    def judge_found_recovered(self, late: Any, what: str, labels: list[str]) -> None:
        """P13: ``late``, whose connection is still on the file it saw damaged, runs ``recover()`` after another
        manager installed a sound file holding every journaled write. It finds the database recovered
        (reliability/durability/recovered_elsewhere.py): nothing quarantined, no backup installed (recovering again
        would set a sound database aside and rebuild it for nothing, and lose whatever the journals left out), ok
        while every journal is whole; and it then serves every acknowledged transfer."""
        from reliability import DatabaseError

        try:
            report = late.recover()
        except DatabaseError as exc:
            self.check(13, False, f"{what}: a second manager's recover() right after raised {exc.kind}: {exc.detail}",
                       faults=labels)
            return
        said = f"{what}: a second manager's recover() right after another's"
        self.check(13, not report.quarantined and report.backup is None, lambda: (
            f"{said} recovered the sound file again: quarantined {report.quarantined}, installed {report.backup}"),
            faults=labels)
        self.check(13, report.ok or self.journal_damaged, lambda: f"{said} failed: {report.problems}", faults=labels)
        try:
            served = {r[0] for r in late.fetch_all("SELECT id FROM xfer")}
        except DatabaseError as exc:
            self.check(13, False, f"{said}: its read raised {exc.kind}: {exc.detail}", faults=labels)
            return
        missing = sorted(set(self.acked) - served)
        self.check(13, not missing, lambda: f"{said}: it serves a database without acknowledged transfers "
                                            f"{missing[:5]}", faults=labels)

    def judge_reported_loss(self, what: str, problems: list[str],
                            labels: list[str]) -> tuple[set[str] | None, int | None]:
        """A recovery that did not report ok, held to its word (P13): it says at least how many acknowledged
        transfers are gone (unless a deleted journal makes its count a floor), and its "how many" and "which"
        agree. What is gone is then taken as gone. Returns the transfers lost (None: the bank could not be
        read) and the count the report gave."""
        self.check(13, not disagreements(" ".join(problems)),
                   lambda: f"{what}: the report's count and sequences disagree: {disagreements(' '.join(problems))}: "
                           f"{problems}", faults=labels)
        state = self.read_bank()
        if isinstance(state, str):
            return None, None
        lost = set(self.acked) - set(state[0])
        said = reported_loss(problems)
        self.check(13, not lost or said is None or said >= len(lost) or self.count_is_a_floor(problems),
                   f"{what}: {len(lost)} acknowledged transactions are missing but recovery reports only "
                   f"{said}: {problems}", faults=labels)
        # Reported honestly: what is gone is gone; the machine goes on from what is there.
        self.acked = {t: v for t, v in self.acked.items() if t in state[0]}
        return lost, said

    def recover_and_judge(self, who: int, fault: Any, labels: list[str], what: str, recoverer: Any = None) -> bool:
        """``recover()`` by writer ``who`` (after :meth:`kill_all_and_start` for 2: the fresh manager), or by
        ``recoverer`` when given, of a database ``fault`` damaged, judged: ``ok`` only with every acknowledged
        transfer back; otherwise it says why, at least how many are missing, and the recovering manager is not
        ``healthy``. False: it raised, or installed nothing (then the undamaged copy was put back and every manager
        restarted)."""
        from reliability import DatabaseError

        beside = recoverer is not None
        recoverer = recoverer if recoverer is not None else self.writer(who)
        # (Only while every journal is whole: a slot's file the fresh manager took over may have been cut before.)
        own = getattr(recoverer, "redo_journal", None) if beside and not self.journal_damaged else None
        own_names = [n for n in (getattr(own, "error", None),
                                 own is not None and f"{str(own.path)!r} is missing or lost its header") if n]
        others = [m for m in self.managers() if m is not recoverer]
        held = self.hold_path_checks(recoverer) if others and self.judge_other_processes else []
        try:
            report = recoverer.recover()
        except DatabaseError as exc:
            release_path_checks(held)
            self.check(13, False, f"recover() raised {exc.kind}: {exc.detail}", faults=labels)
            return False
        if held and report.ok and (report.backup or report.quarantined) and len(others) > 1:
            # (Two other managers, as beside the writers: the last one recovers in turn, the judges below still
            # have the first, which has not looked.)
            self.judge_found_recovered(others[-1], what, labels)
        # Either judge needs the other managers not to have looked at the path since the recovery, and health's
        # look follows it: they take turns, one recovery with a peer each (a read's look first).
        health_turn = self.peer_health_turn
        if held:
            self.peer_health_turn = not health_turn
        try:
            if held and report.ok and health_turn:
                # Health judges the file the next call serves: before any read of theirs follows the path, the
                # other managers' health must not call the installed, sound file moved away (it said unavailable,
                # "readonly_dbmoved", until some other call reopened).
                for m in others:
                    reasons = list(m.health().reasons)
                    self.check(10, not any("readonly_dbmoved" in r for r in reasons), lambda reasons=reasons: (
                        f"{what}: right after another manager's recovery reported ok, a manager's health says the "
                        f"database moved: {reasons[:3]}"), faults=labels)
            elif held and (report.backup or report.quarantined):
                # A new file is at the path: the other manager of this process must read it at once, not the
                # quarantined one until its own next look at the path (the recovering manager told it).
                self.judge_sees_other_processes(what + " (right after the recovery)", labels)
        finally:
            release_path_checks(held)
        self.last_healed = "corrupt"
        if not report.backup and not report.quarantined:
            # Nothing was installed (no usable backup): put the undamaged copy back and go on.
            self.check(13, not report.ok, "recovery installed nothing yet reported ok", faults=labels)
            for m in self.managers():
                m.close()
            fault.heal()
            self.restart_all()
            return False
        if own_names:
            # The fresh manager acknowledged nothing: its journal (never anchored on the damaged file, no record)
            # is no reason to report a loss, whatever else the recovery finds.
            self.check(13, not any(n in p for p in report.problems for n in own_names),
                       lambda: f"{what}: recovery reports a loss on account of its own journal, which took no write: "
                               f"{report.problems}", faults=labels)
        lost: set[str] | None = None
        said: int | None = None
        if report.ok:
            self.check_bank(13, what + " (reported ok)", labels)
        else:
            self.check(13, bool(report.problems), f"{what}: recovery failed without saying why", faults=labels)
            self.check(10, str(recoverer.health().status) != "healthy",
                       f"{what}: recovery was incomplete ({report.problems[:2]}) yet health is healthy", faults=labels)
            lost, said = self.judge_reported_loss(what, report.problems, labels)
        if not self.journal_damaged:
            # Every journal intact: recovery must bring everything back, whichever writer made it. One
            # exception, by design (reliability/redo.py, "The only writer"): at NORMAL/OFF a manager killed
            # while it held the claim to commit alone may have committed one transaction without a record,
            # so one sequence number is left out for it and recovery from an older backup reports one
            # transaction missing. Over-reporting is honest; it is accepted only when nothing acknowledged
            # is actually gone.
            conservative = (who == 2 and str(self.config.synchronous).upper() in ("NORMAL", "OFF")
                            and lost is not None and not lost and said == 1)
            # So with a writer process killed in its commit window alone (``solo_writer_process``): the sequence
            # left out for it makes recovery from an older backup report it missing and hold the later ones back,
            # counted (judged above), rather than replay them onto a state without it.
            conservative = conservative or (self.window_gap and lost is not None and said is not None
                                            and said >= max(1, len(lost)))
            self.check(13, report.ok or conservative,
                       f"{what}: recovery failed with every journal intact: {report.problems}", faults=labels)
        return True

    # -- (c) the database deleted --------------------------------------------------------------
    @rule(stopped=st.booleans(), write=st.booleans())
    def delete_database(self, stopped: bool, write: bool) -> None:
        """P10/P13: the database file deleted (under the running runtime, or while it was stopped)."""
        from reliability import DatabaseError

        had_peer = self.peer is not None
        if stopped:
            for m in self.managers():
                m.close()
            self.peer = None
            if not self.abandoned:
                self.check_claim_free("with the service stopped")
        # (No copy kept: the registry's disconnect_delete restores one at heal; here recovery must bring it back.)
        make_fault("disconnect", self.db_path, mode="delete", kind="disconnect_delete", counted_in=STATS).inject()
        self.fault_history.append("disconnect_delete")
        labels = ["disconnect_delete"]
        if stopped:
            self.db = self.open_runtime(self.config)  # auto_recover=false: an incident, never a fresh start
        status = str(self.db.health().status)
        self.check(10, status != "healthy", "the database file is gone, yet health is healthy", faults=labels)
        if write:
            self.serial += 1
            tid = f"m0-{self.serial}"
            try:
                self.db.run_in_transaction(bank_transfer, self.db, tid, 1, 2, 1)
                self.acked[tid] = (1, 2, 1)  # acknowledged: recovery below must bring it back
            except DatabaseError:
                self.maybe.add(tid)
        try:
            report = self.db.recover()
        except DatabaseError as exc:
            self.check(13, False, f"recover() of a deleted database raised {exc.kind}: {exc.detail}", faults=labels)
            return
        self.last_healed = "disconnect_delete"
        if report.ok:
            self.check_bank(13, "after recovering a deleted database (reported ok)", labels)
        elif not self.journal_damaged:
            self.check(13, False, f"recovering a deleted database failed with every journal intact: {report.problems}",
                       faults=labels)
        if stopped and had_peer:
            self.peer = self.open_runtime(self.config)

    # -- (d) the database replaced, its WAL moved with it, put back ---------------------------------
    # With a second manager open too: its connection (and the reader's) keep the original open throughout, so
    # the runtime's reopen after heal must not drop their POSIX locks (it did: a plain open()/close() of the
    # database file to read its page size; a worker process then deleted the -wal and -shm under them as the
    # "last user", and the second manager's next write left a malformed database).
    @rule(write_during=st.booleans())
    def replace_and_heal(self, write_during: bool) -> None:
        """P13: the file (and its ``-wal``) replaced by another database; healed after the runtime reopened it."""

        standin = os.path.join(self.dir, "standin.sqlite")
        if not os.path.exists(standin):
            conn = sqlite3.connect(standin, isolation_level=None)
            conn.execute("CREATE TABLE other (x)")
            conn.close()
        # Another reader (a report job) has the original open: the runtime's reconnect then cannot checkpoint
        # the original's WAL, so rows committed in it are still only there when the original comes back.
        reader = self.sqlite_module().connect(self.db_path, isolation_level=None)
        try:
            reader.execute("SELECT count(*) FROM xfer").fetchone()
            fault = make_fault("disconnect", self.db_path, mode="replace", replacement=standin,
                               kind="disconnect_replace", counted_in=STATS)
            fault.inject()
        except (FaultError, sqlite3.Error, self.sqlite_module().Error):
            reader.close()
            return
        try:
            self._replaced(fault, write_during)
        finally:
            reader.close()

    def _replaced(self, fault: Any, write_during: bool) -> None:
        from reliability import DatabaseError

        self.fault_history.append("disconnect_replace")  # (counted by the registry at its injection)
        labels = ["disconnect_replace"]
        if write_during:  # the runtime notices the new file and reopens it (the stand-in has no acct table)
            self.serial += 1
            tid = f"m0-{self.serial}"
            try:
                self.db.run_in_transaction(bank_transfer, self.db, tid, 1, 2, 1)
                self.acked[tid] = (1, 2, 1)
            except DatabaseError:
                self.maybe.add(tid)
        else:
            try:
                self.db.fetch_all("SELECT count(*) FROM sqlite_master")
            except DatabaseError:
                pass
        fault.heal()
        self.last_healed = "disconnect_replace"
        after = [f"after:{label}" for label in labels]
        self.check_bank(13, "after the original database was put back", after)
        self.serial += 1
        tid = f"m0-{self.serial}"
        try:  # a write checks which file the path names: the runtime serves the original again
            self.db.run_in_transaction(bank_transfer, self.db, tid, 2, 3, 1)
            self.acked[tid] = (2, 3, 1)
        except DatabaseError:
            self.maybe.add(tid)
        try:
            served = {r[0] for r in self.db.fetch_all("SELECT id FROM xfer")}
        except DatabaseError as exc:
            served = set()
            self.check(13, False, f"after the original was put back the runtime cannot read it: {exc.detail}",
                       faults=after)
        self.check(13, set(self.acked) <= served,
                   f"after the original was put back the runtime serves {len(served)} transfer(s), missing "
                   f"acknowledged ones: {sorted(set(self.acked) - served)[:5]}", faults=after)
        # The runtime reopened the original beside the reader (and the second manager) that never left it.
        self.check_locks_kept("after the runtime reopened the original put back", after)
        if self.peer is None:
            return
        # The second manager never left the original. Another process writes (when this example runs
        # processes), then the second manager: the database stays sound and keeps every acknowledged write.
        if self.use_processes:
            self.run_worker(1, None)
        self.serial += 1
        tid = f"m1-{self.serial}"
        try:
            self.peer.run_in_transaction(bank_transfer, self.peer, tid, 3, 4, 1)
            self.acked[tid] = (3, 4, 1)
        except DatabaseError:
            self.maybe.add(tid)
        self.check_bank(13, "after the second manager wrote to the original put back", after)
        try:  # on the runtime's build: another SQLite copy in this process would drop the runtime's locks
            with self.raw() as conn:
                verdict = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.Error as exc:
            verdict = [f"unreadable: {exc}"]
        self.check(13, verdict == ["ok"], lambda: "after the original was put back and written to by every "
                   f"writer the database fails quick_check: {verdict[:3]}", faults=after)

    # -- (f) the -wal removed on its own ------------------------------------------------------------
    # A crash-and-restart needs no connection of this process left on the file (they would share its
    # -shm index with the new runtime): only when no manager was abandoned in this example. (Under running
    # managers: remove_wal_live.)
    @precondition(lambda self: not self.abandoned and self.use_processes)
    @rule(shm=st.booleans(), count=st.integers(1, 3), kill=st.sampled_from(KILLS_BEFORE_REMOVED_WAL))
    def remove_wal(self, shm: bool, count: int, kill: str = "after_commit") -> None:
        """P13/P10: the ``-wal`` deleted while rows committed in it are not yet checkpointed.

        Every writer stopped, a worker process acknowledges ``count`` transfers and is killed -9 in the next one
        (``kill``: after its COMMIT, or after its journal record and before COMMIT; nothing checkpoints), the
        ``-wal`` (and maybe ``-shm``) is removed, the service starts again. A runtime that says ``healthy`` serves
        every acknowledged transfer; one that does not says how many committed transactions the database lacks
        (:meth:`judge_refusal_counts`), and ``recover()`` brings back every one the journals hold (never ``ok``
        without them).
        """
        from reliability import DatabaseError

        labels = ["wal_removed"]
        self.fault_history.append("wal_removed")
        STATS.record_fault("wal_removed")
        had_peer = self.peer is not None
        for m in self.managers():
            m.close()
        self.peer = None
        self.check_claim_free("before a worker process started")
        unknown = set(self.maybe)
        self.run_worker(count, kill)
        died_in = self.maybe - unknown  # (the transfer it was killed in: its journal record was written)
        self.worker_killed = True
        STATS.record_fault("worker_killed")
        try:  # a real removal, as a cleanup script does it (labelled as this rule's own kind)
            make_fault("disconnect", self.db_path, mode="remove_wal_shm" if shm else "remove_wal",
                       kind="wal_removed").inject()
        except FaultError:
            pass  # no -wal: the killed worker left nothing to lose
        self.db = self.open_runtime(self.config)
        self.peer = self.open_runtime(self.config) if had_peer else None
        statuses = [str(m.health().status) for m in self.managers()]
        if all(status == "healthy" for status in statuses):
            # Healthy means serving the truth: every acknowledged transfer, through the runtime and on disk.
            self.check_bank(13, "after the -wal was removed, with every manager healthy", labels)
            try:
                served = {r[0] for r in self.db.fetch_all("SELECT id FROM xfer")}
            except DatabaseError as exc:
                self.check(10, False, f"health is healthy after the -wal was removed, yet reading fails: "
                           f"{exc.detail}", faults=labels)
                return
            self.check(13, set(self.acked) <= served, lambda: "after the -wal was removed a healthy runtime "
                       f"serves without acknowledged transfers: {sorted(set(self.acked) - served)[:5]}", faults=labels)
            return
        self.judge_refusal_counts(died_in, labels)
        # Not healthy: it said so. Recovery brings every acknowledged transfer back (the journals hold them).
        try:
            report = self.db.recover()
        except DatabaseError as exc:
            self.check(13, False, f"recover() after the -wal was removed raised {exc.kind}: {exc.detail}",
                       faults=labels)
            return
        self.last_healed = "wal_removed"
        if report.ok:
            self.check_bank(13, "after recovering from a removed -wal (reported ok)", labels)
        elif not self.journal_damaged:
            self.check(13, False, f"recovering from a removed -wal failed with every journal intact: "
                       f"{report.problems}", faults=labels)
        if self.peer is not None:  # the second manager was refused too: it serves the recovered file again
            self.peer.close()
            self.peer = self.open_runtime(self.config)

    def judge_refusal_counts(self, died_in: set[str], labels: list[str]) -> None:
        """P13: a manager that does not say ``healthy`` after the ``-wal`` was removed says how many committed
        transactions the database lacks, those in doubt named apart (README: after a ``-wal`` removed before a
        checkpoint "the database is refused with the sequence numbers", and a last record without its committed
        mark, when the database provably lost commits before it, "is *possibly* missing (named apart in the
        refusal, and replayed ...)").

        Every transfer missing on disk that a journal holds must be accounted for: each acknowledged one, and, when
        one of those is missing (the database provably lost commits before it), the one the worker was killed in
        (its record was written before it died, after COMMIT or before it). The count is a floor (the runtime may
        count transactions the machine did not make). Judged while every journal is whole."""
        state = self.read_bank()
        if self.journal_damaged or isinstance(state, str):
            return
        on_disk = set(state[0])
        lost = set(self.acked) - on_disk
        missing = sorted(lost | (died_in - on_disk if lost else set()))
        for who, m in enumerate(self.managers()):
            health = m.health()
            if str(health.status) == "healthy":
                continue
            text = " ".join(health.reasons)
            certain = sum(count for count, _ranges in loss_statements(text))
            in_doubt = len(set(re.findall(r"sequence (\d+) of journal slot", text)))
            self.check(13, certain + in_doubt >= len(missing), lambda who=who, text=text, certain=certain,
                       in_doubt=in_doubt: (
                f"after a worker process was killed in a transfer and the -wal was removed, manager {who} refuses "
                f"the database but accounts for {certain} committed transaction(s) and {in_doubt} that may have "
                f"committed, while {len(missing)} transfer(s) the journals hold are missing ({missing[:5]}, the "
                f"worker died in {sorted(died_in)}): {text}"), faults=labels)

    # -- (g) the -wal removed under live managers and workers ---------------------------------------
    # A cleanup script removes the -wal (maybe the -shm too) while the managers of this process and a worker
    # process have the database open (tests/test_wal_removed_live.py measures what SQLite and the runtime do).
    # Not after a kill-style restart in this example: the abandoned managers' handles stand for a killed
    # process, yet they would hold the removed WAL open like live ones.
    @precondition(lambda self: not self.abandoned)
    @rule(shm=st.booleans(), first=st.sampled_from(FIRST_DRAWN), count=st.integers(1, 3))
    def remove_wal_live(self, shm: bool, first: str, count: int, checkpoint: bool = True) -> None:
        """P13/P10: the ``-wal`` (and maybe the ``-shm``) removed while every writer has the database open.

        Each in-process manager commits a transfer first (so the WAL holds acknowledged frames); in examples
        with processes (while the example's one worker process is not spent) a worker process acknowledges
        ``count`` transfers and waits, its manager open. Then the
        fault (``disconnect_remove_wal[_shm]``), then ``first`` acts before anyone else: a manager writes or
        reads, asks for health, a new worker process starts (and is refused while the frames are held
        elsewhere, or writes), the paused worker goes on (or is killed -9), the service restarts, or another
        application writes with plain SQLite (on the state of the last checkpoint when the -shm is gone; it takes
        the -shm with the -wal unless ``count`` is 1, see ``FIRST_DRAWN``). Then
        every manager looks. A manager that says ``healthy`` serves every acknowledged transfer; one that
        does not says why, and ``recover()`` brings every acknowledged transfer back (or says how many are
        missing when a journal was cut earlier). The fault's checks are labelled with it while a handle of
        this process may still hold the removed file; the last one (every acknowledged transfer on disk, the
        transfer invariant), made when every manager has looked, is ``after:`` it. ``checkpoint`` (``foreign_write``):
        checkpoint first, so the other application finds the tables (False: see
        :meth:`another_application_opens_after_removal`).
        """
        from reliability import DatabaseError

        if first == "foreign_write" and count > 1:
            # (``count`` counts nothing for another application's one row: it leans this actor toward the -shm removed
            # too, the split history, five draws in six; with the -shm kept it is drawn as ``count == 1``.)
            shm = True
        kind = "disconnect_remove_wal_shm" if shm else "disconnect_remove_wal"
        labels = [kind, *self.extra_labels()]
        if first == "foreign_write" and checkpoint:
            # The other application writes on the state of the last checkpoint: one now, before the managers' frames
            # below, gives it the tables to write in (without one since the start it only met "no such table", and
            # what the managers' handle does to its commit went unjudged).
            with self.raw() as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        for who, m in enumerate(self.managers()):  # every manager holds the WAL, with frames of its own in it
            self.transfer_through(who, m, 1, 2, 1)
        worker = None
        foreign = None  # (``foreign_write``: the row the other application committed)
        if shm and first in ("newcomer", "worker_goes_on", "worker_killed"):
            # With the -shm removed, another process's runtime is what meets the removed index: a newcomer (a short
            # process of its own, mostly refused) runs whether or not the example's worker process is spent, and
            # stands in for that worker when it is (before session 28 the case waited for a process example with
            # its worker unspent, and one default run in three met it).
            if first == "newcomer" or not (self.use_processes and self.processes < MAX_PROCESSES):
                first = "newcomer"
        # (``foreign_write`` runs a plain-SQLite script, no runtime: as cheap as the other-process reads every example
        # makes, so it needs no worker process of the example.)
        elif first in ("newcomer", "worker_goes_on", "worker_killed") and not (
                self.use_processes and self.processes < MAX_PROCESSES):
            first = "write"  # (the example's worker process is spent: a real process costs ~0.5 s)
        if first in ("worker_goes_on", "worker_killed"):
            worker = self.start_paused_worker(count)
            if worker is None:
                first = "write"
        fault = make_fault(kind, self.db_path, counted_in=STATS)
        try:
            fault.inject()
        except FaultError:  # no -wal to remove (a failed recovery left the file closed): nothing happened
            self.finish_worker(worker, 0)
            return
        self.fault_history.append(kind)
        if first == "worker_killed":
            assert worker is not None
            worker.kill()  # its frames are in the removed WAL, which the managers here still hold
            self.finish_worker(worker, 0)
            worker = None
            self.worker_killed = True
            STATS.record_fault("worker_killed")
            labels.append("worker_killed")
        elif first == "worker_goes_on":
            self.finish_worker(worker, count)
            worker = None
        elif first == "newcomer":
            self.run_worker(count, None, "tolerant")
        elif first == "restart":
            self.restart_all()
        elif first == "foreign_write":
            self.serial += 1
            tid = f"f-{self.serial}"
            self.maybe.add(tid)  # another application's row: the runtime never acknowledged it
            done = run_script(FOREIGN_WRITER, [self.db_path, self.config.sqlite_module, tid], timeout=60)
            foreign = tid if "wrote" in done.stdout else None
        elif first == "health":
            self.db.health()  # judged below with the others
        elif first == "read":
            try:
                served = {r[0] for r in self.db.fetch_all("SELECT id FROM xfer")}
            except DatabaseError:
                pass  # a refusal is an answer
            else:
                self.check(13, set(self.acked) <= served, lambda: "right after the -wal was removed a read "
                           f"serves without acknowledged transfers: {sorted(set(self.acked) - served)[:5]}",
                           faults=labels)
        else:
            who = 1 if first == "peer_write" and self.peer is not None else 0
            self.transfer_through(who, self.writer(who), 2, 3, 1)
        self.finish_worker(worker, count)  # the paused worker goes on now, if it has not yet
        self.judge_after_removed_wal(labels, foreign)
        fault.heal()  # (restores nothing: the runtime had to deal with it)
        self.last_healed = kind
        what = "after the -wal was removed under live writers and every manager looked"
        if shm:
            # Seen from another process first: a connection of this process shares the index the managers had
            # (removed or not), another process builds its own from the files at the path. (With the -shm kept
            # both read the same index: the in-process read below sees what another process would.)
            self.check_bank(13, what + " (read by another process)", [f"after:{kind}"], self.read_bank_outside())
            if self.judge_other_processes:
                self.judge_sees_other_processes(what, [f"after:{kind}"])
        self.check_bank(13, what, [f"after:{kind}"])

    @precondition(lambda self: not self.abandoned and not self.opened_beside_removal)
    @rule()
    def another_application_opens_after_removal(self) -> None:
        """P13: the ``-wal`` and ``-shm`` removed under the live managers while the tables (or the pages a write
        begins with) live only in the removed WAL, then another application opens the database (plain SQLite,
        another process: it finds the older state, a new ``-wal`` and ``-shm``) and writes or fails to.

        ``remove_wal_live``'s ``foreign_write`` with the ``-shm`` removed and no checkpoint first. The managers
        refuse the split history, and ``recover()`` in their process must still install the recovered database
        without losing an acknowledged transfer, seen by another process too (judged as ``remove_wal_live``
        judges). Every connection this process opens now reads through the removed WAL's index, so recovery's
        fence against writers (``recovery.writers_fenced``) meets a disk I/O error here and must fence from a
        process of its own (``reliability/durability/outside_fence.py``): before it did, recover() raised ioerr.
        (``remove_wal_live`` checkpoints before its ``foreign_write``, so the other application has tables to
        write in, and drew that case with the -shm removed in about one default run in four: the helper fence
        was run by no default run. Once per example: after a recovery the tables are in the file.)"""
        self.opened_beside_removal = True
        self.remove_wal_live(True, "foreign_write", 1, checkpoint=False)

    #: Held out of the main job in session 25 (it failed once in 12 runs): a read through a second manager right
    #: after one manager's recovery served the quarantined file for the reads' identity-check interval. Since
    #: session 26 a manager that installs a file tells the others of this process (``replaced_here``), and the
    #: check is back (tests/test_replaced_here.py holds the runtime to it; its bite test turns a defect on).
    judge_other_processes = True
    #: Whose turn it is at the next recovery with another manager open: that manager's health (True) or its read
    #: of another process's commit (see :meth:`recover_and_judge`).
    peer_health_turn = False

    def judge_sees_other_processes(self, what: str, labels: list[str]) -> None:
        """Another process commits a row (plain SQLite, its own index built from the files at the path): every
        manager of this process that answers a read serves it. A handle of this process left open on the removed
        ``-shm`` keeps that index alive, and every connection opened here since shares it (SQLite keeps one index per
        database file in a process): this process would read a WAL through an index that no longer describes it,
        blind to the other writers' commits (and writing over their frames)."""
        from reliability import DatabaseError

        self.serial += 1
        tid = f"f-{self.serial}"
        self.maybe.add(tid)  # another application's row: the runtime never acknowledged it
        done = run_script(FOREIGN_WRITER, [self.db_path, self.config.sqlite_module, tid], timeout=60)
        if "wrote" not in done.stdout:
            return  # (the file refused the other process: nothing committed to look for)
        for who, m in enumerate(self.managers()):
            try:
                served = {r[0] for r in m.fetch_all("SELECT id FROM xfer WHERE id = ?", (tid,))}
            except DatabaseError:
                continue  # a refusal is an answer
            self.check(13, tid in served, lambda who=who: (
                f"{what}: another process committed transfer {tid}, and manager {who} of this process serves a "
                "database without it (it reads through the removed -shm's index)"), faults=labels)

    def transfer_through(self, who: int, db: Any, src: int, dst: int, amount: int) -> None:
        """One transfer through manager ``who`` (``db``), booked as acknowledged or as of unknown outcome."""
        from reliability import DatabaseError

        self.serial += 1
        tid = f"m{who}-{self.serial}"
        try:
            returned = db.run_in_transaction(bank_transfer, db, tid, src, dst, amount)
        except DatabaseError:
            self.maybe.add(tid)
            self.seq_trail = None
            return
        self.acked[tid] = (src, dst, amount)
        # A write given to fetch_one/fetch_all gives its RETURNING rows (their docstrings: "of a write with
        # ``RETURNING``: its rows"): the transfer's one row, its id; another answer misreports the write it made.
        self.check(13, returned is None or returned == [(tid,)], lambda: (
            f"transfer {tid} booked its row with INSERT … RETURNING id through fetch_one/fetch_all, which returned "
            f"{returned!r} instead of its one row [({tid!r},)]"))
        self.judge_sequence_order(who, db, tid)

    def judge_sequence_order(self, who: int, db: Any, tid: str) -> None:
        """P13: an acknowledged transaction's redo sequence follows every one acknowledged before it on the same
        file (reliability/redo.py, ``allocate_sequence``: "the number allocated here follows every transaction it
        committed", a manager committing alone included): recovery replays the journals in sequence order, and the
        balances are written as values, so a later transfer numbered below an earlier one is undone by it at replay.
        Judged between transfers of this process on one file (its inode), with every journal whole and working."""
        journal = getattr(db, "redo_journal", None)
        seq = getattr(journal, "seq", None)
        try:
            ino = os.stat(self.db_path).st_ino
        except OSError:
            ino = None
        trail = getattr(self, "seq_trail", None)
        if (not isinstance(seq, int) or ino is None or getattr(journal, "error", None) is not None
                or self.journal_damaged):
            self.seq_trail = None
            return
        if trail is not None and trail[0] == ino:
            self.check(13, seq > trail[1], lambda: (
                f"transfer {tid} through manager {who} was acknowledged after transfer {trail[2]} (redo sequence "
                f"{trail[1]}), yet its redo sequence is {seq}: recovery replays in sequence order and would apply it "
                "first, and the earlier one's balances over it"), faults=[NO_FAULT])
        self.seq_trail = (ino, max(seq, trail[1]) if trail is not None and trail[0] == ino else seq, tid)

    def start_paused_worker(self, count: int) -> Any:
        """A worker process that acknowledges ``count`` transfers and waits with its manager open (None: it
        could not start one)."""
        proc = start_script(WORKER, self.worker_args(count, None, "pause"))
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "paused":
                return proc
            self.take_in(line)
        self.finish_worker(proc, 0)
        return None

    def finish_worker(self, proc: Any, more: int) -> None:
        """Let a paused worker do ``more`` transfers and exit; take in what it acknowledged."""
        if proc is None:
            return
        try:
            out, err = proc.communicate(f"go {more}\n" if more else "", timeout=120)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker is a harness failure
            proc.kill()
            raise
        for line in out.splitlines():
            self.take_in(line)
        if proc.returncode not in (0, -9):
            # Not a verdict on the runtime: the worker could not do its job (report why).
            raise RuntimeError(f"worker process failed ({proc.returncode}): {err[-2000:]}")

    def judge_after_removed_wal(self, labels: list[str], foreign: str | None = None) -> None:
        """Every manager looks: a healthy one serves every acknowledged transfer; an unhealthy one says why,
        and a recovery brings every acknowledged transfer back (or reports what it cannot).

        ``foreign``: the row another application committed (plain SQLite, another process, now gone) after the
        removal. A manager that says healthy serves it too: the runtime may refuse a split history, never settle
        it without a word (its handle on the removed WAL, closed as the file's last, checkpoints the old frames
        over the other application's commit and deletes that WAL: ``ConnectionManager._others_hold_the_file``)."""
        from reliability import DatabaseError

        unhealthy = []
        for who, m in enumerate(self.managers()):
            health = m.health()
            if str(health.status) != "healthy":
                self.check(10, bool(health.reasons), f"manager {who} is {health.status} after the -wal was removed "
                           "and gives no reason", faults=labels)
                unhealthy.append(m)
                continue
            try:
                served = {r[0] for r in m.fetch_all("SELECT id FROM xfer")}
            except DatabaseError as exc:
                self.check(10, False, f"manager {who} is healthy after the -wal was removed, yet reading fails: "
                           f"{exc.detail}", faults=labels)
                continue
            missing = sorted(set(self.acked) - served)
            self.check(13, not missing, f"after the -wal was removed manager {who} says healthy and serves without "
                       f"acknowledged transfers: {missing[:5]}", faults=labels)
            self.check(13, foreign is None or foreign in served, lambda who=who: (
                f"after the -wal was removed another application committed row {foreign} and closed; manager {who} "
                "says healthy and serves a database without it (nothing refused, nothing reported)"), faults=labels)
        if not unhealthy:
            return
        # Refused (commits missing at the path, or nothing could tell): recovery by a refused manager.
        recoverer = next((m for m in unhealthy if m.connections.refused is not None), unhealthy[0])
        try:
            report = recoverer.recover()
        except DatabaseError as exc:
            self.check(13, False, f"recover() after the -wal was removed raised {exc.kind}: {exc.detail}",
                       faults=labels)
            return
        what = "recovering after the -wal was removed under live writers"
        if not report.ok:
            self.check(13, bool(report.problems), f"{what} failed without saying why", faults=labels)
            self.judge_reported_loss(what, report.problems, labels)
            self.check(13, self.journal_damaged, f"{what} failed with every journal intact: {report.problems}",
                       faults=labels)
        # A manager still refused serves the recovered file again once restarted (its refusal is its own).
        if self.db.connections.refused is not None:
            self.db.close()
            self.db = self.open_runtime(self.config)
        if self.peer is not None and self.peer.connections.refused is not None:
            self.peer.close()
            self.peer = self.open_runtime(self.config)

    # -- (e) transient errors during maintenance ---------------------------------------------------
    def lock_fault(self, path: str) -> Any:
        """A ``locked`` fault (EXCLUSIVE) on ``path``, from a holder every SQLite build in play sees."""
        # Backups are read with the stdlib sqlite3: a lock from another SQLite build in this process is
        # invisible to it, so other builds hold it from a subprocess.
        holder = "thread" if self.config.sqlite_module == "sqlite3" else "subprocess"
        return make_fault("locked", path, mode="exclusive", holder=holder)

    @rule(what=st.sampled_from(("recover_verify", "backup", "integrity")), moment=st.booleans())
    def transient_in_maintenance(self, what: str, moment: bool) -> None:
        """P11/P12/P13: a lock or a one-off I/O error during maintenance is never a verdict."""
        from reliability import DatabaseError

        db = self.db
        verified_before = {b.path for b in db.backups() if b.verified}
        if what == "integrity":
            try:
                fault = make_fault("io_error", self.db_path, ops="read", nth=1)
                fault.inject()
                kind = "io_error"
            except FaultError:  # no VFS shim on this build: a lock (seen by readers in rollback modes)
                fault, kind = self.lock_fault(self.db_path).inject(), "locked"
        elif what == "recover_verify":
            newest = db.durability.backups.newest_verified() if hasattr(db, "durability") else None
            if newest is None:
                return
            fault, kind = self.lock_fault(newest.path).inject(), "locked"
        else:
            fault, kind = self.lock_fault(self.db_path).inject(), "locked"
        self.faults[kind] = fault
        self.fault_history.append(kind)
        STATS.record_fault(kind)
        if moment:
            self.heal_after_sleeps([kind], 1)
        labels = [kind]
        try:
            if what == "integrity":
                try:
                    db.check_integrity()
                except DatabaseError:
                    pass  # no verdict: allowed
                self.check(11, db.monitor.integrity_ok is not False,
                           f"a transient {kind} during the integrity check marked a sound database damaged: "
                           f"{db.monitor.integrity_problems}", faults=labels)
            elif what == "backup":
                try:
                    info = db.backup()
                    self.check(12, info.verified, f"a transient {kind} left the new backup unverified", faults=labels)
                except DatabaseError:
                    pass  # reported as an error: allowed
            else:
                try:
                    report = db.recover()
                except DatabaseError:
                    report = None
                self.clear_sleep_hooks()
                self.heal_all()
                if report is not None and report.ok:
                    self.check_bank(13, f"after a recovery that met a transient {kind} (reported ok)", labels)
        finally:
            self.clear_sleep_hooks()
            self.heal_all()
        wrongly = [b.path for b in db.backups() if b.path in verified_before and not b.verified
                   and sound(b.path)]
        self.check(12, not wrongly, f"a transient {kind} during {what} marked sound backup(s) unverified: {wrongly}",
                   faults=labels)
        if what == "recover_verify":
            # The lock is gone: a recovery now must find the backup and bring everything back.
            try:
                report = db.recover()
            except DatabaseError as exc:
                self.check(13, False, f"recovery after a transient {kind} raised {exc.kind}: {exc.detail}",
                           faults=[f"after:{kind}"])
                return
            if report.ok:
                self.check_bank(13, f"after a recovery that followed a transient {kind}", [f"after:{kind}"])
            elif not self.journal_damaged:
                self.check(13, False, f"after a transient {kind} recovery keeps failing: {report.problems}",
                           faults=[f"after:{kind}"])


def sound(path: str) -> bool:
    """True when ``path`` passes ``quick_check`` on a fresh read-only connection."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def entry_starts(path: Any) -> list[int]:
    """Byte offsets where the transaction records (``(G, ops)``, not marks) of a format-3 journal start."""
    import pickle

    with open(path, "rb") as fh:
        data = fh.read()
    starts = []
    ends = record_ends(path)
    for start, end in zip(ends, ends[1:], strict=False):
        body = data[start + 12:end]
        try:
            record = pickle.loads(body)  # (the machine's own journal: plain values only)
        except Exception:  # noqa: BLE001 - a record this helper cannot read is no transaction record
            continue
        if isinstance(record, tuple) and record and isinstance(record[0], int) and not isinstance(record[0], bool):
            starts.append(start)
    return starts


def record_ends(path: Any) -> list[int]:
    """Byte offsets where the records of a format-3 journal end (after its 64-byte header block)."""
    import struct

    with open(path, "rb") as fh:
        data = fh.read()
    offset, ends = 64, [64]
    while offset + 12 <= len(data):
        length = struct.unpack_from("<I", data, offset)[0]
        if offset + 12 + length > len(data):
            break
        offset += 12 + length
        ends.append(offset)
    return ends


def queue_file_pending(path: str) -> dict[str, int]:
    """Key -> line of every write waiting in a write-queue file (``put`` without ``done``/``failed``), read as a
    new process reads it: nothing of the runtime's own view, a torn last line ignored."""
    import json

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return {}
    waiting: dict[str, int] = {}
    for n, raw in enumerate(data[:data.rfind(b"\n") + 1].splitlines()):
        try:
            event = json.loads(raw)
            op, key = event["op"], event["key"]
        except (ValueError, KeyError, TypeError):
            continue
        if op == "put":
            waiting[key] = n
        else:
            waiting.pop(key, None)
    return waiting
