"""Restore and corruption recovery that loses no acknowledged write.

Recovery (``db.recover()``, or automatic when corruption is detected):

1. close the runtime's connection;
2. pick the newest backup that was verified when made *and* still passes ``integrity_check``;
3. copy it beside the database and replay the transactions of every process's redo journal
   (merged by the global commit sequence, see :mod:`reliability.redo`) whose sequence is above
   the one recorded in the backup, in order, in batches; each batch records the last applied
   sequence in the same transaction, so replay is idempotent (a recovery interrupted half-way
   can simply run again). A sequence with no record anywhere (a journal cut short, deleted or
   damaged) is reported with ``ok=False``, and replay stops before it;
4. fsync the prepared file, rename the damaged database with its ``-wal``/``-shm`` to
   ``<db>.quarantine-<time>`` (never deleted), rename the prepared file into place;
5. reopen, then take a fresh backup so the journal starts over from it.

What "no acknowledged write lost" means here depends on ``synchronous`` (see
:mod:`reliability.redo`): FULL/EXTRA survive power loss, NORMAL/OFF survive a process crash.
The :class:`RecoveryReport` lists anything that could not be brought back (a journal gap, a
damaged journal line, a statement that failed on replay) and then ``ok`` is False.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from types import ModuleType
from typing import Any

from .. import files
from ..errors import DatabaseError, ErrorKind, sqlite_errors
from ..health import retryable_in_maintenance, run_maintenance
from ..redo import (
    JournalState,
    RedoJournal,
    database_top,
    journal_files,
    plan_replay,
    read_committed,
    read_journal,
    set_sequence,
    slot_path,
    unjournaled_writers,
)
from ..retry import RetryPolicy
from . import verdict
from .backup import (
    BackupError,
    BackupInfo,
    BackupManager,
    BackupTaker,
    copy_for_install,
    fsync_file,
    install,
    move_aside,
    read_sequence,
    record_sequence,
)
from .journal import Journal
from .outside_fence import OutsideFence, committed_outside
from .parts import RuntimeParts, maintenance
from .recovered_elsewhere import RECOVERED_BY_ANOTHER, recovered_by_another
from .trust import Trust

try:  # POSIX; elsewhere recoveries in two processes are not serialized (said in install_lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("reliability.recovery")

#: Journal entries replayed per transaction (fewer fsyncs; a failing batch is redone one by one).
REPLAY_BATCH = 500
#: After a failed automatic recovery, wait this long before trying again on the next error.
AUTO_RECOVERY_COOLDOWN = 10.0

@dataclass(frozen=True)
class RecoveryReport:
    """What a recovery did. ``ok`` means the database is back and no journaled write is missing."""

    ok: bool
    quarantined: list[str]
    backup: str | None
    replayed: int
    duration: float
    problems: list[str] = field(default_factory=list)
    reason: str = ""
    #: Set when nothing was done because another process had recovered the database meanwhile.
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dataclasses.asdict(self)
        data["duration"] = round(self.duration, 6)
        return data

    @property
    def incomplete(self) -> bool:
        """True when the recovery ran but could not bring everything back (its operation record says so)."""
        return not self.ok


class Recovery:
    """Restore and recovery: put a backup in place, rebuild a damaged database with every journaled write.

    Restore and recovery share one install path (the cross-process install lock, the writer fence,
    the old files set aside, the prepared file renamed into place, the schema checked again, the
    journal re-anchored), so both live here.

    :param parts: the runtime's parts.
    :param journal: the redo journal (read to plan the replay; its sequences follow the install).
    :param backups: re-anchors the journal after an install.
    :param trust: told when a database is back in place (opening accepted again, schema checked).
    :param store: the backup files.
    """

    def __init__(self, parts: RuntimeParts, journal: Journal, backups: BackupTaker, trust: Trust,
                 store: BackupManager) -> None:
        self.parts = parts
        self.journal = journal
        self.backups = backups
        self.trust = trust
        self.store = store
        self._recovering = False
        self.last_failed_recovery = 0.0

    @property
    def redo(self) -> RedoJournal | None:
        """The redo journal opened at start (None when off or it could not be opened)."""
        return self.journal.redo

    # -- restore ---------------------------------------------------------------------------------
    @maintenance("restore")
    def restore(self, path: str | os.PathLike[str] | None = None) -> BackupInfo:
        """Put a backup (newest verified, or ``path``) in place of the database.

        The current database and its ``-wal``/``-shm`` are renamed aside (``<db>.replaced-<time>``),
        never deleted, and never left beside the restored file. Writes made after the backup are
        deliberately dropped (that is what restoring means); the journal is re-anchored.
        """
        parts = self.parts
        with parts.lock:
            if parts.transactions.depth:
                raise BackupError(ErrorKind.MISUSE, "restore() cannot run inside a transaction")
            started = verdict.now()
            with install_lock(parts.path), writers_fenced(parts):
                info = self._restore_locked(path)
        _installed_since(parts, started)
        # Out of the install lock: an observer may write (the audit log re-anchors the chain it rewound).
        parts.executor.observers.rewound(f"restore of backup {info.path}")
        return info

    def _restore_locked(self, path: str | os.PathLike[str] | None) -> BackupInfo:
        parts = self.parts
        info = self.store.find(path) if path is not None else self.store.newest_verified()
        if info is None:
            raise BackupError(ErrorKind.CANTOPEN, f"no verified backup in {str(self.store.directory)!r}",
                              user_message="There is no verified backup to restore.")
        problems = self.store.verify(info.path)  # a lock that outlasts the policy raises: no verdict
        if problems:
            self.store.mark_unverified(info.path, problems[0])
            raise BackupError(ErrorKind.CORRUPT, f"backup {info.path!r} fails integrity_check, not restored: "
                              + "; ".join(problems[:5]))
        reached = self._sequence_reached() if self.redo is not None else 0
        parts.connections.close()
        try:
            tmp = copy_for_install(info.path, parts.path)
            fsync_file(tmp)
            moved = move_aside(parts.path, "replaced")
            install(tmp, parts.path)
            self.trust.database_back()
        finally:
            parts.connections.open()
        log.warning("restored %s from %s; previous files kept as %s", parts.path, info.path, moved)
        if self.redo is not None:
            # Writes after the backup were dropped on purpose: the restored file must neither make a
            # later recovery look for them as missing nor reuse their sequence numbers, so its
            # sequence moves past every one any writer reached (the re-anchoring backup carries it).
            try:
                set_sequence(parts.connections.live_connection(), reached)
            except parts.connections.module.Error as exc:  # dbfault: no fault (a read-only restored file)
                log.warning("could not move the restored database's sequence past dropped writes: %s", exc)
            self.backups.reanchor("a restore")
        return info

    def _sequence_reached(self) -> int:
        """The highest redo sequence any writer reached before a restore: this manager's, the replaced file's
        registry, every journal slot's. Another manager's writes after the backup are dropped by the restore
        too, and its slot keeps their records: numbers the restored file must never hand out again (two
        records of one sequence make a later recovery unable to tell which committed)."""
        assert self.redo is not None
        top = max(self.redo.seen, self.redo.seq, database_top(_committed_at_path(self.parts) or {}))
        for _slot, path in journal_files(self.redo.base_path):
            state = read_journal(path)
            top = max(top, state.last_seq, state.hwm or 0)
        return top

    # -- corruption ----------------------------------------------------------------------------
    def on_corruption(self, err: DatabaseError) -> None:
        """A statement met a damaged file: mark it corrupt and, with ``auto_recover``, recover now."""
        parts = self.parts
        m = parts.monitor
        found = err.detail if err.detail and err.detail not in m.integrity_problems else None
        # Statement after statement on the damaged table marks the file once, not at each error.
        if found is not None or m.integrity_ok is not False or not verdict.marker(parts).present():
            verdict.seen_damaged(parts, [found] if found is not None else m.integrity_problems,
                                 f"a {err.kind} error met by a statement")
        if not parts.config.auto_recover or parts.closed() or parts.transactions.depth:
            # Inside a transaction the error reaches the top-level handler again at depth 0.
            return
        self.auto_recover(f"{err.kind} error: {err.detail}")

    def auto_recover(self, reason: str) -> RecoveryReport | None:
        """Recover for ``reason`` unless one runs already or the last automatic one failed moments ago."""
        if self._recovering or time.monotonic() - self.last_failed_recovery < AUTO_RECOVERY_COOLDOWN:
            return None
        try:
            report = self.recover(reason=reason)
        except Exception:
            log.exception("automatic recovery failed")
            self.last_failed_recovery = time.monotonic()
            return None
        if not report.ok and not report.backup and not report.quarantined:
            self.last_failed_recovery = time.monotonic()
        return report

    @maintenance("recovery")
    def recover(self, reason: str = "requested") -> RecoveryReport:
        """Quarantine the damaged database, restore the newest verified backup, replay the journal."""
        parts = self.parts
        t0 = perf_counter()
        with parts.lock:
            if parts.transactions.depth:
                raise DatabaseError(ErrorKind.MISUSE, "recover() cannot run inside a transaction")
            if self._recovering:
                raise DatabaseError(ErrorKind.MISUSE, "a recovery is already running")
            self._recovering = True
            started = verdict.now()
            seen = parts.connections.identity or parts.connections.identity_at_path()  # the file seen damaged
            try:
                with install_lock(parts.path), writers_fenced(parts):
                    # Another process may have recovered it while this one waited for the lock.
                    elsewhere = recovered_by_another(parts, self.redo, seen)
                    if elsewhere is not None:
                        # A file holding every journaled write is in place, as after an install here: a refusal of
                        # this manager's own (commits missing from the file it had open, a removed -wal or -shm)
                        # ends too. Left in force, recover() said ok while health stayed unavailable for good.
                        self.trust.database_back()
                        # So does a journal whose anchoring failed (it started on the damaged file): it anchors on the
                        # sound one below, out of the install lock (else it took no record for good).
                        self.journal.sound_file_at_path()
                    report = self._recover_locked(reason, t0) if elsewhere is None else RecoveryReport(
                        not elsewhere, [], None, 0, perf_counter() - t0, elsewhere, reason, RECOVERED_BY_ANOTHER)
            finally:
                self._recovering = False
        m = parts.monitor
        m.recoveries += 1
        m.last_recovery = report.to_dict()
        if report.backup is not None or report.quarantined:
            _installed_since(parts, started)
        elif report.note == RECOVERED_BY_ANOTHER and parts.executor.before_write is not None:
            self.journal.anchor_if_due()  # (marked due above; now, not at the next write: health says so at once)
        level = logging.WARNING if report.ok else logging.ERROR
        log.log(level, "recovery of %s (%s): ok=%s, backup=%s, replayed %d write transaction(s) in %.3fs, "
                "quarantined %s%s", parts.path, reason, report.ok, report.backup, report.replayed, report.duration,
                report.quarantined, "; problems: " + "; ".join(report.problems) if report.problems else "",
                extra={"recovery": report.to_dict()})
        if report.backup is not None or report.quarantined:
            what = f"backup {report.backup}" if report.backup is not None else "the redo journal alone"
            parts.executor.observers.rewound(
                f"recovery ({reason}) from {what}, ok={report.ok}"
                + (f", {len(report.problems)} problem(s): {report.problems[0]}" if report.problems else ""))
        return report

    def _recover_locked(self, reason: str, t0: float) -> RecoveryReport:
        parts = self.parts
        problems: list[str] = []
        chosen: BackupInfo | None = None
        unchecked: list[str] = []
        for info in self.store.list():
            if not info.verified:
                continue
            try:
                bad = self.store.verify(info.path)
            except DatabaseError as exc:
                # Locked (or unreadable for a moment) beyond the retry policy: no verdict. It stays
                # verified for the next recovery; this one tries the next backup.
                log.warning("backup %s could not be checked now, skipped (still verified): %s", info.path,
                            exc.detail)
                unchecked.append(f"backup {info.path} could not be checked now ({exc.kind}); it was skipped, "
                                 "not marked bad: try again")
                continue
            if not bad:
                chosen = info
                break
            self.store.mark_unverified(info.path, bad[0])
            problems.append(f"backup {info.path} no longer passes integrity_check: {bad[0]}")
        state: JournalState | None = None
        if self.redo is not None:
            state = read_journal(self.redo.path)
            if not state.header and self.redo.anchored:
                # Ours had its header (adopted, or written by reset() at startup): the file was deleted or
                # replaced under us, so what it held since the backup is unknown, not "nothing". (One whose
                # anchoring failed never had a header and took no record: its error says so, see lost_writes.)
                problems.append(f"the redo journal {str(self.redo.path)!r} is missing or lost its header; "
                                "writes after the backup may not be replayed")
            lost = self.redo.lost_writes()
            if lost:
                problems.append(lost)
        elif parts.config.redo_journal:
            problems.append("the redo journal was not available; writes after the backup cannot be replayed")
        else:
            problems.append("the redo journal is off (redo_journal=False); writes after the backup are lost")

        # Every process's journal, merged by the global sequence (see reliability.redo).
        plan = None
        from_empty = False
        if state is not None:
            assert self.redo is not None
            base = self.redo.base_path
            from_empty = any(read_journal(p).from_empty and read_journal(p).base == 0 for _s, p in journal_files(base))
            # The damaged file may still say how far it got.
            committed = _committed_at_path(parts)
            backup_seq = chosen.last_seq if chosen is not None else 0
            unjournaled = unjournaled_writers(committed, backup_seq)
            if chosen is not None:
                unjournaled += unjournaled_writers(read_committed(chosen.path), backup_seq)
            problems += [f"{what}: its writes after the backup cannot be replayed and may be missing"
                         for what in sorted(set(unjournaled))]
            problems += _missing_journal_files(base, [committed, read_committed(chosen.path) if chosen else None],
                                               own=self.redo.slot if self.redo.owned else None,
                                               own_blank=self.redo.owned and not self.redo.anchored,
                                               after=backup_seq)
            alive, gone = self.redo.owner_slots()

            def merged(start: int) -> Any:
                return plan_replay(base, start, seen=self.redo.seen if self.redo else 0,
                                   committed=committed, alive=alive, gone=gone)

            if chosen is not None and chosen.last_seq is not None:
                # (No fallback to the journals alone from an empty database: a sequence missing after the backup
                # is missing from 0 too, since which records exist does not depend on where replay starts.)
                plan = merged(chosen.last_seq)
            elif chosen is None and from_empty:
                plan = merged(0)
            elif chosen is not None:
                problems.append(f"backup {chosen.path} records no redo sequence: writes after it cannot be replayed")
        start_empty = chosen is None and from_empty
        if chosen is None and not start_empty:
            problems[:0] = ["no verified backup to restore from; the damaged database was left in place"] + unchecked
            return RecoveryReport(False, [], None, 0, perf_counter() - t0, problems, reason)
        if plan is not None:
            if unchecked and plan.missing:
                # A newer backup was skipped only because it could not be checked *now* (a lock): the older
                # one leaves a gap the skipped one may cover. Installing it would turn a transient error
                # into lost writes (the database in place may hold them too), so nothing is installed.
                return RecoveryReport(False, [], None, 0, perf_counter() - t0, [
                    "nothing was installed: the backups that would restore every write could not be checked "
                    "now, and the older one leaves a gap; try again", *unchecked, *plan.problems], reason)
            problems += plan.problems
            planned = {(entry[0], entry[2]) for entry in plan.entries}
            for seq, slot in plan.unsure:
                if (seq, slot) in planned:
                    log.warning("replaying sequence %d of journal slot %d: the last record of a process that stopped "
                                "without closing, so it may never have committed, but the database lost commits "
                                "before it and it may have been acknowledged (see last_record_verdict)", seq, slot)
        parts.connections.close()
        tmp = Path(f"{parts.path}.restore-tmp")
        if start_empty:
            for p in (tmp, Path(f"{tmp}-journal")):
                if p.exists():
                    p.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        else:
            assert chosen is not None
            tmp = copy_for_install(chosen.path, parts.path)
        replayed = 0
        try:
            if plan is not None:
                replayed, replay_problems = replay_journal(tmp, plan.entries, foreign_keys=parts.config.foreign_keys,
                                                           policy=parts.policy, final_seq=plan.top,
                                                           module=parts.connections.module)
                problems += replay_problems
                if self.redo is not None:
                    self.redo.seen = max(self.redo.seen, plan.top)
            fsync_file(tmp)
            quarantined = move_aside(parts.path, "quarantine")
            install(tmp, parts.path)
            self.trust.database_back()
        finally:
            try:
                parts.connections.open()
            except Exception as exc:  # reported below; the manager reconnects on next use
                problems.append(f"reopening after recovery failed: {exc}")
        if self.redo is not None:
            self.backups.reanchor("a recovery")
        backup_name = chosen.path if chosen is not None else None
        return RecoveryReport(not problems, quarantined, backup_name, replayed, perf_counter() - t0,
                              problems, reason)


INSTALL_LOCK_SUFFIX = ".install-lock"


@contextmanager
def install_lock(db_path: str) -> Iterator[None]:
    """Hold the exclusive cross-process lock of ``<db>.install-lock`` while a recovery or restore runs.

    Two processes recovering at once would each quarantine the file the other just installed and
    install copies planned from journals the other was re-anchoring; with this lock the second waits
    and then runs on what the first left. A lock *file* rather than SQLite's lock on the database: the
    file being recovered may be damaged beyond SQLite's locking (a bad header) or gone. Opened
    ``O_NOFOLLOW``, mode 0600 (a planted link is refused); an ``flock``, so a process that dies
    releases it. Without ``fcntl`` (Windows) recoveries in two processes are not serialized.
    """
    fd = files.open_private(db_path + INSTALL_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, what="recovery lock file")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # dbfault: no fault (another recovery runs: wait for it to finish)
                log.warning("another process is recovering or restoring %s; waiting for it", db_path)
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _installed_since(parts: RuntimeParts, started: float) -> None:
    """A restore or recovery put another file at the path: it is not known to be damaged any more (the next
    check will tell), here and in every other process. The damage marker goes, unless it was written since
    ``started`` about the file just installed."""
    parts.connections.replaced_here()
    installed = parts.connections.identity_at_path()
    verdict.seen_sound(parts, None, keep=lambda mark: mark.at is not None and mark.at > started
                       and mark.file is not None and mark.file == installed)


@contextmanager
def writers_fenced(parts: RuntimeParts) -> Iterator[None]:
    """Hold SQLite's write lock on the file at the path while recovery plans and installs its replacement.

    A write another manager commits after the journals were read but before the new file is in place
    would land in the file being quarantined: acknowledged, then gone. With the write lock held,
    other writers wait (their busy timeout and the retry policy); once the new file is installed they
    get the old file's lock, and their identity check before COMMIT sees the path now names another
    file, so they reopen and rerun on it. A file SQLite cannot lock (missing, or damaged beyond
    reading its header) has no writers to fence: recovery goes on without.
    """
    conn = None
    outside: OutsideFence | None = None
    if os.path.exists(parts.path):
        module = parts.connections.module
        try:
            conn = module.connect(f"file:{Path(parts.path).resolve().as_posix()}?mode=rw", uri=True,
                                  timeout=parts.config.busy_timeout_ms / 1000.0, isolation_level=None)
        except module.Error as exc:  # dbfault: no fault (cannot open: no writer can either)
            log.warning("recovery could not fence writers out of %s: %s", parts.path, exc)
            conn = None
    if conn is not None:
        try:
            # A lock held by a writer is waited for under the shared policy; one that outlasts it
            # fails the recovery as BUSY (no verdict, nothing installed).
            fence = conn  # the lambda needs the narrowed (not None) connection
            run_maintenance(lambda: fence.execute("BEGIN IMMEDIATE"), parts.policy, "waiting for writers to finish")
        except DatabaseError as exc:
            conn.close()
            conn = None
            if exc.kind is ErrorKind.IOERR:
                # This process may read the file through a removed WAL's index (see outside_fence): a process
                # of its own takes the lock then. Another I/O error stays what it was (the helper fails too).
                outside = OutsideFence.take(parts.path, parts.config.sqlite_module,
                                            parts.config.busy_timeout_ms / 1000.0)
                if outside is not None:
                    log.warning("recovery fences writers out of %s from a helper process (this process: %s)",
                                parts.path, exc.detail)
            if outside is None and retryable_in_maintenance(exc.__cause__ or exc):
                raise
            if outside is None:
                log.warning("recovery could not fence writers out of %s: %s", parts.path, exc.detail)
        except module.Error as exc:  # dbfault: no fault (a damaged file: its writers fail on it too)
            conn.close()
            log.warning("recovery could not fence writers out of %s: %s", parts.path, exc)
            conn = None
    try:
        yield
    finally:
        if conn is not None:
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001  # dbfault: no fault (the fence only held a lock)
                pass
            conn.close()
        if outside is not None:
            outside.release()


def _committed_at_path(parts: RuntimeParts) -> dict[int, int] | None:
    """The redo sequence registry of the file at the path (None: it cannot say), as a new connection reads it.

    Read in this process while a handle of it holds a ``-wal`` removed from under the file, the registry's page
    may come from the index of the removed WAL mapped onto another ``-wal``: another table's rows, read without
    an error as slots and sequences (see :mod:`.outside_fence`). Then another process reads it.
    """
    if parts.connections.reads_through_removed_index():
        return committed_outside(parts.path, parts.config.sqlite_module, 1.0)
    return read_committed(parts.path, parts.connections.module)


def _missing_journal_files(base: Path, registries: list[dict[int, int] | None], own: int | None,
                           own_blank: bool = False, after: int | None = 0) -> list[str]:
    """Journal slots the database (or the backup) names whose file is gone: their writes cannot be replayed.

    This manager's own slot counts too when its file is ``own_blank``: it had no header when this manager took the
    slot and took no record since (its anchoring failed), so whatever the slot's earlier owner journaled there is
    gone with the file this one replaced (found by the data-loss machine: slot 0's journal deleted, a fresh manager
    taking slot 0 on the damaged file, and recovery said ok without seven acknowledged transfers), when the slot
    had an owner before this one: the backup's registry (the last of ``registries``) names it, or a registry says
    it committed after the backup (a sequence past ``after``). A slot this manager registered itself on the
    damaged file, with nothing committed (a manager started beside the writers), held nothing to lose.
    """
    backup_reg = registries[-1] if registries else None
    owned_before = own_blank and own is not None and (
        bool(backup_reg and own in backup_reg)
        or any(reg.get(own, 0) > (after or 0) for reg in registries if reg))
    slots = {slot for reg in registries if reg for slot in reg if slot >= 0 and slot != own}
    if owned_before and own is not None:
        slots.add(own)
    return [f"the redo journal of slot {slot} ({str(slot_path(base, slot))!r}) is missing"
            + (" (this manager found no journal there when it took the slot)" if slot == own else "")
            + "; the writes that manager made after the backup cannot be replayed and may be missing"
            for slot in sorted(slots) if slot == own or not os.path.lexists(slot_path(base, slot))]


def replay_journal(
    path: str | os.PathLike[str],
    entries: list[tuple[Any, ...]],
    *,
    foreign_keys: bool = True,
    policy: RetryPolicy | None = None,
    final_seq: int | None = None,
    module: ModuleType | None = None,
) -> tuple[int, list[str]]:
    """Replay journal ``entries`` into the database at ``path``; returns (transactions replayed, problems).

    ``entries`` are ``(seq, ops)`` or ``(seq, ops, slot)`` (merged journals: the slot's last
    committed sequence is recorded too, as the live commit does). Entries at or below the
    sequence recorded in the database are skipped; each batch records its last sequence in the
    same transaction, so running this twice applies everything once. ``final_seq``: the
    sequence the database continues from afterwards (past anything held back or missing, so a
    new transaction never reuses the sequence of a record still in some journal).
    A lock or one-off I/O error on a batch reruns it under ``policy``; one that outlasts it raises
    :class:`DatabaseError` (nothing is installed, the next recovery starts again) instead of
    cutting the replay short as if the journal ended there.
    ``module``: the runtime's SQLite build (default the stdlib's). The statements were written for that
    build: replayed by an older SQLite, one using a newer function (``concat()``, ``unistr()``...) fails
    and every acknowledged write after it is lost.
    """
    conn = (module or sqlite3).connect(str(path), isolation_level=None)
    problems: list[str] = []
    replayed = 0
    def prepare() -> None:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a lock shows here, not as "no sequence"

    try:
        run_maintenance(prepare, policy, "preparing the redo journal replay")
        done = read_sequence(conn) or 0
        todo = [entry for entry in entries if entry[0] > done]
        i = 0
        while i < len(todo):
            batch = todo[i:i + REPLAY_BATCH]
            try:
                run_maintenance(functools.partial(_apply_batch, conn, batch), policy, "replaying the redo journal")
                replayed += len(batch)
                i += len(batch)
                continue
            except sqlite_errors():
                pass  # find the exact entry below, one transaction each
            for entry in batch:
                try:
                    run_maintenance(functools.partial(_apply_batch, conn, [entry]), policy,
                                    "replaying the redo journal")
                except sqlite_errors() as exc:
                    problems.append(f"replay stopped at journal sequence {entry[0]}: {exc}; later writes were "
                                    "not replayed")
                    return replayed, problems
                replayed += 1
            i += len(batch)
        if final_seq is not None and final_seq > (read_sequence(conn) or 0):
            record_sequence(conn, final_seq)
    finally:
        conn.close()
    return replayed, problems


def _apply_batch(conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for entry in batch:
            for sql, params, many in entry[1]:
                if many:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params)
            if len(entry) > 2:
                set_sequence(conn, entry[0], entry[2])
        record_sequence(conn, batch[-1][0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
