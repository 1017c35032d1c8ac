"""Durability: the redo journal's lifecycle, schema trust, backups, recovery and scheduled upkeep.

Each part is built from the runtime's parts (:class:`~reliability.durability.parts.RuntimeParts`:
the connection, the lock, the executor, the policy, the counters) and the peer parts it needs,
passed at construction; none holds the :class:`~reliability.manager.DatabaseManager`:

=================  ===========================================================================
``backups``        :class:`~reliability.durability.backup.BackupManager`: the backup files (list, verify)
``scheduler``      :class:`~reliability.durability.upkeep.Scheduler`: the maintenance thread
``block``          :class:`~reliability.durability.parts.WriteBlock`: why writes are refused, or None
``journal``        :class:`~reliability.durability.journal.Journal`: open, reconcile, anchor, close
``taker``          :class:`~reliability.durability.backup.BackupTaker`: take a verified backup, re-anchor
``trust``          :class:`~reliability.durability.trust.Trust`: validate, migrate, roll back, write block
``recovery``       :class:`~reliability.durability.recovery.Recovery`: restore, recover, auto-recover
``upkeep``         :class:`~reliability.durability.upkeep.Upkeep`: integrity checks, the schedule
=================  ===========================================================================

Built in that order (each takes only parts built before it): journal <- taker <- trust <-
recovery <- upkeep; the one cycle in what they do (a startup journal anchors itself with a backup and
may start a recovery) is closed by :meth:`Durability.start` passing those two calls to
:meth:`Journal.start <reliability.durability.journal.Journal.start>`, not by a stored back-pointer.
Corruption reaches recovery through :attr:`Durability.watch`, one observer the facade adds to its
observers; health asks :meth:`Durability.health`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .. import files
from ..config import ReliabilityConfig
from ..errors import DatabaseError, RecoveryAction
from ..health import IntegrityReport
from ..schema import Migration, MigrationResult, SchemaReport
from . import verdict
from .backup import BackupInfo, BackupManager, BackupTaker
from .journal import Journal
from .parts import RuntimeParts, WriteBlock
from .recovery import Recovery, RecoveryReport
from .trust import Trust
from .upkeep import Scheduler, Upkeep

__all__ = ["Durability", "RecoveryReport", "RuntimeParts"]


class Durability:
    """Everything that keeps one runtime's data safe; the facade's durability methods delegate here.

    :param parts: the runtime's parts (never the facade).
    :param migrations: known migrations, validated at :meth:`start` (auto-applied when
        ``config.auto_migrate``).
    """

    def __init__(self, parts: RuntimeParts,
                 migrations: Sequence[Migration] | str | os.PathLike[str] | None = None) -> None:
        cfg = parts.config
        self.parts = parts
        #: The backup files.
        self.backups = BackupManager(cfg.backup_directory, cfg.backup_keep, parts.connections.module,
                                     busy_timeout=cfg.busy_timeout_ms / 1000.0, policy=parts.policy)
        #: Why writes are refused (an untrusted schema); the executor reads it, every new connection applies it.
        self.block = WriteBlock()
        #: The maintenance thread (scheduled backups and checks, a schema check a lock kept from running).
        self.scheduler = Scheduler([])
        self.journal = Journal(parts, self.backups, self.scheduler)
        self.taker = BackupTaker(parts, self.block, self.backups)
        self.trust = Trust(parts, self.block, self.journal, self.taker, self.scheduler, migrations)
        self.recovery = Recovery(parts, self.journal, self.taker, self.trust, self.backups)
        self.upkeep = Upkeep(parts, self.scheduler, self.taker, self.recovery.auto_recover)
        #: The observer that hands a statement's corruption error to recovery (the facade adds it).
        self.watch = CorruptionWatch(self.recovery)
        # A file another manager of this process installed (its restore or recovery) is not the one this manager
        # judged damaged: that verdict goes (see verdict.installed_by_another).
        parts.connections.on_replaced_here.append(lambda: verdict.installed_by_another(parts))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Remove what crashes left, open the redo journal, validate (maybe migrate) the schema, start the schedule."""
        # Temporaries named after a process that crashed while writing them: nothing else would ever remove them.
        files.remove_leftover_temps(self.parts.path, "create")
        verdict.marker(self.parts).remove_leftovers()
        # (The anchoring backup goes through Upkeep.backup like every other: a damaged copy sends the source to the
        # full check, whose verdict starts recovery with auto_recover.)
        self.journal.start(backup=self.upkeep.backup, recover=self.recovery.auto_recover,
                           check=lambda: self.upkeep.check_integrity(full=True))
        self.trust.start()
        self.scheduler.start()

    def follow_config(self, new: ReliabilityConfig) -> None:
        """A reload applied ``new``: the backups kept and their lock wait, and every schedule, follow it.

        (The schedule's tasks are the backup, the two integrity checks and the facade's health check.
        Where backups and journals live is read at start only: see ``reliability.reload.RESTART_KEYS``.)
        """
        self.backups.keep = max(1, new.backup_keep)
        self.backups.busy_timeout = new.busy_timeout_ms / 1000.0
        for name, interval in (("backup", new.backup_interval), ("quick_check", new.quick_check_interval),
                               ("integrity_check", new.integrity_check_interval),
                               ("health_check", new.health_check_interval)):
            self.scheduler.set_interval(name, interval)

    def close(self) -> None:
        """Stop the schedule, look at the ``-wal`` once more, close the journal (called by ``db.close()``).

        (The look: this close may be the last one, which checkpoints a damaged frame into the database where no
        check sees it; see :func:`~reliability.durability.verdict.wal_at_close`.)
        """
        self.scheduler.stop()
        verdict.wal_at_close(self.parts)
        self.journal.close()

    def abandon(self) -> None:
        """The runtime's constructor failed: stop the schedule and let the journal go (its slot and flock), as
        :meth:`close` does, but without the look at the ``-wal`` (nothing was served) and without the journal's
        clean-close record (no clean shutdown happened: the next start checks and anchors as after a crash)."""
        self.scheduler.stop()
        self.journal.close(clean=False)

    # -- what the facade delegates -------------------------------------------------------------
    def validate_schema(self, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None) -> SchemaReport:
        """See :meth:`Trust.validate_schema`."""
        return self.trust.validate_schema(migrations)

    def migrate(self, migrations: Sequence[Migration] | str | os.PathLike[str]) -> MigrationResult:
        """See :meth:`Trust.migrate`."""
        return self.trust.migrate(migrations)

    def rollback_migration(self, to: int, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None
                           ) -> MigrationResult:
        """See :meth:`Trust.rollback_migration`."""
        return self.trust.rollback_migration(to, migrations)

    def backup(self) -> BackupInfo:
        """See :meth:`Upkeep.backup` (a :meth:`BackupTaker.backup` whose damaged copy sends the source to a check)."""
        return self.upkeep.backup()

    def restore(self, path: str | os.PathLike[str] | None = None) -> BackupInfo:
        """See :meth:`Recovery.restore`."""
        return self.recovery.restore(path)

    def recover(self, reason: str = "requested") -> RecoveryReport:
        """See :meth:`Recovery.recover`."""
        return self.recovery.recover(reason)

    def check_integrity(self, full: bool = False) -> IntegrityReport:
        """See :meth:`Upkeep.check_integrity`."""
        return self.upkeep.check_integrity(full)

    # -- state read by the facade, health and tests ----------------------------------------------
    @property
    def redo(self) -> Any:
        """The redo journal opened at start (None when off or it could not be opened)."""
        return self.journal.redo

    @property
    def write_block(self) -> str | None:
        """Why writes are refused (an untrusted schema), or None."""
        return self.block.reason

    @property
    def schema_report(self) -> SchemaReport | None:
        """The last validation with the known migrations, or None."""
        return self.trust.schema_report

    def health(self) -> tuple[dict[str, Any], list[str]]:
        """Durability's health fields and its reasons to report degraded."""
        m = self.parts.monitor
        cfg = self.parts.config
        redo = self.journal.redo
        reasons: list[str] = []
        if m.last_backup_error:
            reasons.append(f"the last backup failed: {m.last_backup_error}")
        if cfg.backup_interval > 0 and m.last_backup_at is not None \
                and time.time() - m.last_backup_at > 2 * cfg.backup_interval:
            reasons.append("the last verified backup is older than twice the backup interval")
        if redo is not None and redo.error:
            reasons.append(redo.error)
        if self.block.reason:
            reasons.append(self.block.reason)
        mark = verdict.marker(self.parts).read()  # (read only: health never writes or removes the marker)
        if mark is not None and m.integrity_ok is not False:
            reasons.append(f"the database is {mark.describe()}; this manager has not seen the damage itself: the "
                           "runtime's own writes (audit entries, queued writes) wait until a recovery or a clean "
                           "integrity check clears it")
        if m.damage_mark_error:
            reasons.append(m.damage_mark_error)
        last = m.last_recovery
        if last is not None and not last.get("ok"):
            reasons.append("the last recovery was incomplete: " + "; ".join(last.get("problems") or []))
        schema = self.trust.schema_report
        extra: dict[str, Any] = {
            "last_backup_error": m.last_backup_error,
            "integrity_problems": list(m.integrity_problems),
            "damage_mark": None if mark is None else mark.to_dict(),
            "recoveries": m.recoveries,
            "last_recovery": last,
            "redo": None if redo is None else {
                "seq": redo.seq, "base": redo.base, "size": redo.size(), "owned": redo.owned,
                "error": redo.error, "slot": redo.slot, "path": str(redo.path)},
            "schema": None if schema is None else schema.to_dict(),
        }
        return extra, reasons


class CorruptionWatch:
    """The observer through which a statement's corruption error reaches recovery (one collaborator,
    added to the runtime's observers before the listeners, so recovery runs before they hear)."""

    #: Hears only failures: left out of the success hot path (see ``Observers.refresh``).
    active = False

    def __init__(self, recovery: Recovery) -> None:
        self.recovery = recovery

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        """Nothing: only a damaged file matters here."""

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """A damaged file (the error's action is RESTORE): mark it and maybe recover."""
        if err.action is RecoveryAction.RESTORE:
            self.recovery.on_corruption(err)
