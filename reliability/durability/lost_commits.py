"""Committed transactions the database no longer holds, found in the redo journals at startup.

How it happens: the ``-wal`` removed while rows committed in it were not yet checkpointed (a
cleanup script, an operator copying "the database" without its WAL, a restore of the file alone
after a crash). SQLite says nothing: it opens the file as it was at the last checkpoint, integrity
``ok``, every later commit silently gone. Only the journals still hold them, and an unclean start
used to destroy that evidence too (every record past the database's sequence was marked aborted
as if never committed, then the journal was re-anchored on a backup of the shortened file).

What tells the two apart: a process killed between its journal record and ``COMMIT`` leaves at
most *one* record SQLite never committed, its file's last (it died there; every earlier record was
followed by the next only after its COMMIT, or by an abort marker). So every record past the
database's global sequence that is not the last of its file is a committed transaction the database
lost. The last one is decided in one place, :func:`~reliability.redo.last_record_verdict`, which
startup, the reconcile and recovery's plan all use, first by its *committed mark* (one ``pwrite``
after its COMMIT succeeded and before the caller was told; a kill -9 keeps it, only a power loss can
drop it, as it has no fsync of its own):

* *committed*: it carries its mark (so a worker killed right after its only acknowledged transaction
  since the last checkpoint is found), or a journal holds a later sequence, allocated once it had
  committed: counted as lost;
* an *orphan* (neither counted nor expected, marked aborted at a start that finds nothing missing):
  the database or another journal holds its sequence (reused after the process died), or it has no
  mark and nothing shows the database lost anything before it: a process killed there told nobody.
  Undecided only in the compound case of a power loss that dropped the unsynced mark *and* a lone
  last record past the database (one lost transaction in all the journals): taken for an orphan
  (said in README's guarantees);
* *possibly missing* (an unmarked record: written before marks existed, or its mark lost with power):
  the database provably lost commits allocated before it (a journal holds a
  sequence between the database's and its own), so it may be the process's last acknowledged commit
  (killed right after it) as well as an orphan. Counted and named apart (:attr:`LostCommits.possibly`),
  never marked aborted (the journals stay as they are while commits are missing), and recovery replays
  it: if it never committed, nobody was told either way, and the database then holds a state that could
  have existed (the crash just after COMMIT); left out, an acknowledged write would be gone for good.
  Two such records of one sequence in two files (one an orphan, its sequence reused by the other) are
  neither replayed: recovery reports which one cannot be told.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import DatabaseError, ErrorKind
from ..health import retryable_in_maintenance
from ..redo import (
    LAST_ORPHAN,
    LAST_UNSURE,
    WRITERS_TABLE,
    committed_by_slot,
    database_top,
    last_record_verdict,
    read_journals,
)
from . import verdict
from .parts import RuntimeParts

if TYPE_CHECKING:
    from ..redo import RedoJournal

log = logging.getLogger("reliability.recovery")


@dataclass(frozen=True)
class LostCommits:
    """Journaled transactions past what the database holds: ``sequences`` (global commit sequence
    numbers), the journal ``slots`` holding them and the database's own sequence ``database_seq``;
    ``possibly``: ``(seq, slot)`` of last records of stopped journals that may be missing too (they may
    never have committed: see :func:`~reliability.redo.last_record_verdict`), counted apart."""

    sequences: tuple[int, ...]
    slots: tuple[int, ...]
    database_seq: int
    possibly: tuple[tuple[int, int], ...] = ()

    def ranges(self) -> str:
        """The sequences as ranges: ``4-23, 30``."""
        out: list[list[int]] = []
        for seq in self.sequences:
            if out and out[-1][1] == seq - 1:
                out[-1][1] = seq
            else:
                out.append([seq, seq])
        return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in out)

    def count(self) -> str:
        """How many, the uncertain ones apart: ``20 committed transaction(s) and 1 that may have committed``."""
        maybe = len({seq for seq, _slot in self.possibly})
        return (f"{len(self.sequences)} committed transaction(s)"
                + (f" and {maybe} that may have committed" if maybe else ""))

    def describe_possibly(self) -> str:
        """The records that may be missing too, or ``""``."""
        slots: dict[int, list[int]] = {}
        for seq, slot in self.possibly:
            slots.setdefault(seq, []).append(slot)
        if not slots:
            return ""
        which = "; ".join(f"sequence {seq} of journal slot {' or '.join(map(str, sorted(of)))}"
                          + (" (two records of one sequence: which one committed, if either, cannot be told)"
                             if len(of) > 1 else "")
                          for seq, of in sorted(slots.items()))
        return (f"{which} may be missing too: the last record of a process that stopped without closing, so it "
                "may never have committed, but the database lost commits before it")

    def describe(self, path: str) -> str:
        """The incident, for the log, health and the refusal."""
        parts = []
        if self.sequences:
            parts.append(f"{len(self.sequences)} committed transaction(s) that the redo journal(s) hold (sequence "
                         f"{self.ranges()}; journal slot(s) {', '.join(map(str, self.slots))})")
        if self.possibly:
            parts.append(self.describe_possibly())
        return (f"the database file {path!r} is missing {'; and '.join(parts)}; the database is at sequence "
                f"{self.database_seq}: its -wal was removed before a checkpoint, or an older copy was put in "
                "its place")


def find_lost_commits(base: str | os.PathLike[str],
                      committed: dict[int, int] | None | Callable[[], dict[int, int] | None], *,
                      own: int | None = None) -> LostCommits | None:
    """The transactions the journals of ``base`` hold past the database's sequence (None: nothing lost).

    :param committed: :func:`~reliability.redo.committed_by_slot` of the database (None: it cannot say),
        or a function that reads it. A function is called *after* the journals were read: a manager that
        commits and then closes between the two reads would otherwise leave an unlocked file whose last
        commits look past a database read before them (seen under load: five transfers of a worker that
        had just finished reported missing, and the starting worker refused the database).
    :param own: this manager's slot (its file is read although this manager holds its lock).

    Files a running manager owns are left out (its last record may be a transaction in flight, and a
    restore elsewhere may have dropped its writes on purpose): this runs at startup, where the
    journals of processes that stopped tell what the file they wrote to held. Their records are still
    evidence for the last record of a stopped file (a sequence reused, or a later one allocated).
    """
    journals = read_journals(base)
    if own is not None and own in journals:
        journals[own] = (journals[own][0], True)
    if callable(committed):
        committed = committed()
    if committed is None:
        return None
    top = database_top(committed)
    lost: set[int] = set()
    slots: list[int] = []
    possibly: list[tuple[int, int]] = []
    for slot, (state, gone) in journals.items():
        if not gone:
            continue
        # A record written alone (after its COMMIT, no sequence row) cannot show whether the database has it,
        # unless a record of the same journal before it is missing: the WAL keeps commit order, so a database
        # without that one lacks every later commit of the journal too, and the count must say so (an older
        # copy put in place after three commits was refused as missing one).
        first = next((i for i, (seq, _ops) in enumerate(state.entries) if seq > top and seq not in state.alone),
                     None)
        ahead = [] if first is None else [seq for seq, _ops in state.entries[first:]]
        if ahead and ahead[-1] == state.entries[-1][0] and ahead[-1] not in state.alone:
            verdict = last_record_verdict(slot, journals, committed)
            if verdict == LAST_ORPHAN:
                ahead = ahead[:-1]  # neither counted nor expected, as recovery treats it
            elif verdict == LAST_UNSURE:
                possibly.append((ahead.pop(), slot))  # reported apart; recovery replays it
        if not ahead:
            continue
        lost.update(ahead)
        slots.append(slot)
    if not lost and not possibly:
        return None
    return LostCommits(tuple(sorted(lost)), tuple(slots), top, tuple(sorted(possibly)))


def missing_after_removed_wal(base: str | os.PathLike[str], redo: RedoJournal,
                              conn: Any) -> str | None:
    """What the database on ``conn`` lacks of the committed transactions the journals hold (None: nothing).

    Asked after this manager's handle on a ``-wal`` removed under it was dropped without checkpointing
    it (:meth:`~reliability.connection.ConnectionManager.rescue_removed_wal`): the file at the path must
    hold this manager's last committed transaction (its sequence row is written in the same transaction,
    and the WAL keeps commit order, so every earlier one is there too), and what the journals of
    managers that stopped hold (:func:`find_lost_commits`). A manager committing alone writes no
    sequence row per commit: its last commit cannot be proved there, so it counts as missing (a
    recovery that finds it in the database replays nothing twice).
    """
    read: list[dict[int, int] | None] = []

    def committed() -> dict[int, int] | None:  # (read after the journals: see find_lost_commits)
        read.append(committed_by_slot(conn))
        return read[0]

    lost = find_lost_commits(base, committed, own=redo.slot)
    if not read:
        committed()
    if read[0] is None:
        return ("the database file has no commit sequence to compare with the redo journal" if redo.seq
                else None)
    # Only this manager's own row: the "everything up to" row (-1) is what a restore or a startup anchor
    # wrote, and a manager that opened the older state after the removal anchors on it too.
    have = read[0].get(redo.slot, 0)
    parts: list[str] = []
    if redo.seq > have:
        parts.append(f"its last committed transaction (sequence {redo.seq}, journal slot {redo.slot}) is missing "
                     f"from the database file (it records {have} for this manager)")
    if lost is not None and lost.sequences:
        parts.append(f"{len(lost.sequences)} committed transaction(s) of the redo journal(s) are missing "
                     f"(sequence {lost.ranges()}; journal slot(s) {', '.join(map(str, lost.slots))})")
    if lost is not None and lost.possibly:
        # (This manager's last record is its last committed transaction, said above with certainty.)
        others = tuple(p for p in lost.possibly if p != (redo.seq, redo.slot) or redo.seq <= have)
        if others:
            parts.append(replace(lost, possibly=others).describe_possibly())
    return "; ".join(parts) or None


def _lacks_writers_table(conn: Any) -> bool:
    """True when the file reads and has no writers table (its schema says so); False when it has one.

    :raises: the driver's error when the schema cannot be read (a damaged file: then nothing can be said).
    """
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (WRITERS_TABLE,)).fetchone() is None


def committed_or_none_at_all(conn: Any) -> dict[int, int] | None:
    """:func:`~reliability.redo.committed_by_slot`, with a readable file that has no writers table read as "nothing
    committed" (``{}``), not "cannot say" (None). Every journaled manager creates the table before its first record
    (``_register_slot``), so such a file has lost what the journals hold (found by recovery_fuzz.py: a ``-wal`` lost
    with the whole history, and the start reported healthy with the tables gone). Used at startup and by
    ``reliability recover``'s look, so both entry points judge the file alike."""
    seen = committed_by_slot(conn)
    return {} if seen is None and _lacks_writers_table(conn) else seen


def lost_commits_at_start(parts: RuntimeParts, redo: RedoJournal | None, recover: Callable[[str], object]) -> bool:
    """At startup, before the journals are reconciled: does the database lack committed transactions?

    When it does, the journals are kept as they are (nothing marked aborted, no re-anchoring), the
    database is refused (reads and writes: what it serves is an older state; UNAVAILABLE, health
    ``unavailable``) with a message naming the sequences, and every later recovery expects them
    (it replays them or reports them missing, never ``ok`` without them). With ``auto_recover`` a
    recovery runs at once (``recover``, the automatic recovery: the newest verified backup and every
    journal). Returns True while the database stays refused (the caller then skips reconciling and
    anchoring).
    """
    path = parts.path
    if redo is not None:
        # Later, under the running manager: a -wal removed under its handle and not checkpointed from it
        # is checked against the journals the same way (see ConnectionManager.rescue_removed_wal).
        parts.connections.verify_commits = functools.partial(missing_after_removed_wal, redo.base_path, redo)
        parts.connections.journal_note = lambda: (f"this manager's last committed transaction is sequence {redo.seq}, "
                                                  f"journal slot {redo.slot}")
    if redo is None or not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    damaged: list[str] = []

    def committed() -> dict[int, int] | None:
        try:
            return parts.on_live_connection("reading the committed sequences", committed_or_none_at_all)
        except DatabaseError as exc:
            if retryable_in_maintenance(exc):
                raise  # a lock that outlasted the policy: no answer (the caller defers the check), never "none lost"
            if exc.kind is ErrorKind.CORRUPT:
                damaged.append(exc.detail)  # (judged below: the journals are still compared, with no answer here)
            log.warning("could not read the committed sequences to compare with the redo journals: %s", exc)
            return None
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (unreadable: recovery and the integrity checks decide)
            log.warning("could not read the committed sequences to compare with the redo journals: %s", exc)
            return None

    lost = find_lost_commits(redo.base_path, committed, own=redo.slot)
    if damaged:
        # Damage met by the runtime's own statement at startup is damage met (not "cannot say" only): the
        # verdict says so at once, and with auto_recover the recovery runs before any write, which would
        # otherwise meet it first (a writers table read as NULLs reused sequence 1: recovery_fuzz seed 452).
        verdict.seen_damaged(parts, damaged[:1], "the redo writers table read at startup")
        if parts.config.auto_recover:
            recover(f"corrupt error at startup: {damaged[0]}")
    if lost is None:
        return False
    # (Only what surely committed: a sequence that may never have is not looked for as missing.)
    redo.seen = max(redo.seen, *lost.sequences[-1:])
    detail = (lost.describe(path) + "; the runtime refuses to serve it; `reliability recover` restores the newest "
              "verified backup and replays every journal")
    log.error("%s", detail)
    parts.connections.refuse(detail, "Recent changes are missing from the database. An administrator must restore "
                                     "them (`reliability recover`).")
    if parts.config.auto_recover:
        recover(f"{lost.count()} missing at startup")
    return parts.connections.refused is not None
