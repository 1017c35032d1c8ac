"""The redo journal's lifecycle in the runtime: open, reconcile, register, anchor, close.

The journal itself (its format, the commit protocol's records, merging and planning a replay) is
:mod:`reliability.redo`; this part decides what the runtime does with it at startup and shutdown:

- open this process's journal file (its slot) and, when this manager owns it, hand it to the commit
  path (``executor.redo``);
- mark aborted every record the database never committed (a process killed between its record and
  COMMIT), and record the slot in the database before the anchoring backup names it;
- anchor the journal with a backup when it cannot be trusted to continue from the last one (an
  unclean shutdown, a damaged journal), and treat a missing database that backups or a journal show
  held data as an incident, never a fresh start (opening is refused until it is restored);
- a manager without a journal on a journaled database says so in the database itself;
- a journal whose anchoring failed (the manager started on a damaged file) anchors once another file is at the
  path (another manager, of this process or another, restored or recovered it; ``recover()`` found it recovered by
  another), before the next write: :meth:`Journal.anchor_if_due`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ..errors import DatabaseError
from ..health import retryable_in_maintenance
from ..redo import (
    WRITERS_TABLE,
    JournalState,
    RedoJournal,
    committed_by_slot,
    ensure_sequence_table,
    read_journal,
    reconcile_orphans,
    register_unjournaled,
    unregister_unjournaled,
)
from . import verdict
from .backup import BackupManager
from .lost_commits import lost_commits_at_start
from .parts import RuntimeParts
from .upkeep import Scheduler

log = logging.getLogger("reliability.recovery")

#: Seconds between attempts at an anchoring backup that a lock kept from running at startup.
ANCHOR_RETRY_INTERVAL = 1.0
#: Seconds before a write tries again to anchor, on a file installed since, a journal whose anchoring a lock kept
#: from running (each try may wait the retry policy's whole budget: not at every write).
WRITE_ANCHOR_RETRY_INTERVAL = 10.0


class Journal:
    """This manager's redo journal, from startup to close.

    :param parts: the runtime's parts (the live journal goes to ``parts.executor.redo``).
    :param store: the backups (a missing database with backups is an incident, not a fresh start).
    :param scheduler: the maintenance schedule (an anchoring backup a lock kept from running is retried there).
    """

    def __init__(self, parts: RuntimeParts, store: BackupManager, scheduler: Scheduler) -> None:
        self.parts = parts
        self.store = store
        self.scheduler = scheduler
        #: What a lock that outlasted the retry policy kept from running at startup, retried in the background:
        #: "checks" (comparing the journals with the database, then anchoring) or "anchor" (the backup only).
        self._pending: str | None = None
        #: The journal opened at start (also when another manager owns the file: then it is only read).
        self.redo: RedoJournal | None = None
        #: This manager writes without a journal to a journaled database (see redo.register_unjournaled).
        self._unjournaled_slot: int | None = None
        #: What the startup anchoring was given (the journal's state at open, the backup, the recovery): a journal
        #: whose anchoring failed anchors with them once a sound file is at the path (see :meth:`anchor_if_due`).
        self._startup: tuple[JournalState, Callable[[], Any], Callable[[str], Any]] | None = None
        #: Time (of :attr:`clock`) before which no write tries again to anchor (after a lock kept a try from running).
        self._anchor_not_before = 0.0
        #: The clock of that wait (a test moves it on instead of sleeping).
        self.clock: Callable[[], float] = time.monotonic
        #: The file (device, inode) at the path when anchoring last failed for good (a damaged copy): until another
        #: file is there, a write does not try again (see :meth:`_watch_the_path`).
        self._unanchored_on: tuple[int, int] | None = None

    @property
    def owned(self) -> RedoJournal | None:
        """The journal this manager writes to, or None."""
        redo = self.redo
        return redo if redo is not None and redo.owned else None

    # -- startup ---------------------------------------------------------------------------------
    def start(self, *, backup: Callable[[], Any], recover: Callable[[str], Any],
              check: Callable[[], Any] | None = None) -> None:
        """Open the journal (when configured), reconcile, register, anchor; handle a missing database.

        :param backup: takes the anchoring backup (raises :class:`DatabaseError`).
        :param recover: starts an automatic recovery for a reason (``auto_recover``).
        :param check: the full integrity check, run when another process marked the file damaged.
        """
        parts = self.parts
        cfg = parts.config
        looked = False
        if cfg.redo_journal:
            self.redo = RedoJournal.for_synchronous(cfg.redo_journal_file, cfg.synchronous)
            try:
                state = self.redo.open()
            except OSError as exc:  # dbfault: no fault (journal location unusable: missing folder, a setup error)
                self.redo.error = f"the redo journal {str(self.redo.path)!r} cannot be opened: {exc}"
                log.error("%s; writes are not journaled", self.redo.error)
                state = None
            if state is not None and self.redo.owned:
                parts.executor.redo = self.redo
                self._startup = (state, backup, recover)
                # Another manager of this process restoring or recovering the database puts a sound file at the path:
                # a journal whose anchoring failed (it started on a damaged file) anchors on it.
                parts.connections.on_replaced_here.append(self.sound_file_at_path)
                # Before the journals are compared with the file and an anchoring backup copies it.
                looked = True
                verdict.damage_at_start(parts, recover, check)
                self._check_and_anchor(state, backup, recover)
        if not looked:
            verdict.damage_at_start(parts, recover, check)
        if parts.connections.refused is None and database_missing(parts.path):
            # The journal is off or could not be opened, so _anchor did not look: a missing
            # database is still an incident when backups or a journal show it held data.
            journal = cfg.redo_journal_file if cfg.redo_journal else None
            self._missing_at_start(read_journal(journal) if journal is not None and os.path.exists(journal)
                                   else None, recover)
        if parts.redo is None and parts.connections.refused is None and not database_missing(parts.path):
            # Other processes journal this database but this manager does not: say so in the database
            # itself, so a recovery anywhere knows writes exist that no journal can bring back.
            try:
                self._unjournaled_slot = parts.on_live_connection("recording a writer without a redo journal",
                                                                  register_unjournaled)
            except Exception as exc:  # noqa: BLE001  # dbfault: no fault (a read-only or damaged file)
                log.warning("could not record that this manager writes without a redo journal: %s", exc)
        if self._needs_anchor():
            self._watch_the_path()  # (its anchoring failed: another file at the path is worth a try)

    def close(self, *, clean: bool = True) -> None:
        """Close the journal and withdraw this manager's unjournaled-writer record (under the lock).

        ``clean=False``: the manager's start failed; the journal is released without its clean-close record
        (see :meth:`RedoJournal.close <reliability.redo.RedoJournal.close>`).
        """
        parts = self.parts
        with parts.lock:
            parts.executor.before_write = None
            if self.redo is not None:
                self.redo.close(clean=clean)
                parts.executor.redo = None
            if self._unjournaled_slot is not None:
                try:
                    unregister_unjournaled(parts.connections.live_connection(), self._unjournaled_slot)
                except Exception as exc:  # noqa: BLE001  # dbfault: no fault (stays registered: recovery stays cautious)
                    log.warning("could not remove this manager's unjournaled-writer record: %s", exc)

    def savepoint_event(self, event: str, level: int) -> None:
        """A savepoint began or was rolled back: the journal's pending statements follow it."""
        redo = self.parts.redo
        if redo is not None:
            if event == "begin":
                redo.savepoint(level)
            else:
                redo.rollback_savepoint(level)

    def _reconcile(self, state: JournalState) -> None:
        """Before anything else runs: mark aborted every journal record the database never committed.

        A process killed between writing its record and COMMIT (this one, if the journal was not
        closed cleanly, or any other whose journal nobody holds now) left a record SQLite rolled back.
        """
        redo = self.redo
        assert redo is not None
        parts = self.parts
        path = parts.path
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            return  # nothing committed to compare with (and opening would create the file)
        try:
            committed = parts.on_live_connection("reading the committed sequences", committed_by_slot)
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (an unreadable database: recovery decides)
            if isinstance(exc, DatabaseError) and retryable_in_maintenance(exc):
                raise  # a lock that outlasted the policy: no answer (the caller defers), never "no orphans"
            log.warning("could not read the committed sequences to reconcile the redo journals: %s", exc)
            return
        if committed is None:
            return
        if not state.clean and redo.reconcile(committed):
            # The aborted records' sequences were adopted from the file at open; they never committed,
            # so recovery must not wait for them (it would report a committed transaction missing).
            redo.seq = max(redo._live_before, redo.base)
            redo.seen = redo.seq
        reconcile_orphans(redo.base_path, committed, fsync=redo.fsync)
        redo.seen = max([redo.seen, *committed.values()])

    def _check_and_anchor(self, state: JournalState, backup: Callable[[], Any], recover: Callable[[str], Any], *,
                          deferred: bool = False) -> None:
        """Compare the journals with the database, reconcile, register this slot, anchor.

        Each step reads or writes the database under the shared retry policy. When a lock outlasts it
        while the journals are compared with the database, nothing is decided: the journal takes no
        records (health says so), and the whole sequence runs again in the background, then with an
        anchoring backup whatever the journal's state (the writes made meanwhile are in no journal).
        """
        redo = self.redo
        assert redo is not None
        try:
            if lost_commits_at_start(self.parts, redo, recover):  # a removed -wal: keep the evidence
                return
            self._reconcile(state)
        except DatabaseError as exc:
            if not retryable_in_maintenance(exc):
                raise
            if not deferred:
                redo.error = (f"the redo journals could not be compared with the database at startup ({exc.detail}); "
                              "writes are not journaled until that runs (retried in the background)")
                log.error("%s", redo.error)
                self.scheduler.add("journal_startup", ANCHOR_RETRY_INTERVAL,
                                   lambda: self._retry_startup(state, backup, recover))
            self._pending = "checks"
            return
        self._register_slot()
        self._anchor(state, backup, recover, force=deferred)

    def _retry_startup(self, state: JournalState, backup: Callable[[], Any], recover: Callable[[str], Any]) -> None:
        """What a lock kept from running at startup (a no-op once it ran): the checks, or only the backup."""
        redo = self.redo
        pending, self._pending = self._pending, None
        if pending is None or self.parts.closed() or redo is None or not redo.owned:
            return
        if pending == "checks":
            self._check_and_anchor(state, backup, recover, deferred=True)
        else:
            self._register_slot()  # (the same lock may have kept it from being recorded: it is idempotent)
            self._anchor(state, backup, recover, force=True, deferred=True)
        if self._pending is None and redo.error is None:
            log.warning("the redo journal %s is checked and anchored now (a lock kept it from that at startup)",
                        redo.path)

    def _register_slot(self) -> None:
        """Record this manager's journal slot in the database before the anchoring backup is taken.

        Every backup from then on names the slot, so a recovery that finds its journal file gone (deleted
        while the database was damaged beyond reading) knows writes may be missing instead of reporting ok.
        Seq 0 means "nothing committed yet", which is what an absent row meant before.
        """
        redo = self.redo
        assert redo is not None
        parts = self.parts
        if database_missing(parts.path):
            return

        def register(conn: Any) -> None:
            ensure_sequence_table(conn)
            conn.execute(f"INSERT OR IGNORE INTO {WRITERS_TABLE} (slot, seq) VALUES (?, 0)", (redo.slot,))

        try:
            parts.on_live_connection("recording the redo journal's slot", register)
        except Exception as exc:  # noqa: BLE001  # dbfault: no fault (a read-only or damaged file: recovery decides)
            log.warning("could not record redo journal slot %d in the database: %s", redo.slot, exc)

    def _anchor(self, state: JournalState, backup: Callable[[], Any], recover: Callable[[str], Any], *,
                force: bool = False, deferred: bool = False) -> None:
        """Make the journal continue from a state recovery can rebuild (see :mod:`reliability.durability`).

        ``force``: take the backup even after a clean shutdown (writes were made without the journal).
        ``deferred``: this is the background retry (already scheduled).
        """
        redo = self.redo
        assert redo is not None
        db_missing = database_missing(self.parts.path)
        if state.header and state.clean and not state.problems and not db_missing and not force:
            return  # a clean shutdown: the journal and the last backup still describe the database
        # (A database deleted or emptied while the service was down is not a clean state, even after a
        # clean shutdown: opening it would silently start from an empty file.)
        if db_missing:
            if not self._missing_at_start(state, recover):
                redo.reset(redo.seq, from_empty=True)
            return
        # The database may hold writes the journal never saw (a crash between COMMIT and the
        # journal append: never acknowledged, but later writes may build on them). Re-anchor.
        try:
            backup()
        except DatabaseError as exc:
            log.error("could not anchor the redo journal with a backup at startup: %s", exc.detail)
            if redo._end < 0 and redo.error is None:
                # A new journal file has no header until a backup anchors it, and takes no records before:
                # writes would go unjournaled while health said healthy. Say so until a backup succeeds.
                redo.error = (f"the redo journal {str(redo.path)!r} could not be anchored at startup ({exc.detail}); "
                              "writes are not journaled until a backup succeeds")
            # (A damaged copy already sent the source to the full check, whose verdict recovers with auto_recover:
            # ``backup`` is Upkeep.backup. Recovering here as well would run a second recovery, without a verdict.)
            if retryable_in_maintenance(exc):
                # A lock that outlasted the policy is no state to keep for the process's life (with scheduled
                # backups off, nothing else would ever anchor the journal): the backup is taken again soon.
                self._pending = "anchor"
                if not deferred:
                    self.scheduler.add("journal_startup", ANCHOR_RETRY_INTERVAL,
                                       lambda: self._retry_startup(state, backup, recover))

    # -- anchoring on a file installed since --------------------------------------------------------
    def sound_file_at_path(self) -> None:
        """A sound file that this manager did not install is at the path: another manager of this process restored
        or recovered the database (``connections.on_replaced_here``), or this manager's ``recover()`` found it
        recovered by another. A journal whose anchoring failed (it started on a damaged file) anchors on it before
        the next write (:meth:`anchor_if_due`). Before, it took no record for the rest of the process's life unless
        a scheduled backup ran: acknowledged writes in no journal, lost by the next recovery from damage.

        Only marks the journal due (cheap, raises nothing): it may run on the thread of the manager that installed
        the file, which must not wait for this manager's lock.
        """
        if self._needs_anchor():
            self._anchor_not_before = 0.0
            self.parts.executor.before_write = self.anchor_if_due

    def _watch_the_path(self) -> None:
        """Until the journal is anchored, each direct write looks (one ``stat``) whether another file is at the path
        than the one anchoring failed on, and then tries: a recovery or restore in another process that this manager
        was never told of (its write only reopens on the new file) ends the unanchored state as one here does."""
        self._unanchored_on = self.parts.connections.identity_at_path()
        self.parts.executor.before_write = self._anchor_if_replaced

    def _anchor_if_replaced(self) -> None:
        if self.parts.connections.identity_at_path() != self._unanchored_on:
            self.anchor_if_due()

    def _needs_anchor(self) -> bool:
        """This manager's own journal never got its header (its anchoring failed) and can still be anchored here.

        (A lock that kept the startup comparison of the journals with the database from running leaves "checks"
        pending: its background retry compares first, then anchors; anchoring without the comparison would skip it.)
        """
        redo = self.redo
        return (redo is not None and redo.owned and not redo.anchored and self._startup is not None
                and self._pending != "checks" and not self.parts.closed())

    def anchor_if_due(self) -> None:
        """Anchor the journal now, with the backup its anchoring at startup failed to take: the one place that decides.

        Called before a direct write (``executor.before_write``: set by :meth:`sound_file_at_path`, or by
        :meth:`_watch_the_path` once another file is at the path) and by a recovery that found the database
        recovered by another. The backup is the startup one (``_anchor``, forced):
        verified, the journal reset to continue from it. One try per event: a lock that outlasts the retry policy
        is no verdict (nothing is marked; a write at least ``WRITE_ANCHOR_RETRY_INTERVAL`` later tries again), and
        a copy that fails its check (the file is damaged again; the full check judges it) waits for another file
        at the path. Writes made meanwhile are counted (``redo.unrecorded``) and reported by recovery. Raises nothing.
        """
        parts = self.parts
        executor = parts.executor
        if self.clock() < self._anchor_not_before:
            return
        with parts.lock:
            if not self._needs_anchor() or self._startup is None:
                executor.before_write = None
                return
            if parts.transactions.depth or parts.connections.in_transaction():
                return  # a backup cannot copy an open transaction: the first write after it anchors
            if parts.connections.refused is not None or database_missing(parts.path):
                self._watch_the_path()  # nothing at the path to anchor on: the next file there says when
                return
            if parts.connections.file_moved():
                # The handle may still be on the file set aside: the slot is recorded in the file at the path.
                parts.connections.close()
            state, backup, recover = self._startup
            self._pending = None
            try:
                self._register_slot()
                self._anchor(state, backup, recover, force=True, deferred=True)
            except Exception as exc:  # noqa: BLE001  # dbfault: no fault (the journal's folder failing its reset)
                # The caller's write is not this step's to fail: it goes on unrecorded (counted, reported).
                log.error("could not anchor the redo journal %s on the database installed at %s: %s",
                          self.redo.path if self.redo is not None else "", parts.path, exc)
            redo = self.redo
            if redo is not None and redo.anchored:
                executor.before_write = None
                log.warning("the redo journal %s is anchored now, on the database installed at %s: writes are "
                            "journaled again", redo.path, parts.path)
            elif self._pending == "anchor":  # a lock outlasted the policy: later, never at every write
                self._anchor_not_before = self.clock() + WRITE_ANCHOR_RETRY_INTERVAL
                executor.before_write = self.anchor_if_due
            else:
                self._watch_the_path()  # the copy failed its check: not on this file again, on the next one

    def _missing_at_start(self, state: JournalState | None, recover: Callable[[str], Any]) -> bool:
        """The database file is missing (or empty) at startup. Returns False when that is a fresh start.

        When backups, manifests or a journal show the runtime managed this database before, it is an
        incident, never a fresh start: with ``auto_recover`` the newest verified backup is restored and
        the journal replayed; whatever is not brought back that way leaves opening refused (no empty
        file is created, writes and reads fail as UNAVAILABLE, health is ``unavailable``) with a message
        saying what exists and which command restores it.
        """
        history = self.history(state)
        if not history:
            return False
        path = self.parts.path
        backup = self.store.newest_verified()
        detail = (f"the database file {path!r} is missing or empty although {' and '.join(history)} show that "
                  "it held data; the runtime refuses to start from an empty database")
        if backup is not None:
            detail += (f"; restore the newest verified backup ({backup.path}) and replay the redo journal with "
                       "`reliability recover`, or put back the backup alone with `reliability restore`")
            user = ("The database is missing. A backup exists: an administrator can restore it with "
                    "`reliability recover` (backup and every write since) or `reliability restore` (backup only).")
        else:
            detail += "; no verified backup exists: rebuild it from the redo journal with `reliability recover`"
            user = ("The database is missing and no verified backup exists. An administrator must restore it "
                    "(`reliability recover`).")
        log.error("%s", detail)
        # Refuse before recovering: a recovery that fails half-way reopens the connection, and that must
        # not create an empty file either. Installing a database lifts the refusal (Trust.database_back).
        self.parts.connections.refuse(detail, user)
        if self.parts.config.auto_recover:
            recover("database file missing at startup")
        return True

    def history(self, state: JournalState | None) -> list[str]:
        """What shows the runtime managed this database before: backups (any, with or without manifest),
        a redo journal that holds writes or continues from a backup. A journal that only says "started
        from an empty database, nothing written since" shows nothing: that database was empty."""
        found = []
        if self.store.has_any():
            found.append(f"backups in {str(self.store.directory)!r}")
        if state is not None and (state.entries or state.base > 0 or state.problems
                                  or (state.header and not state.from_empty)):
            found.append("the redo journal")
        return found


def database_missing(path: str) -> bool:
    """No database file, or an empty one with no WAL content beside it (a new database in WAL mode
    may hold everything in its ``-wal`` until the first checkpoint)."""
    try:
        if os.path.getsize(path) > 0:
            return False
    except OSError:
        return True
    try:
        return os.path.getsize(path + "-wal") == 0
    except OSError:
        return True
