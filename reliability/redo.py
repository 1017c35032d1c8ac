"""Durable redo journals of committed write transactions since the last verified backup.

Recovery restores the newest verified backup and replays the journals on top of it, so a
write the runtime acknowledged is not lost when the database file is damaged later, whichever
process made it.

Design (several processes on one database, the usual deployment)
-----------------------------------------------------------------
**One journal file per manager, merged at recovery by a global commit sequence that each
transaction records in the database.** Every outermost write transaction allocates the next
sequence number ``G`` *inside the transaction, under SQLite's write lock*: it
reads ``max(seq)`` of ``_reliability_redo_writers`` and upserts ``(slot, G = max + 1)``. Because
SQLite lets one writer commit at a time, ``G`` is a total order across every process, it
commits or rolls back with the transaction, and the database always says which ``G`` it holds
and, per journal slot, the last ``G`` that slot committed.

Why not one shared journal under a lock: every commit of every process would queue on one
file lock and one ``fdatasync`` (the SQLite write lock already orders the transactions; a
second global lock only adds waiting); re-anchoring after a backup (a new file renamed into
place) would leave the other processes appending to the unlinked old file, the very loss this
fixes; and one process dying mid-append would tear the file for everyone. With one file per
manager each file has exactly one writer (an exclusive ``flock``), a torn tail belongs to the
process that crashed, and a process re-anchors only its own file.

Slots: ``<db>.redo`` is slot 0, ``<db>.redo.1`` … ``<db>.redo.63`` the others; a manager takes
the lowest slot whose lock it gets (a slot left by a dead process is taken over after its
records were reconciled). Recovery reads every slot.

Commit protocol (``DatabaseManager._journaled_commit``): allocate ``G``; write the record
``(G, statements)`` and the file's high-water mark; make it durable; ``COMMIT``; append the
*committed mark* ``("committed", G)``; acknowledge only when the record and the commit are durable.
The mark costs one ``pwrite`` and no fsync of its own (the next record's ``fdatasync`` covers it): a
process killed after it keeps it (the page cache outlives the process), so the last record of a
killed process tells by itself whether the caller may have been told (marked: committed, whatever
the database says later) or not (unmarked: it died before COMMIT, or after it and before anyone was
told). Only a power loss can drop a mark that was written; an unmarked record is then judged as
before marks (below). A ``COMMIT`` that fails gets a durable ``("abort", G)`` marker
before the error is returned, so replay never applies a write the application was told had
failed. A crash between the record and ``COMMIT`` leaves a record SQLite never committed (an
*orphan*; the next transaction reuses ``G``): slot ``s``'s record ``G`` is committed exactly
when ``G <= writers[s]`` in the database, so every journal whose owner is gone is reconciled
against the database when a manager opens (orphans get abort markers before anything else
runs), and recovery, when the damaged database still tells, drops them too. Only a file's last
record can be one; whether it is (the database may have lost commits, a ``-wal`` removed) is
decided in one place, :func:`last_record_verdict`, its committed mark first.

The only writer (synchronous NORMAL/OFF; issue #17). The sequence row costs one more WAL page per
commit, which at NORMAL (no fsync per commit) is most of a small write's price. A manager whose
journal is not fsynced takes the *claim* (an exclusive ``flock`` on ``<db>.redo.solo``; at most one
manager holds it). Its next commit allocates as above and also writes the row ``(SOLO_SLOT, -(s+1))``;
from then on its commits skip the sequence row: ``G`` is its own last plus one, and the record,
flagged *alone*, is written **after** COMMIT (nothing to overlap without an fsync) inside a commit
window (byte 1 of ``<db>.redo.solo``, set through a shared mapping). So every record flagged alone is committed, and the
database's sequence lags by exactly the records flagged alone after the slot's row. It holds because
every other reader of the sequence first *publishes* it (:func:`publish_solo`, under SQLite's write
lock): another manager's allocation, and any backup (:func:`prepare_backup`; by a manager without a
journal too). Publishing sets the revocation byte of the claim file (the owner reads it under SQLite's
write lock before each commit, so it never commits alone after that), waits for the owner's commit
window, reads its journal and writes the slot's last committed ``G``. An owner killed inside its
window may have committed a transaction without a record: when the owner is gone without a clean
close one sequence number is left out for it, so a recovery from an older backup reports a
transaction missing rather than replaying later writes onto a state without it; the startup backup
of an unclean start covers it. Reconcile and recovery never take a record flagged alone for an orphan.
At FULL/EXTRA nothing changes: the record must be fsynced before the commit is acknowledged, so it is written
before COMMIT and its flush overlaps SQLite's, and every commit records its sequence (an orphan is
possible there, and the row is what tells it apart).

A missing tail is detected, never mistaken for "never acknowledged": the file starts with a
64-byte header block holding a high-water mark (the ``G`` of the file's last live record, in
two alternating checksummed copies) rewritten in place with every record, so the same
``fdatasync`` covers both. Recovery requires one committed record for every ``G`` from the
backup's sequence up to the highest of: every file's high-water mark, the sequence the damaged
database still records (when readable) and the highest ``G`` this manager saw. Anything
missing (a truncated or deleted file, a damaged record) makes recovery report ``ok=False`` with
how many transactions and which sequence ranges; replay stops at the first gap so the database
is a state that existed, and says how many later transactions it held back.

File format: the header block (``DBFREDO3``, two high-water copies ``(count, G, crc32)``), then
records, each a 12-byte frame (u32 little-endian: body length, the length inverted, so a
damaged length is never mistaken for a torn tail, and crc32 of the body) and a body: a pickle
(protocol 5) of plain values only (``int``, ``float``, ``str``, ``bytes``, ``bool``, ``None``,
tuples, lists, dicts). The reader's unpickler resolves no class but those constructors, so a
journal can never make recovery run code. Records:

* header ``("redo", 3, B, from_empty, slot)``: this file continues from the backup whose
  sequence is ``B`` (or from an empty database when ``from_empty``);
* entry ``(G, ops)`` with ``ops`` a list of ``(sql, params, many)``: one transaction; ``(G, ops, 1)``:
  the same, written after its COMMIT by a manager committing alone;
* ``("committed", G)``: right after entry ``G``, its COMMIT succeeded (written before the caller is
  told, not fsynced by itself, not counted in the high-water mark: a mark lost with power leaves a
  record without its mark, never a journal that looks cut short). Files written before marks have
  none and read as before; a runtime before marks reads a marked file as damaged at its first mark
  (it refuses, it does not guess);
* ``("abort", G)``: the entry ``G`` just before it never committed;
* ``("closed", G)``: written by a clean close (its absence at open means a crash).

Format 2 files (no header block, one manager per database) are still read.

Why pickle and not JSON lines: it is the cheapest faithful encoding in the standard library for
SQLite's value types (bytes, floats incl. inf, big ints), and the journal is written on every
commit before the caller is told; benchmarks/README.md has the measurements.

Guarantee, honestly stated:

* synchronous FULL/EXTRA: the record is fsynced before the commit is acknowledged, so an
  acknowledged write survives a process crash *and* power loss (on storage that honours fsync).
* synchronous NORMAL/OFF: the record is written (in the OS page cache) before the ack, so
  it survives a process crash but **not** power loss or a kernel crash.
* Writes made through any ``DatabaseManager`` with the journal on are journaled (the connection
  ``db.transaction()`` yields included: it routes through ``db.execute``); writes made
  on ``db.connection`` directly, by other programs, or by a manager with ``redo_journal=False``
  are not and cannot be replayed.
* Replay re-executes the SQL: non-deterministic functions (``random()``, ``datetime('now')``,
  ``randomblob``) produce new values. Savepoints opened with raw ``SAVEPOINT`` SQL through
  ``db.execute`` are not tracked (use ``db.transaction()``, which is).
"""

from __future__ import annotations

import builtins
import io
import logging
import mmap
import os
import pickle
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (sqlite_errors: any build's errors, since the runtime's connection may be sqlean or pysqlite3)
from .errors import DatabaseError, ErrorKind, classify, sqlite_errors
from .files import fsync_dir  # re-exported: backup and recovery take it from here
from .health import retryable_in_maintenance  # the one rule: a lock or a one-off I/O error is no answer

try:  # POSIX only; elsewhere two managers are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("reliability.redo")

_FORMAT = 3
_STATEMENT_KINDS: dict[str, str] = {}  # sql text -> "ddl" | "commit" | "rollback" | "other"
_DDL_WORDS = ("CREATE", "DROP", "ALTER")
#: Journal files per database (slot 0 is ``<db>.redo``, slot n ``<db>.redo.<n>``).
MAX_SLOTS = 64
#: slot -> last sequence that slot committed; ``max(seq)`` is the database's sequence. Slot -1
#: holds a sequence set by restore/replay (what a backup or recovery brought the file up to).
WRITERS_TABLE = "_reliability_redo_writers"
_MAGIC = b"DBFREDO3"
_HWM = struct.Struct("<QQI")  # write count, sequence, crc32 of the two
_HWM_AT = (8, 8 + _HWM.size)
_HEAD_SIZE = 64
#: Row ``(SOLO_SLOT, -(s + 1))``: slot ``s`` commits alone without writing its sequence (see
#: "The only writer" in the module docstring). Negative, so ``max(seq)`` never sees it.
SOLO_SLOT = -2
# Two statements, not one INSERT … SELECT … RETURNING: measured here the RETURNING form costs twice as
# much per commit (benchmarks/README.md).
# The third column counts rows whose seq is no integer: the column is INTEGER NOT NULL, so only damage puts one
# there (a page zeroed by a truncated file reads as NULLs), and max() would skip it and reuse sequence numbers.
_TOP_SQL = (f"SELECT coalesce(max(seq), 0), (SELECT seq FROM {WRITERS_TABLE} WHERE slot = {SOLO_SLOT}), "
            f"total(typeof(seq) <> 'integer') FROM {WRITERS_TABLE}")
_CLAIM_SQL = f"INSERT OR REPLACE INTO {WRITERS_TABLE} (slot, seq) VALUES (?, ?)"
_SOLO_SQL = f"SELECT seq FROM {WRITERS_TABLE} WHERE slot = {SOLO_SLOT}"
_UNSOLO_SQL = f"DELETE FROM {WRITERS_TABLE} WHERE slot = {SOLO_SLOT}"


def slot_path(base: str | os.PathLike[str], slot: int) -> Path:
    """The journal file of ``slot`` for the journal base path ``<db>.redo``."""
    base = Path(base)
    return base if slot == 0 else base.with_name(f"{base.name}.{slot}")


def journal_files(base: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(slot, path)`` of every journal file that exists for the base path ``<db>.redo``, by slot.

    A file counts as :func:`os.path.lexists` would say (a link is listed, never followed). Read from
    the directory at each call, never cached: another process may take a new slot at any time.
    """
    base = Path(base)
    try:
        # One listing of the directory instead of a probe per possible slot (64 ``pathlib`` probes cost
        # ~7 ms a call here, and recovery and startup call this several times).
        with os.scandir(base.parent) as entries:
            names = [entry.name for entry in entries]
    except FileNotFoundError:  # dbfault: no fault (no directory: no journal)
        return []
    except OSError:  # dbfault: no fault (a directory that can be searched but not listed: probe each slot)
        return [(slot, slot_path(base, slot)) for slot in range(MAX_SLOTS) if os.path.lexists(slot_path(base, slot))]
    slots = [slot for slot in (_slot_of(name, base.name) for name in names) if slot is not None]
    return [(slot, slot_path(base, slot)) for slot in sorted(slots)]


def _slot_of(name: str, base_name: str) -> int | None:
    """The slot whose :func:`slot_path` is ``name`` (``<base>`` 0, ``<base>.<n>`` n in 1..63), else None."""
    if name == base_name:
        return 0
    digits = name[len(base_name) + 1:] if name.startswith(base_name + ".") else ""
    # Only the spelling slot_path writes: "app.db.redo.07" or "app.db.redo.64" is some other file.
    if digits.isascii() and digits.isdigit() and digits[0] != "0" and int(digits) < MAX_SLOTS:
        return int(digits)
    return None


@dataclass
class JournalState:
    """What :func:`read_journal` found in a journal file."""

    base: int = 0
    from_empty: bool = False
    entries: list[tuple[int, list[Any]]] = field(default_factory=list)
    last_seq: int = 0
    clean: bool = False
    header: bool = False
    problems: list[str] = field(default_factory=list)
    #: Format 3: the high-water mark (``G`` of the file's last live record; 0 = none yet).
    hwm: int | None = None
    hwm_count: int = 0
    slot: int | None = None
    #: Sequences whose entry was marked aborted.
    aborted: list[int] = field(default_factory=list)
    #: Sequences written by a manager committing alone: after their COMMIT, so never orphans.
    alone: set[int] = field(default_factory=set)
    #: Sequences whose record is followed by its committed mark (written after its COMMIT succeeded, before
    #: the caller was told): committed, whatever the database says now.
    marked: set[int] = field(default_factory=set)
    #: Where the last complete record ends (a torn tail after it is cut off on reopen).
    valid_end: int = 0
    format: int = 0


# -- the database side: the global sequence -----------------------------------------------------
def ensure_sequence_table(conn: sqlite3.Connection) -> None:
    """Create the writers table (autocommit), seeded from a sequence a restore or replay recorded."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (WRITERS_TABLE,)).fetchone():
        return
    conn.execute(f"CREATE TABLE IF NOT EXISTS {WRITERS_TABLE} (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    try:
        row = conn.execute("SELECT last_seq FROM _reliability_redo_state WHERE id = 1").fetchone()
    except sqlite_errors():  # dbfault: no fault (no such table: never backed up or restored)
        row = None
    conn.execute(f"INSERT OR IGNORE INTO {WRITERS_TABLE} (slot, seq) VALUES (-1, ?)", (row[0] if row else 0,))


def allocate_sequence(conn: sqlite3.Connection, slot: int, journal: RedoJournal | None = None) -> int:
    """Inside the open write transaction: the next global sequence, recorded as ``slot``'s last.

    When a manager was committing alone (the ``SOLO_SLOT`` row), its sequence is published first
    (:func:`publish_solo`), so the number allocated here follows every transaction it committed.
    """
    top, solo, damaged = conn.execute(_TOP_SQL).fetchone()
    if damaged:
        raise writers_table_damaged(f"is damaged: {int(damaged)} row(s) without an integer sequence")
    if solo is not None:
        if journal is None:
            raise RuntimeError("a manager commits alone on this database: allocate through its RedoJournal")
        top = max(top, publish_solo(conn, -solo - 1, journal.base_path, journal))
    seq = top + 1
    conn.execute(_CLAIM_SQL, (slot, seq))
    return int(seq)


def writers_table_damaged(what: str) -> DatabaseError:
    """The error for a writers table whose content no writer could have put there: damage (CORRUPT).

    Read as it is, such a table reuses sequence numbers (found by benchmarks/recovery_fuzz.py: a file truncated
    by a tenth read its writers row as NULL, the next commit took sequence 1 again, and a later recovery
    stopped replaying at the repeated number, losing an acknowledged row) or raises a bare TypeError. As a
    statement's CORRUPT it goes where every met damage goes: the verdict, and an automatic recovery.
    """
    return DatabaseError(ErrorKind.CORRUPT, f"the redo writers table {WRITERS_TABLE} {what}")


def _sequence(value: Any, slot: Any) -> int:
    """A writers row's sequence, checked: damage when it is no integer (see :func:`writers_table_damaged`)."""
    if type(value) is not int:  # (bool is no SQLite value; an int subclass never comes from the driver)
        raise writers_table_damaged(f"is damaged: slot {slot!r} has sequence {value!r}")
    return value


def publish_solo(conn: sqlite3.Connection, owner: int, base: str | os.PathLike[str],
                 journal: RedoJournal | None = None) -> int:
    """Inside an open write transaction: write the sequence of the slot that committed alone, end its run.

    ``owner`` is that slot, ``base`` the journal base path. When ``journal`` is the owner itself,
    its sequence is what it knows; otherwise the owner is told to stop (:meth:`_SoloClaim.revoke`),
    its commit window is waited for, and its journal read: every record of a run alone was written
    after its COMMIT, so the last one is the last committed transaction — unless the owner died between a COMMIT and its
    record. That transaction was never acknowledged, but the database holds it: when the owner is
    gone without closing cleanly one sequence number is left out for it, so a recovery from an
    older backup reports it missing instead of replaying later writes onto a state without it.
    Returns the sequence written.
    """
    if journal is not None and owner == journal.slot and journal.solo_mine:
        last = journal.seq
    else:
        row = conn.execute(f"SELECT seq FROM {WRITERS_TABLE} WHERE slot = ?", (owner,)).fetchone()
        # Holding the claim ourselves means its owner released it: it is not running any more.
        running = journal is None or journal.claim is None
        own = journal is not None and owner == journal.slot
        # For this manager's own slot the run alone was its previous owner's: whether that one closed cleanly is
        # what the file said when this manager took it, not what it says now (an abort marker this manager wrote
        # since makes the file read as not closed, and a sequence was then left out for nobody: recovery later
        # reported it missing and held back every transaction after it).
        last = _last_committed_alone(Path(base), owner, _sequence(row[0], owner) if row else 0,
                                     own=own, running=running,
                                     clean=journal.was_clean if own and journal is not None else None)
    conn.execute(_CLAIM_SQL, (owner, last))
    conn.execute(_UNSOLO_SQL)
    if journal is not None:
        journal.solo_conn = None
        journal.solo_mine = False
        journal.seen = max(journal.seen, last)
    return last


def _last_committed_alone(base: Path, owner: int, recorded: int, *, own: bool, running: bool,
                          clean: bool | None = None) -> int:
    if running:
        claim = _SoloClaim(base)
        claim.revoke()
        claim.wait_window()  # the owner is not between a COMMIT and its record now (and cannot start one)
    path = slot_path(base, owner)
    # Whether the owner still runs is asked before its file is read: an owner that stops writes its clean close
    # before it releases the lock, so a file read after the lock was seen free is its last word. Asked after the
    # read, an owner that closed in between looked dead without closing, and a sequence was left out for nobody.
    alive = running and not own and _locked_by_someone(path)
    state = read_journal(path)
    # A record of a run alone was written after its COMMIT: committed. Any other record is
    # committed when the database says so (its last one may be an orphan: see reconcile).
    done = [seq for seq, _ops in state.entries if seq in state.alone or seq <= recorded]
    # (A damaged file: its high-water mark is the best bound; recovery reports the damage.)
    last = max([state.base, recorded, *done[-1:], *([state.hwm or 0] if state.problems else [])])
    if not alive and not (state.clean if clean is None else clean):
        last += 1  # it may have died between a COMMIT and its record (see publish_solo)
        log.warning("redo journal slot %d committed alone and stopped without closing; sequence %d is "
                    "left out for a transaction it may have committed without a record", owner, last)
    return last


def set_sequence(conn: sqlite3.Connection, seq: int, slot: int = -1) -> None:
    """Record that the database holds everything up to ``seq`` (replay, restore)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {WRITERS_TABLE} (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    conn.execute(f"INSERT OR REPLACE INTO {WRITERS_TABLE} (slot, seq) VALUES (?, ?)", (slot, seq))
    if slot == -1:  # a restored or replayed file: whoever committed alone in it is not writing to it now
        conn.execute(_UNSOLO_SQL)


#: Slots at or below this mark a manager running *without* a journal on a journaled database:
#: ``(slot, seq)`` = (its id, the sequence when it opened). Removed at its clean close.
UNJOURNALED_SLOTS = -1000


def register_unjournaled(conn: sqlite3.Connection) -> int | None:
    """Record in the database that a manager without a journal writes to it (None: no journal is in use)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (WRITERS_TABLE,)).fetchone():
        return None
    slot = UNJOURNALED_SLOTS - int.from_bytes(os.urandom(4), "little")
    conn.execute(f"INSERT OR REPLACE INTO {WRITERS_TABLE} (slot, seq) "
                 f"SELECT ?, coalesce(max(seq), 0) FROM {WRITERS_TABLE} WHERE slot > ?", (slot, UNJOURNALED_SLOTS))
    return slot


def unregister_unjournaled(conn: sqlite3.Connection, slot: int) -> None:
    """The manager without a journal closed cleanly: its writes all lie at or before the sequence now.

    Stored as the negated sequence (a closed writer); a backup at or past it covers them all.
    """
    conn.execute(f"UPDATE {WRITERS_TABLE} SET seq = -(SELECT coalesce(max(seq), 0) FROM {WRITERS_TABLE} "
                 "WHERE slot > ?) WHERE slot = ?", (UNJOURNALED_SLOTS, slot))


def unjournaled_writers(committed: dict[int, int] | None, backup_seq: int | None) -> list[str]:
    """What managers without a journal may have written that a backup at ``backup_seq`` does not hold."""
    out = []
    for slot, seq in (committed or {}).items():
        if slot > UNJOURNALED_SLOTS:
            continue
        if seq >= 0:
            out.append(f"a manager without a redo journal (redo_journal=false) has been writing to this database "
                       f"since sequence {seq} and did not close")
        elif backup_seq is None or -seq > backup_seq:
            out.append(f"a manager without a redo journal (redo_journal=false) wrote to this database up to "
                       f"sequence {-seq}, after the backup")
    return sorted(set(out))


def committed_by_slot(conn: sqlite3.Connection) -> dict[int, int] | None:
    """slot -> last committed sequence, or None when the database has no writers table (or cannot say).

    :raises: the driver's error for a lock or an I/O error that may pass: that is no answer, and "cannot
        say" would be taken as one (nothing to compare, no orphan to mark); the caller's retry policy decides.
        :class:`DatabaseError` ``CORRUPT`` for a row no writer could have written (:func:`writers_table_damaged`).
    """
    try:
        rows = conn.execute(f"SELECT slot, seq FROM {WRITERS_TABLE}").fetchall()
    except sqlite_errors() as exc:  # (no such table, or a file too damaged to read the schema: the caller falls back)
        if retryable_in_maintenance(exc):
            raise
        if classify(exc) is ErrorKind.CORRUPT and "no such table" not in str(exc):
            # (the table is there, its pages are not readable)
            raise writers_table_damaged(f"cannot be read: {exc}") from exc
        return None
    return {int(s): _sequence(q, s) for s, q in rows}


def read_committed(path: str | os.PathLike[str], module: Any = sqlite3) -> dict[int, int] | None:
    """:func:`committed_by_slot` of a database file opened read-only (None when unreadable: it may be damaged).

    ``module``: the SQLite build the caller's runtime uses, whenever the file may be the live database.
    Closing a file descriptor drops every POSIX lock the process holds on that file; SQLite defers its
    own closes while its connections hold locks, but another build (the stdlib's beside pysqlite3) is
    another library that knows nothing of them, and its close would drop the runtime's locks (the
    writer fence of a recovery included).
    """
    try:
        conn = module.connect(f"file:{Path(path).resolve().as_posix()}?mode=ro", uri=True, timeout=1.0)
    except sqlite_errors():  # dbfault: no fault (a missing or unopenable file: the caller falls back)
        return None
    try:
        return committed_by_slot(conn)
    except Exception:  # noqa: BLE001  # dbfault: no fault (damaged file: the caller falls back to the journals)
        return None
    finally:
        conn.close()


class RedoJournal:
    """The redo journal of one manager (the ``db._redo`` hook object).

    :param path: the journal base path (``config.redo_journal_file``); the file used is the
        first free slot (:attr:`path`, :attr:`slot`).
    :param fsync: fsync each record before the commit is acknowledged (synchronous FULL/EXTRA).
    :param sync_marks: make each committed mark durable too before the acknowledgement (synchronous
        EXTRA): see :meth:`mark_committed`.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, sync_marks: bool = False) -> None:
        self.base_path = Path(path)
        self.path = Path(path)
        self.slot = 0
        self.fsync = fsync
        self.sync_marks = sync_marks
        #: The sequence of the last transaction this journal committed (or its base).
        self.seq = 0
        #: The highest global sequence this manager saw (allocated or recorded): recovery needs
        #: the journals to reach at least this far.
        self.seen = 0
        self.base = 0
        self.from_empty = False
        #: The file ended without a clean-close record when opened: a crash happened.
        self.was_clean = False
        #: The sequence of the last record of a file opened without a clean close (the process that held the
        #: slot before died): see :meth:`inherited_last`.
        self._inherited: int | None = None
        #: Why the journal stopped protecting writes (a failed write), or None.
        self.error: str | None = None
        #: Writes that went ahead without a record since the journal was opened or last anchored (a commit while it
        #: took none, a statement that committed on its own outside it): see :meth:`lost_writes`.
        self.unrecorded = 0
        self.owned = False
        self._fd: int | None = None
        self._end = 0
        self._hwm_count = 0
        self._live_before = 0  # hwm to restore when the in-flight record is aborted
        self._pending: list[tuple[str, Any, bool]] = []
        self._marks: dict[int, int] = {}
        self._encoder = _Encoder()  # reused by write_record(), which runs under the manager's lock
        #: The claim to commit alone (synchronous NORMAL/OFF only), or None: see "The only writer".
        self.claim: _SoloClaim | None = None
        #: The connection this journal commits alone on (None: the next commit writes its sequence).
        self.solo_conn: Any = None
        #: The ``SOLO_SLOT`` row in the database is this journal's own (its sequence is :attr:`seq`).
        self.solo_mine = False
        self._entering: Any = None
        #: ``(solo_conn, solo_mine, seen)`` before the open transaction's allocation (see :meth:`allocate`).
        self._unpublish: tuple[Any, bool, int] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> JournalState:
        """Take the first free slot, read what it holds, position for appends."""
        last_error: OSError | None = None
        for slot in range(MAX_SLOTS):
            path = slot_path(self.base_path, slot)
            try:
                fd = _open_journal(path)
            except OSError as exc:  # dbfault: no fault (a slot path unusable: a setup error, reported)
                last_error = exc
                if slot == 0:
                    raise
                continue
            if not _try_lock(fd):
                os.close(fd)
                continue
            state = read_journal(path)
            self.path, self.slot = path, slot
            self._adopt(fd, state)
            if not self.fsync:
                self._claim_alone()
            return state
        self.error = (f"all {MAX_SLOTS} redo journal slots of {str(self.base_path)!r} are in use"
                      + (f" ({last_error})" if last_error else "") + "; writes made through this manager "
                      "are not journaled")
        log.error("%s", self.error)
        return JournalState()

    def _adopt(self, fd: int, state: JournalState) -> None:
        self._fd = fd
        self.owned = True
        self.seq = state.last_seq
        self.seen = max(self.seen, state.last_seq, state.hwm or 0)
        self.base = state.base
        self.from_empty = state.from_empty
        self.was_clean = state.clean
        self._inherited = state.entries[-1][0] if state.entries and not state.clean else None
        self._hwm_count = state.hwm_count
        self._live_before = state.entries[-1][0] if state.entries else 0
        if state.format == _FORMAT:
            self._end = state.valid_end
            if os.fstat(fd).st_size > self._end:
                os.ftruncate(fd, self._end)  # a torn tail: never acknowledged, and not a place to append after
        else:
            self._end = -1  # no header block: reset() must anchor it before the first record

    @classmethod
    def for_synchronous(cls, path: str | os.PathLike[str], level: str) -> RedoJournal:
        """The journal for SQLite's ``synchronous`` level: records flushed under FULL and EXTRA, marks under EXTRA."""
        journal = cls(path)
        journal.follow_synchronous(level)
        return journal

    def follow_synchronous(self, level: str) -> None:
        """Flush what ``synchronous`` promises from the next commit on (at start, and when a reload changes it).

        FULL and EXTRA: every record is made durable before its commit is acknowledged; EXTRA also its
        committed mark (what tells an acknowledged last record from an orphan after a power loss that a
        removed ``-wal`` followed; see :func:`last_record_verdict`), one flush after COMMIT instead of one
        beside it, as SQLite's own EXTRA adds a sync after the commit. NORMAL and OFF: nothing is flushed.
        Committing alone (no sequence row per commit, the record after COMMIT: see "The only writer") is
        for unflushed records only: a running journal that starts flushing gives its claim back (the next
        commit publishes its run), and one that stops claims it at its next start, not now.
        """
        level = level.upper()
        fsync = level in ("FULL", "EXTRA")
        if fsync and not self.fsync and self.claim is not None:
            claim, self.claim = self.claim, None
            claim.close()
        self.fsync = fsync
        self.sync_marks = level == "EXTRA"

    def _claim_alone(self) -> None:
        if fcntl is None:  # pragma: no cover - without flock a second claimant could not be refused
            return
        claim = _SoloClaim(self.base_path)
        try:
            if claim.claim():
                self.claim = claim
                return
        except OSError as exc:  # dbfault: no fault (the journal directory refusing a file: commit as usual)
            log.warning("redo journal: cannot claim %s (%s); every commit records its sequence", claim.path, exc)
        claim.close()

    def close(self, *, clean: bool = True) -> None:
        """Write the clean-close record and release the journal.

        ``clean=False``: release it (its flock, its slot) without that record, as a crash would leave it: for a
        manager whose start failed half-way, which never checked the journals against the database nor anchored.
        A record saying "closed cleanly" would make the next owner skip both (and the evidence of the crash before).
        """
        claim, self.claim = self.claim, None
        if claim is not None:
            claim.close()  # (the database may still name this slot alone: the next writer reads this file)
        self.solo_conn = None
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _SYNCER.drain(fd)
        try:
            if clean and self._end >= 0:
                os.pwrite(fd, _Encoder().record(("closed", self.seq)), self._end)
                if self.fsync:
                    os.fsync(fd)
        except OSError as exc:
            log.warning("could not mark the redo journal closed: %s", exc)
        finally:
            os.close(fd)
            self.owned = False

    # -- the hook API (called under the manager's lock) ----------------------------------------
    def capture(self, sql: str, params: Any, many: bool) -> None:
        """A write statement ran inside the current transaction."""
        self._pending.append((sql, params, many))

    def write_record(self, seq: int, *, sync: bool = True, alone: bool = False) -> bool:
        """Write the captured transaction as record ``seq`` (and the high-water mark); fsync when ``sync``.

        ``alone``: written after its COMMIT by a manager committing alone (flagged, never an orphan).

        Returns False (and sets :attr:`error`) when the journal cannot protect it: the caller
        commits anyway (the journal is then broken until a backup re-anchors it; health and
        recovery say so). Raises nothing.
        """
        fd = self._fd
        if fd is None or self.error is not None or self._end < 0:
            # Unprotected: whether COMMIT then succeeds is not told to discard(), so take any publication
            # made by this transaction's allocation as written (at worst a sequence left out, see discard).
            self._unpublish = None
            self.unrecorded += 1  # (counted whether or not COMMIT then succeeds: the safe side)
            return False
        try:
            record = self._encoder.record((seq, self._pending, 1) if alone else (seq, self._pending))
            os.pwrite(fd, record, self._end)
            self._hwm_count += 1
            os.pwrite(fd, _hwm_bytes(self._hwm_count, seq), _HWM_AT[self._hwm_count & 1])
            if sync and self.fsync:
                _datasync(fd)
        except Exception as exc:
            self._fail(f"redo journal write failed at seq {seq}: {exc}")
            return False
        self._end += len(record)
        self._inherited = None  # (the file's last record is this manager's now)
        return True

    def mark_committed(self, seq: int) -> None:
        """Record ``seq``'s COMMIT succeeded: append its committed mark, before the caller is told.

        No fsync of its own here (one ``pwrite``): a process killed after this keeps it (the page cache
        outlives the process), and the next record's ``fdatasync`` makes it durable. Under EXTRA
        (:attr:`sync_marks`) the commit path flushes it before the acknowledgement (:meth:`start_sync`).
        It is what tells the last record of a killed process from an orphan when the database lost it too
        (see :func:`last_record_verdict`). Not counted in the high-water mark: a mark lost with power leaves
        a record judged as before marks, never a journal that looks cut short. Raises nothing.
        """
        fd = self._fd
        if fd is None or self.error is not None or self._end < 0:
            return
        try:
            mark = self._encoder.record(("committed", seq))
            os.pwrite(fd, mark, self._end)
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (the journal file failing right after a COMMIT)
            # The record and COMMIT stand; without its mark the record is judged as before marks existed. A part
            # written must not stay for a reader (the next record is written at the same place).
            log.warning("redo journal: could not mark sequence %d committed: %s", seq, exc)
            try:
                os.ftruncate(fd, self._end)
            except OSError:  # dbfault: no fault (the next record's write reports a journal that keeps failing)
                pass
            return
        self._end += len(mark)

    def start_sync(self) -> _Ticket | None:
        """Start making the records written so far durable on the writer thread (None: nothing to wait for).

        The caller runs SQLite's COMMIT meanwhile (both release the GIL), then waits on the
        ticket: the acknowledgement waits for the longer of the two flushes, not their sum.
        """
        fd = self._fd
        if fd is None or not self.fsync:
            return None
        return _SYNCER.submit(fd)

    def committed(self, seq: int) -> None:
        """Record ``seq`` is committed in SQLite: the transaction is over."""
        self._pending = []
        self._marks.clear()
        self.seq = seq
        self.seen = max(self.seen, seq)  # (only a committed sequence: an aborted one may never exist)
        self._live_before = seq
        self._unpublish = None
        if self._entering is not None:  # this commit wrote the SOLO_SLOT row: the next ones may skip theirs
            self.solo_conn, self.solo_mine, self._entering = self._entering, True, None

    # -- committing alone (synchronous NORMAL/OFF; see "The only writer") ----------------------
    def alone(self, conn: Any) -> bool:
        """May the open transaction on ``conn`` commit without writing its sequence? (Under SQLite's write lock.)"""
        claim = self.claim
        return (self.solo_conn is conn and claim is not None and self.error is None and self._end >= 0
                and not claim.revoked())

    def allocate(self, conn: Any) -> int:
        """The next global sequence for the open transaction (written to the database), see :func:`allocate_sequence`.

        When this journal holds the claim and nobody revoked it, the transaction also writes the
        ``SOLO_SLOT`` row: once it commits, the following commits on ``conn`` skip their sequence row.
        """
        # Publishing a run alone (allocate_sequence -> publish_solo) changes this journal's state as if its
        # rows were written; they are written only if COMMIT succeeds. Keep the state from before, so a
        # failed COMMIT (abort/discard) puts it back: otherwise this live manager would later take its
        # own run for a dead owner's and leave a sequence number out (a false "missing" at recovery).
        self._unpublish = (self.solo_conn, self.solo_mine, self.seen)  # (set first: the allocation may fail midway)
        seq = allocate_sequence(conn, self.slot, self)
        claim = self.claim
        if claim is not None and self.error is None and self._end >= 0 and not claim.revoked():
            conn.execute(_CLAIM_SQL, (SOLO_SLOT, -(self.slot + 1)))
            self._entering = conn
        return seq

    def commit_alone(self, conn: Any) -> None:
        """COMMIT the open transaction on ``conn`` alone: no sequence row, the record written after COMMIT.

        Nobody else allocates a sequence meanwhile (they publish this journal's first, waiting for
        the commit window held here from before COMMIT until the record is written). A crash in the
        window leaves a committed transaction without a record: never acknowledged, and accounted for
        by :func:`publish_solo`. Without fsync (NORMAL/OFF) there is no flush to overlap, so writing
        the record after COMMIT costs nothing; it is what makes every such record a committed one.
        """
        seq = self.seq + 1
        claim = self.claim
        assert claim is not None
        claim.enter()
        try:
            try:
                conn.execute("COMMIT")
            except BaseException:
                self.discard()  # nothing was written for it
                raise
            if self.write_record(seq, sync=False, alone=True):
                self.committed(seq)
            else:  # committed in SQLite without a record: the number is used (published with the run)
                self.discard()
                self.seq = seq
                self.seen = max(self.seen, seq)
        finally:
            claim.leave()


    def abort(self, seq: int) -> None:
        """COMMIT of record ``seq`` failed: make a durable abort marker before the error is returned."""
        self._pending = []
        self._marks.clear()
        self._entering = None
        self._restore_unpublished()
        fd = self._fd
        if fd is None or self.error is not None or self._end < 0:
            return
        try:
            record = _Encoder().record(("abort", seq))
            os.pwrite(fd, record, self._end)
            self._hwm_count += 1
            os.pwrite(fd, _hwm_bytes(self._hwm_count, self._live_before), _HWM_AT[self._hwm_count & 1])
            _datasync(fd)  # always: a marker lost to power loss would let replay apply a failed write
        except Exception as exc:  # dbfault: no fault (journal I/O failing right after a failed COMMIT)
            self._fail(f"the redo journal could not mark failed transaction {seq} as aborted: {exc}; "
                       "recovery might replay it")
            return
        self._end += len(record)

    def _fail(self, why: str) -> None:
        # The commit decides by itself; raising now would make callers retry a write that may have
        # succeeded. Record the gap instead: health turns degraded until a verified backup covers it.
        self.error = why
        log.error("%s; writes are unprotected until the next verified backup", why)
        fd = self._fd
        if fd is not None and self._end >= 0:
            try:
                os.ftruncate(fd, self._end)  # nothing half-written stays for a reader to trip on
            except OSError:  # dbfault: no fault (the write already failed; the error is recorded)
                pass

    def commit(self, seq: int | None = None) -> None:
        """Write and commit the captured writes as one record (standalone use, without a database)."""
        if not self._pending:
            return
        seq = self.seq + 1 if seq is None else seq
        if self.write_record(seq):
            self.committed(seq)
        else:
            self._pending = []
            self._marks.clear()

    def discard(self) -> None:
        """The transaction rolled back (or committed without a record): forget what it captured.

        What its allocation changed in this journal's state is put back (a rolled-back transaction wrote
        no row) unless the journal is broken (:attr:`error`): then the transaction may have committed
        without its record, and taking the publication as done is the safe side (at worst a sequence
        left out, reported missing, never a slot's row moved back); a backup re-anchors the journal.
        """
        self._pending.clear()
        self._marks.clear()
        self._entering = None
        if self.error is None:
            self._restore_unpublished()
        self._unpublish = None

    def _restore_unpublished(self) -> None:
        before, self._unpublish = self._unpublish, None
        if before is not None:
            self.solo_conn, self.solo_mine, self.seen = before

    def savepoint(self, level: int) -> None:
        """A savepoint at nesting ``level`` began: remember where its writes start."""
        self._marks[level] = len(self._pending)

    def rollback_savepoint(self, level: int) -> None:
        """The savepoint at ``level`` rolled back: drop the writes captured since it began."""
        mark = self._marks.pop(level, None)
        if mark is not None:
            del self._pending[mark:]

    @property
    def pending(self) -> int:
        """Captured statements not yet committed."""
        return len(self._pending)

    # -- reconciling with the database ---------------------------------------------------------
    def reconcile(self, committed: dict[int, int]) -> list[int]:
        """Mark this file's records the database never committed as aborted (at an unclean start).

        ``committed`` is :func:`committed_by_slot` of the live database. Returns the sequences marked.
        """
        fd = self._fd
        if fd is None or self._end < 0:
            return []
        marked = _reconcile_fd(fd, self.path, self.slot, committed, self.fsync, read_journals(self.base_path))
        state = read_journal(self.path)
        self._adopt_positions(state)
        # What open() took from the file counted the orphans; they never existed (the next transaction
        # reuses their sequence), so recovery must not look for them (found by the commitpath machine).
        self.seq = max(state.base, self._live_before)
        self.seen = max(state.last_seq, state.hwm or 0, committed.get(self.slot, 0))
        return marked

    def inherited_last(self) -> bool:
        """Is the last record of this manager's file still the one a process that died left there?

        Then it may be an orphan like the last record of any stopped journal (a startup that found commits
        missing left the file as it was), and recovery must not vouch for it as this manager's own. Else
        this manager's slot counts as alive (its own records are committed or aborted).
        """
        if self._inherited is None or not self.owned:
            return False
        entries = read_journal(self.path).entries
        return bool(entries) and entries[-1][0] == self._inherited

    def owner_slots(self) -> tuple[frozenset[int], frozenset[int]]:
        """``(alive, gone)`` for :func:`plan_replay`: this manager's slot, and whose last record it holds."""
        if not self.owned:
            return frozenset(), frozenset()
        if self.inherited_last():
            return frozenset(), frozenset({self.slot})
        return frozenset({self.slot}), frozenset()

    def _adopt_positions(self, state: JournalState) -> None:
        self._end = state.valid_end
        self._hwm_count = state.hwm_count
        self._live_before = state.entries[-1][0] if state.entries else 0
        self.seq = max(self.seq, self._live_before)

    # -- anchoring -----------------------------------------------------------------------------
    def reset(self, base: int, *, from_empty: bool = False) -> None:
        """Start a new journal continuing from sequence ``base`` (a verified backup covers up to it).

        Written to a temporary file, fsynced and renamed over the old one, so a crash leaves
        either the old journal or the new one.
        """
        if self._fd is None and not self.owned:
            # Anchored before open(): take a slot first so two managers never share a file.
            self.open()
        tmp = self.path.with_name(self.path.name + ".tmp")
        _remove_stale(tmp)
        head = _Encoder().record(("redo", _FORMAT, base, from_empty, self.slot))
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            if not _try_lock(fd):  # pragma: no cover - nobody else can know the .tmp name yet
                pass
            os.write(fd, _header_block(1, 0) + head)
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:  # dbfault: no fault (the journal directory failing mid-reset; re-raised)
            os.close(fd)
            raise
        fsync_dir(self.path.parent)
        old, self._fd = self._fd, fd
        self.owned = True
        if old is not None:
            _SYNCER.drain(old)  # a flush still queued for it must not hit a closed (or reused) descriptor
            os.close(old)
        self._end = _HEAD_SIZE + len(head)
        self._hwm_count = 1
        self._live_before = 0
        self.base = base
        self.seq = max(self.seq, base)
        self.seen = max(self.seen, base)
        self.from_empty = from_empty
        self.error = None
        self.unrecorded = 0  # (the verified backup this journal continues from holds them)
        self._inherited = None
        self.solo_conn = None  # (a new file, maybe a new database: the next commit records its sequence)

    @property
    def anchored(self) -> bool:
        """True while this manager holds its journal file and the file has had its header (adopted with one at
        :meth:`open`, or written by :meth:`reset`). A file whose anchoring backup failed at startup never got one:
        then a file without a header says nothing was lost from it, not that it was deleted or replaced."""
        return self.owned and self._end >= 0

    def lost_writes(self) -> str | None:
        """What a recovery must report on this journal's account: :attr:`error`, or None when no write can be missing.

        A journal that never had its header (its anchoring at startup failed, or was put off by a lock) takes no
        records, and its error warns about the writes to come: until a write went ahead without a record
        (:attr:`unrecorded`) nothing of this manager's is missing from any journal. Reported anyway, recovery said
        ``ok=False`` with every acknowledged write back (found with a second manager started on a file read through a
        removed WAL's index, and on any damaged file, as ``reliability recover`` starts one beside the running
        service: its anchoring backup fails ``integrity_check``). The error of a journal that had its header is about
        writes already made (a failed record or flush, a statement outside it): always reported.
        """
        if self.error is None or (self.owned and self._end < 0 and not self.unrecorded):
            return None
        return self.error

    def size(self) -> int:
        """Bytes in the journal file (0 when absent)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def prepare_backup(conn: Any, base: str | os.PathLike[str], journal: RedoJournal | None = None) -> None:
    """Before a backup copies the database: publish the sequence of a manager committing alone.

    A copy taken while the database lags behind such a manager's commits would carry a sequence
    older than its content, and a recovery from it would replay those commits twice. Run outside a
    transaction (it opens and commits its own); nothing to do when nobody commits alone.
    """
    try:
        row = conn.execute(_SOLO_SQL).fetchone()
    except sqlite_errors():  # dbfault: no fault (no writers table: never journaled, nothing to publish)
        return
    if row is None:
        return
    # publish_solo updates the journal as if the row were written; a failed COMMIT writes nothing, so
    # the journal must go on committing alone (otherwise a later backup takes it for a dead owner and
    # leaves a sequence number out: a false "missing transaction" at the next recovery).
    saved = (journal.solo_conn, journal.solo_mine, journal.seen) if journal is not None else None
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(_SOLO_SQL).fetchone()
        if row is not None:
            publish_solo(conn, -_sequence(row[0], SOLO_SLOT) - 1, base, journal)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if journal is not None and saved is not None:
            journal.solo_conn, journal.solo_mine, journal.seen = saved
        raise


class _SoloClaim:
    """The right to commit alone: an exclusive ``flock`` on ``<base>.solo``, and the commit window.

    Byte 0 of that file is the revocation flag: a manager that must allocate a sequence (or back up)
    while another commits alone sets it, under SQLite's write lock, before publishing the owner's
    sequence; the owner reads it (through a shared mapping: no system call) under SQLite's write lock
    before each commit, so it never commits alone after a revocation. Only a manager that gets the
    lock clears it, i.e. when no other manager holds the claim.

    Byte 1 is the commit window: the owner sets it from before each COMMIT until its record is written
    (two stores into the mapping; a ``flock`` pair here cost ~11 µs per commit, a tenth of a small
    write at NORMAL). A publisher holds SQLite's write lock, so the owner cannot *open* a window while
    it publishes (a window opens inside a write transaction); it only waits for a window already open
    to close, or for the owner to die in it (its claim lock free), and then reads the owner's journal
    complete up to its last COMMIT.
    """

    #: How long a publisher sleeps between two looks at an open window (the owner is between a COMMIT
    #: and one ``pwrite``: microseconds, unless it is descheduled).
    POLL = 0.0002

    def __init__(self, base: Path) -> None:
        self.path = base.with_name(base.name + ".solo")
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def claim(self) -> bool:
        fd = _open_journal(self.path)
        if not _try_lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        # Nobody else holds the claim: an earlier revocation is void, and a window left open by an owner
        # that died in it is closed (publishing accounted for it).
        os.pwrite(fd, b"\0\0", 0)
        self._map = mmap.mmap(fd, 2)
        return True

    def revoked(self) -> bool:
        m = self._map
        return m is None or m[0] != 0

    def revoke(self) -> None:
        fd = _open_journal(self.path)
        try:
            os.pwrite(fd, b"\1", 0)
        finally:
            os.close(fd)

    def enter(self) -> None:
        """The owner, under SQLite's write lock, before COMMIT: the window is open."""
        m = self._map
        if m is not None:
            m[1] = 1

    def leave(self) -> None:
        """The owner wrote the record of its last COMMIT (or knows there is none): the window is closed."""
        m = self._map
        if m is not None:
            m[1] = 0

    def wait_window(self) -> None:
        """A publisher, under SQLite's write lock: wait until the owner is outside its commit window.

        Returns at once when no window is open, and when the owner is gone (nobody holds the claim).
        """
        fd = _open_journal(self.path)
        try:
            while os.pread(fd, 2, 0)[1:2] == b"\1":
                if _try_lock(fd, shared=True):  # nobody holds the claim: the owner died in its window
                    return
                time.sleep(self.POLL)
        finally:
            os.close(fd)  # (releases the shared lock when it was taken)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None


class _Ticket:
    """One request to the writer thread: ``wait()`` returns once the fd is flushed (or the error)."""

    __slots__ = ("fd", "done", "error")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done = threading.Lock()
        self.done.acquire()
        self.error: BaseException | None = None

    def wait(self) -> BaseException | None:
        """Block until flushed; the OSError when the flush failed, else None."""
        self.done.acquire()
        return self.error


class _Syncer:
    """The writer thread: ``fdatasync`` for the journals of this process, off the committing thread.

    Requests queued while a flush runs are served by one flush per file (group commit): every
    record written before the flush began is covered by it.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[_Ticket] = []
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, fd: int) -> _Ticket:
        ticket = _Ticket(fd)
        with self._cv:
            if self._thread is None or self._pid != os.getpid():  # (a forked child has no such thread)
                self._pid = os.getpid()
                self._queue = []
                self._thread = threading.Thread(target=self._run, name="reliability-redo-sync", daemon=True)
                self._thread.start()
            self._queue.append(ticket)
            self._cv.notify()
        return ticket

    def drain(self, fd: int) -> None:
        """Wait until every flush queued for ``fd`` so far is done (before the descriptor is closed)."""
        if self._thread is not None and self._pid == os.getpid():
            self.submit(fd).wait()

    def _run(self) -> None:
        cv = self._cv
        while True:
            with cv:
                while not self._queue:
                    cv.wait()
                batch, self._queue = self._queue, []
            errors: dict[int, BaseException | None] = {}
            for ticket in batch:
                if ticket.fd not in errors:
                    try:
                        _datasync(ticket.fd)
                        errors[ticket.fd] = None
                    except BaseException as exc:  # noqa: BLE001  # dbfault: no fault (fdatasync failing: handed over)
                        errors[ticket.fd] = exc
                ticket.error = errors[ticket.fd]
                ticket.done.release()


_SYNCER = _Syncer()
if hasattr(os, "register_at_fork"):
    # A child forked while the writer thread held its lock would wait on it for ever: start afresh.
    os.register_at_fork(after_in_child=lambda: _SYNCER.__init__())  # type: ignore[misc]


def reconcile_orphans(base: str | os.PathLike[str], committed: dict[int, int], *,
                      fsync: bool = True) -> dict[int, list[int]]:
    """Mark aborted the uncommitted records of every journal whose owner is gone (its lock is free).

    Run when a manager opens, before anything else: a process killed between writing its
    record and COMMIT left a record SQLite rolled back, and a later transaction reused its
    sequence. Returns slot -> sequences marked.
    """
    out: dict[int, list[int]] = {}
    journals = read_journals(base)  # (the evidence for last_record_verdict, read once)
    for slot, path in journal_files(base):
        try:
            fd = os.open(path, os.O_RDWR | _NOFOLLOW)
        except OSError:  # dbfault: no fault (a file vanishing between listing and opening: nothing to do)
            continue
        try:
            if not _try_lock(fd):
                continue  # a live manager owns it (or it is ours)
            marked = _reconcile_fd(fd, path, slot, committed, fsync, journals)
            if marked:
                out[slot] = marked
        finally:
            os.close(fd)  # releases the lock
    return out


def _reconcile_fd(fd: int, path: Path, slot: int, committed: dict[int, int], fsync: bool,
                  journals: Mapping[int, tuple[JournalState, bool]]) -> list[int]:
    state = read_journal(path)
    if state.format != _FORMAT or state.clean:
        return []
    last = committed.get(slot, 0)
    verdict = last_record_verdict(slot, {**journals, slot: (state, True)}, committed)
    if verdict in (LAST_COMMITTED, LAST_UNSURE):
        # The database lost commits (find_lost_commits refuses it at startup, so this runs only when they were
        # lost since): the last record may be an acknowledged transaction. Nothing is marked, so a recovery
        # still finds every record as it was.
        log.error("redo journal %s: its last record (sequence %d) %s committed and the database lacks it; "
                  "left as it is for recovery", path, state.entries[-1][0],
                  "was" if verdict == LAST_COMMITTED else "may have")
        return []
    # (A record written alone came after its COMMIT: committed even where the database lags behind.)
    orphans = [seq for seq, _ops in state.entries if seq > last and seq not in state.alone]
    live = [seq for seq, _ops in state.entries if seq <= last or seq in state.alone]
    if not orphans and not (state.hwm or 0) > max(live[-1] if live else 0, last):
        return []
    end = state.valid_end
    count = state.hwm_count
    # (A high-water mark past both the records and the database: its record was lost with power
    # before the commit, so it was never acknowledged; lower the mark to what is really there.)
    data = b"".join(_Encoder().record(("abort", seq)) for seq in reversed(orphans))
    # One abort marker per orphan, newest first (each cancels the live entry just before it).
    os.ftruncate(fd, end)
    os.pwrite(fd, data, end)
    count += 1
    os.pwrite(fd, _hwm_bytes(count, live[-1] if live else 0), _HWM_AT[count & 1])
    if fsync:
        _datasync(fd)
    if orphans:
        log.warning("redo journal %s: marked %d record(s) the database never committed as aborted (sequence %s)",
                    path, len(orphans), ", ".join(map(str, orphans)))
    return orphans


# -- the last record of a journal whose owner stopped -----------------------------------------------
#: Verdicts of :func:`last_record_verdict`.
LAST_ORPHAN = "orphan"
LAST_COMMITTED = "committed"
LAST_UNSURE = "unsure"


def database_top(committed: Mapping[int, int]) -> int:
    """The database's global sequence: the highest a journaled slot committed (unjournaled writers' rows aside)."""
    return max((seq for slot, seq in committed.items() if slot > UNJOURNALED_SLOTS), default=0)


def read_journals(base: str | os.PathLike[str], *, alive: frozenset[int] = frozenset(),
                  gone: frozenset[int] = frozenset()) -> dict[int, tuple[JournalState, bool]]:
    """Every journal file of ``base``: slot -> (its state, whether its owner is gone).

    The owner is gone when the slot is in ``gone``, or not in ``alive`` and nobody holds the file's lock
    (a file this process holds counts as held: see :meth:`RedoJournal.inherited_last`).
    """
    return {slot: (read_journal(path), slot in gone or (slot not in alive and not _locked_by_someone(path)))
            for slot, path in journal_files(base)}


def _in_doubt(state: JournalState, owner_gone: bool, last_committed: int | None) -> int | None:
    """The sequence of the file's last record when it may be an orphan (else None).

    Only the last record of a file whose owner stopped without a clean close can be one (every earlier
    record was followed by the next only after its COMMIT, or by its abort marker); a record written
    alone came after its COMMIT, and one the database records for the slot is committed.
    """
    if not owner_gone or state.clean or not state.entries:
        return None
    seq = state.entries[-1][0]
    if seq in state.alone or (last_committed is not None and seq <= last_committed):
        return None
    return seq


def last_record_verdict(slot: int, journals: Mapping[int, tuple[JournalState, bool]],
                        committed: Mapping[int, int] | None) -> str | None:
    """Is the last record of ``slot``'s journal an orphan? The one place this is decided.

    :param journals: :func:`read_journals` (slot -> state, owner gone); every file is evidence.
    :param committed: :func:`committed_by_slot` of the database (None: it cannot say).

    Returns None when the record is not in doubt (see :func:`_in_doubt`), else, for its sequence ``G``:

    * :data:`LAST_ORPHAN`: it never committed and is neither replayed nor expected (it gets an abort
      marker at startup). The database holds ``G`` (another slot committed it: the sequence was reused
      after this process died; a mark is not consulted then), or another journal holds ``G`` in a
      record not in doubt or marked (the same); or the record has no committed mark and nothing shows
      the database lost anything before ``G``: a process killed there had not told anyone, and taking
      it for an orphan is what a crash between the record and COMMIT needs. (Undecided only when a
      power loss dropped the mark of a record the database lost too: README's guarantees.)
    * :data:`LAST_COMMITTED`: the record carries its committed mark (written after its COMMIT
      succeeded, before the caller was told: the database lost it); or a journal holds a later
      sequence and no other record holds ``G``: that later one was allocated (``max + 1`` under
      SQLite's write lock) once ``G`` had committed.
    * :data:`LAST_UNSURE` (an unmarked record only: one written before marks existed, or whose mark a
      power loss dropped): it may have committed, and been acknowledged: a journal holds a sequence
      between the database's and ``G`` (committed before ``G`` was allocated, and the database lacks
      it: it lost commits, a ``-wal`` removed before a checkpoint, so it may have lost ``G`` too), or
      the database cannot say. Also when another record in doubt holds ``G`` where one of the two
      must have committed (which one cannot be told: recovery says so).

    A record judged committed or unsure from other records' evidence is still not replayed when a journal that
    lost records may have held ``G`` (:func:`contested`).

    Records written alone never prove anything here (the database's sequence lags behind them).
    """
    state, owner_gone = journals[slot]
    seq = _in_doubt(state, owner_gone, None if committed is None else committed.get(slot, 0))
    if seq is None:
        return None
    top = None if committed is None else database_top(committed)
    if top is not None and top >= seq:
        return LAST_ORPHAN
    if seq in state.marked:
        return LAST_COMMITTED  # its COMMIT succeeded before the mark was written: the database lost it
    rival = later = between = False
    for other, (other_state, other_gone) in journals.items():
        doubtful = _in_doubt(other_state, other_gone, None if committed is None else committed.get(other, 0))
        if doubtful in other_state.marked:
            doubtful = None  # committed (its mark): a sure holder of the sequence
        for other_seq, _ops in other_state.entries:
            if other == slot and other_seq == seq:
                continue
            if other_seq == seq:
                if doubtful != seq:
                    return LAST_ORPHAN
                rival = True
            elif other_seq in other_state.alone:
                continue
            elif other_seq > seq:
                later = True
            elif top is not None and other_seq > top:
                between = True
    if later:
        return LAST_UNSURE if rival else LAST_COMMITTED
    if committed is None or between:
        return LAST_UNSURE
    return LAST_ORPHAN


def contested(slot: int, journals: Mapping[int, tuple[JournalState, bool]]) -> bool:
    """May the committed record of the sequence of ``slot``'s last record be one another journal lost?

    Asked of a last record in doubt that :func:`last_record_verdict` judged committed or unsure from other
    records (a later sequence, a database that lost commits), not from its own committed mark. That evidence
    says the sequence ``G`` committed, or may have: not that *this* record did. When another journal lost
    records (cut short, or a damaged record with the rest unread) in a range that takes in ``G``, ``G``'s
    committed record may have been one of them, and this one the orphan of a process killed before its
    COMMIT, whose sequence the other reused. Which transaction ``G`` was cannot be told: recovery replays
    neither and counts ``G`` missing (session 29: the orphan replayed there stood in for an acknowledged
    transaction of the cut journal, and recovery left that one out of its count).
    """
    seq = journals[slot][0].entries[-1][0]
    for other, (state, _gone) in journals.items():
        if other == slot or not state.problems:
            continue
        # Its records stop short where they end; it had written them up to its high-water mark (with no mark
        # to read, a header block cut, anything past them).
        last = state.entries[-1][0] if state.entries else state.base
        if last < seq and (state.hwm is None or seq <= state.hwm):
            return True
    return False


# -- merging the journals at recovery ------------------------------------------------------------
@dataclass
class ReplayPlan:
    """What to replay on top of a backup, and what cannot be restored."""

    #: ``(seq, ops, slot)`` in sequence order, contiguous from ``start + 1``.
    entries: list[tuple[int, list[Any], int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Sequence ranges (inclusive) with no committed record anywhere.
    missing: list[tuple[int, int]] = field(default_factory=list)
    #: Records after the first gap, not replayed so the result is a state that existed.
    held_back: int = 0
    #: The highest sequence known to exist (the database continues after it).
    top: int = 0
    any_header: bool = False
    from_empty: bool = False
    #: ``(seq, slot)``: last records of stopped journals that may never have committed but may have been
    #: acknowledged (the database lost commits before them): planned for replay when they are the only
    #: record of their sequence (see :func:`last_record_verdict`).
    unsure: list[tuple[int, int]] = field(default_factory=list)


def plan_replay(base: str | os.PathLike[str], start: int, *, seen: int = 0,
                committed: dict[int, int] | None = None, alive: frozenset[int] = frozenset(),
                gone: frozenset[int] = frozenset()) -> ReplayPlan:
    """Merge every journal slot of ``base`` into the transactions after sequence ``start``.

    :param seen: the highest sequence the caller knows was committed (its own allocations).
    :param committed: :func:`read_committed` of the damaged database, when it could still be read.
    :param alive: slots whose owner is running (their last record is not an orphan).
    :param gone: slots held by this process whose last record was left by a process that died (see
        :meth:`RedoJournal.inherited_last`): in doubt like a stopped journal's.
    """
    plan = ReplayPlan()
    expected = seen
    candidates: dict[int, list[tuple[int, list[Any], bool]]] = {}
    journals = read_journals(base, alive=alive, gone=gone)
    for slot, (state, owner_gone) in journals.items():
        plan.problems += state.problems
        if state.header:
            plan.any_header = True
            plan.from_empty = plan.from_empty or (state.from_empty and state.base == 0)
        file_mark = state.hwm
        verdict = last_record_verdict(slot, journals, committed)
        for i, (seq, ops) in enumerate(state.entries):
            last = i == len(state.entries) - 1
            uncertain = (owner_gone and last and not state.clean and seq not in state.alone
                         and seq not in state.marked)
            if last and verdict == LAST_ORPHAN:
                # An orphan (see last_record_verdict). The file's mark was written with it, so it promises
                # only the records before it (the next commit reuses its sequence).
                if file_mark == seq:
                    file_mark = state.entries[i - 1][0] if i else state.base
                continue
            if (last and verdict in (LAST_COMMITTED, LAST_UNSURE) and seq not in state.marked
                    and contested(slot, journals)):
                # Committed by it or by a record another journal lost (see contested): not replayed, and its
                # sequence stays expected, so it is counted missing.
                plan.problems.append(f"redo journal slot {slot}'s last record (sequence {seq}) may never have "
                                     "committed, and a journal that lost records may have held the one that did: "
                                     "which transaction that sequence was cannot be told")
                expected = max(expected, seq)
                continue
            if last and verdict == LAST_UNSURE:
                # Replayed, not only reported (issue #15): the database lost commits before it, so it may be
                # a committed, acknowledged transaction, and leaving it out would lose it for good (the
                # journals are re-anchored after the recovery). If it never committed, its process died
                # between its record and COMMIT: nobody was told either way, and replaying it is the crash
                # landing just after COMMIT, a state that could have existed (nothing later was allocated
                # on top of it, else the verdict would be "committed"; a sequence reused by another slot
                # makes it an orphan). Only when another record in doubt holds the same sequence is
                # neither replayed: which one committed cannot be told (reported below).
                plan.unsure.append((seq, slot))
            candidates.setdefault(seq, []).append((slot, ops, uncertain))
            plan.top = max(plan.top, seq)
        if file_mark is not None:
            expected = max(expected, file_mark)
    journaled = {slot: seq for slot, seq in (committed or {}).items() if slot > UNJOURNALED_SLOTS}
    if journaled:
        expected = max(expected, max(journaled.values()))
    top = max(expected, plan.top)
    plan.top = top
    gap_started = False
    for seq in range(start + 1, top + 1):
        cands = candidates.get(seq)
        if cands and len(cands) > 1:
            certain = [c for c in cands if not c[2]]
            cands = certain if len(certain) == 1 else cands
            if len(cands) > 1:
                plan.problems.append(f"redo journal sequence {seq} has {len(cands)} candidate records "
                                     f"(slots {', '.join(str(c[0]) for c in cands)}); which one committed "
                                     "cannot be told")
                cands = []
        if not cands:
            if plan.missing and plan.missing[-1][1] == seq - 1:
                plan.missing[-1] = (plan.missing[-1][0], seq)
            else:
                plan.missing.append((seq, seq))
            gap_started = True
            continue
        if gap_started:
            plan.held_back += 1
            continue
        slot, ops, _ = cands[0]
        plan.entries.append((seq, ops, slot))
    if plan.missing:
        count = sum(b - a + 1 for a, b in plan.missing)
        ranges = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in plan.missing)
        plan.problems.append(f"{count} committed transaction(s) are missing from the redo journals "
                             f"(sequence {ranges}; the journals reach {top}) and could not be replayed"
                             + (f"; {plan.held_back} later journaled transaction(s) were held back so the "
                                "database is a state that existed" if plan.held_back else ""))
    return plan


def _locked_by_someone(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:  # dbfault: no fault (gone between listing and opening: nobody holds it)
        return False
    try:
        return not _try_lock(fd)
    finally:
        os.close(fd)


# -- reading -----------------------------------------------------------------------------------
def read_journal(path: str | os.PathLike[str]) -> JournalState:
    """Parse a journal file.

    A torn tail (a crash mid-append, never acknowledged: a short or failing last record, or
    zero bytes to the end of the file as a power loss can leave) is ignored; a damaged record
    with data after it stops the read and is reported in ``problems``, and so is a file whose
    records stop short of its high-water mark (cut short).
    """
    state = JournalState()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return state
    offset = hwm_before = 0
    if data[:len(_MAGIC)] == _MAGIC:
        state.format = _FORMAT
        if len(data) < _HEAD_SIZE:
            state.problems.append(f"redo journal {str(path)!r} is cut inside its header block")
            return state
        state.hwm_count, state.hwm, hwm_before = _read_hwm(data)
        offset = _HEAD_SIZE
    elif data:
        state.format = 2
    state.valid_end = offset
    end, number = len(data), 0
    while offset < end:
        number += 1
        record, next_offset = _parse(data, offset)
        if record is None:
            if next_offset > end or not data[offset:].strip(b"\0"):
                break  # torn tail: the write never completed, so it was never acknowledged
            state.problems.append(f"redo journal {str(path)!r} record {number} (byte {offset}) is damaged; "
                                  "entries after it were not read")
            break
        offset = next_offset
        state.valid_end = offset
        tag = record[0] if isinstance(record, tuple) and record else None
        if tag == "redo" and len(record) in (4, 5):
            state.header = True
            state.base = int(record[2])
            state.from_empty = bool(record[3])
            state.slot = int(record[4]) if len(record) == 5 else None
            state.last_seq = max(state.last_seq, state.base)
            state.clean = False
        elif tag == "closed":
            state.clean = True
        elif tag == "committed" and len(record) == 2:
            # Only right after its own record (where mark_committed writes it); anywhere else it proves nothing.
            if state.entries and state.entries[-1][0] == record[1]:
                state.marked.add(int(record[1]))
        elif tag == "abort" and len(record) == 2:
            if state.entries and state.entries[-1][0] == record[1]:
                state.entries.pop()
                state.aborted.append(int(record[1]))
                # An aborted sequence never existed (the next transaction reuses it): a reader that took it
                # for the journal's last would make recovery look for it (found by the commitpath machine).
                state.last_seq = max(state.base, state.entries[-1][0] if state.entries else 0)
            state.clean = False
        elif isinstance(tag, int) and len(record) in (2, 3):
            seq = tag
            if state.entries and seq <= state.entries[-1][0]:
                state.problems.append(f"redo journal record {number}: sequence {seq} is not increasing")
                break
            state.entries.append((seq, list(record[1])))
            if len(record) == 3:
                state.alone.add(seq)
            state.last_seq = max(state.last_seq, seq)
            state.clean = False
        else:
            state.problems.append(f"redo journal {str(path)!r} record {number} is not a journal record; "
                                  "entries after it were not read")
            break
    if state.hwm and not state.problems:
        last = state.entries[-1][0] if state.entries else 0
        # A torn tail is the one record in flight when the power went, never acknowledged. Its mark may
        # have landed without it (then the copy before the newest is the mark written before it) or not
        # (then the newest is): the records must reach the lower of the two. They differ the other way only
        # after an abort put the mark back (the copy before it still names the aborted record).
        # A file cut at a record boundary, or cut short by more than that record, is caught either way.
        required = state.hwm if state.valid_end == len(data) else min(state.hwm, hwm_before)
        if last < required:
            state.problems.append(f"redo journal {str(path)!r} is cut short: its records end at sequence "
                                  f"{last or 'none'} but it had recorded up to sequence {required}")
    return state


def _header_block(count: int, seq: int) -> bytes:
    block = bytearray(_HEAD_SIZE)
    block[:len(_MAGIC)] = _MAGIC
    for n in (count - 1, count):
        if n >= 0:
            at = _HWM_AT[n & 1]
            block[at:at + _HWM.size] = _hwm_bytes(n, seq)
    return bytes(block)


def _hwm_bytes(count: int, seq: int) -> bytes:
    head = struct.pack("<QQ", count, seq)
    return head + struct.pack("<I", zlib.crc32(head))


def _read_hwm(data: bytes) -> tuple[int, int, int]:
    """(count, sequence) of the newest valid copy, and the sequence of the copy before it."""
    copies = []
    for at in _HWM_AT:
        count, seq, crc = _HWM.unpack_from(data, at)
        if zlib.crc32(data[at:at + 16]) == crc:
            copies.append((count, seq))
    copies.sort()
    if not copies:
        return 0, 0, 0
    newest = copies[-1]
    prev = copies[0][1] if len(copies) == 2 and copies[0][0] == newest[0] - 1 else 0
    return newest[0], newest[1], prev


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_journal(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)


def _try_lock(fd: int, *, shared: bool = False) -> bool:
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:  # dbfault: no fault (another manager owns the file: ownership, not a fault)
        return False
    return True


def _remove_stale(tmp: Path) -> None:
    # A temporary left by a crash mid-reset; ours by name, and O_EXCL below refuses anything planted after.
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
    except OSError:  # dbfault: no fault (the O_EXCL open below reports what is wrong)
        pass


def statement_kind(sql: str) -> str:
    """``"ddl"``, ``"dml"``, ``"commit"``, ``"rollback"`` or ``"other"`` for a statement that changed no rows.

    ``"dml"`` (INSERT, UPDATE, DELETE, REPLACE) is journaled although it changed nothing: that it changed
    nothing was decided on this file, and a recovery replays onto another one. On a sound file a replay at the
    same place in the sequence changes nothing either; on a file whose index no longer matches its table (an
    index entry changed in place: no error, ``quick_check`` passes) an acknowledged ``DELETE``/``UPDATE`` by key
    misses its row, and without its record the restored backup would bring back the row the application
    deleted (recovery_fuzz seed 906).

    Cached per SQL text (the manager calls this only for statements that changed no rows).
    """
    kind = _STATEMENT_KINDS.get(sql)
    if kind is None:
        words = _top_level_words(sql)
        first = next(words, "")
        second = next(words, "")
        if first == "WITH":
            # A common table expression comes first; the statement's own verb is the first top-level
            # SELECT, VALUES or write word after it (``WITH old AS (...) DELETE FROM t ...``).
            first = next((w for w in (second, *words) if w in _MAIN_VERBS), "")
            second = ""
        if first in _DDL_WORDS or (first == "REINDEX") or (first == "ANALYZE"):
            kind = "ddl"
        elif first in _DML_WORDS:
            kind = "dml"
        elif first in ("COMMIT", "END"):
            kind = "commit"
        elif first == "ROLLBACK" and second != "TO":
            kind = "rollback"
        else:
            kind = "other"
        if len(_STATEMENT_KINDS) > 4096:
            _STATEMENT_KINDS.clear()
        _STATEMENT_KINDS[sql] = kind
    return kind


_DML_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


_MAIN_VERBS = frozenset({"SELECT", "VALUES", *_DML_WORDS})
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _top_level_words(sql: str) -> Iterator[str]:
    """The bare words of ``sql`` outside parentheses, upper-cased, in order.

    Comments (``--`` and ``/* */``), string literals and quoted identifiers are skipped, so neither a
    leading comment nor a CTE named in quotes hides the statement's verb.
    """
    i, n, depth = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in _QUOTES:
            end = sql.find(_QUOTES[c], i + 1)
            while end >= 0 and c != "[" and sql.startswith(c * 2, end):  # a doubled quote is part of it
                end = sql.find(c, end + 2)
            i = n if end < 0 else end + 1
        elif c == "(":
            depth, i = depth + 1, i + 1
        elif c == ")":
            depth, i = max(0, depth - 1), i + 1
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] in "_$"):
                j += 1
            if depth == 0:
                yield sql[i:j].upper()
            i = j
        else:
            i += 1


# -- encoding ----------------------------------------------------------------------------------
# Body length, the same length inverted, crc32 of the body. The inverted copy tells a damaged
# length from a record cut short by a crash (only the latter is a torn tail to ignore).
_FRAME = struct.Struct("<III")
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, tuple, list, dict})
#: The only names a journal record may load: constructors of plain values (see _reduce_value).
_LOADABLE = {("builtins", name): getattr(builtins, name) for name in ("int", "float", "str", "bytes", "tuple", "dict")}
_CONSTRUCTORS = frozenset(_LOADABLE.values())


def _reduce_value(value: Any) -> Any:
    """Reduce a parameter pickle has no fast path for to a plain value.

    Mirrors how sqlite3 binds it: a registered adapter or ``__conform__`` first, then the
    int/float/str/bytes it subclasses; parameter containers become tuples and dicts.
    """
    # (The constructors below are pickled by name. Only a class can be one: hashing any value here
    # would fail on unhashable parameters such as an OrderedDict or a writable memoryview.)
    if type(value) in _PLAIN or (isinstance(value, type) and value in _CONSTRUCTORS):
        return NotImplemented
    adapted = sqlite3.adapt(value, sqlite3.PrepareProtocol, None)
    if adapted is not None and adapted is not value:
        if type(adapted) not in _PLAIN:
            raise TypeError(f"cannot journal a parameter of type {type(value).__name__}: its adapter "
                            f"returned a {type(adapted).__name__}")
        return type(adapted), (adapted,)
    for base in (int, float, str):
        if isinstance(value, base):
            return base, (base(value),)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes, (bytes(value),)
    if isinstance(value, (tuple, list)):
        return tuple, (tuple(value),)
    if isinstance(value, Mapping):
        return dict, (dict(value),)
    raise TypeError(f"cannot journal a parameter of type {type(value).__name__}")


class _Pickler(pickle.Pickler):
    # Called only for objects that are not plain values (pickle's fast paths skip it), so the
    # common case costs nothing extra.
    def reducer_override(self, obj: Any) -> Any:
        return _reduce_value(obj)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _LOADABLE[(module, name)]
        except KeyError:  # dbfault: no fault (a forged record: damage fails the crc32 before unpickling)
            raise pickle.UnpicklingError(f"a redo journal record names {module}.{name}, "
                                         "which is not a plain value") from None


class _Encoder:
    """Frames records; one pickler reused (a fresh one per record costs twice as much)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._pickler = _Pickler(self._buf, 5)
        # No memo: a record is a tree of plain values (SQL parameters cannot be cyclic: sqlite3 binds only
        # flat sequences of scalars) and the reader needs none. Measured here under load (median of 30
        # alternating runs): a 50-row batch 26 -> 13 us, one row 3.6 -> 2.5 us (the minimums barely differ).
        self._pickler.fast = True

    def record(self, record: Any) -> bytes:
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._pickler.dump(record)
        body = buf.getvalue()
        n = len(body)
        return _FRAME.pack(n, n ^ 0xFFFFFFFF, zlib.crc32(body)) + body


def _parse(data: bytes, offset: int) -> tuple[Any, int]:
    """The record at ``offset`` and where the next one starts.

    A damaged record gives ``(None, end)``, with ``end`` past the end of ``data`` when the
    record is incomplete (its header intact but its body cut short, or the header itself cut).
    """
    head_end = offset + _FRAME.size
    if head_end > len(data):
        return None, head_end
    length, inverted, crc = _FRAME.unpack_from(data, offset)
    if length ^ 0xFFFFFFFF != inverted or length == 0:
        return None, head_end  # a damaged header: where the record ends is unknown
    end = head_end + length
    if end > len(data):
        return None, end
    body = data[head_end:end]
    if zlib.crc32(body) != crc:
        return None, end
    try:
        return _Unpickler(io.BytesIO(body)).load(), end
    except Exception:  # noqa: BLE001  # dbfault: no fault (a forged record: damage fails the crc32 first)
        return None, end


def _datasync(fd: int) -> None:
    # SQLite itself uses fdatasync: the data and size matter, not the timestamps.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS / Windows
        os.fsync(fd)
