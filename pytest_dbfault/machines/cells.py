"""Every property checked *while* each fault family is in force (issue #14, item 2).

The other machines check most properties once a fault has healed ("after:K"); this one, once per
example as it starts (:meth:`CellsMixin.fault_sweep`), puts a fault of each
family (locked, disk full, corruption, disconnect) in force in turn and, before healing it,
checks what each property means under that fault:

* P1 — while the file is still readable (a lock, a full disk, damaged pages elsewhere, a closed
  handle), the connection is kept or restored and a read of an intact table is served;
* P2/P8/P9 — every call's error is of a kind the fault can cause, user-friendly and logged;
* P3 — schema validation under the fault either answers or refuses with a clear error; it never
  calls an intact schema damaged, and never calls a tampered schema (an unknown version recorded)
  trusted;
* P4 — a migration run under the fault that succeeds applied exactly the pending versions, in
  order; whatever happens, the recorded versions stay an ordered prefix of the known migrations;
* P5 — a migration is never half-applied: one that fails under the fault (cannot take its lock,
  the disk fills half way, a page it reads is corrupt, the file is away) leaves the recorded
  versions and the tables as they were, one that succeeds went in whole; judged in every round
  on both paths (when the round's migration succeeds, one that cannot is run under the same fault);
* P6/P7 — a transaction that fails under the fault leaves nothing: no open transaction, no
  lock held by the runtime, no row of it in the file (read while the fault is still in force,
  from wherever the file is); one that commits holds exactly its rows;
* P10 — the counters keep matching, and once an operation met corruption health is not healthy;
* P11 — an integrity check under corruption flags it; under any other fault it never says corrupt;
* P12 — a backup taken under corruption is never marked verified (and a failed backup never
  rotates a good one away); a verified backup taken under any other fault holds exactly the
  acknowledged state;
* P13 — under corruption, recovery (the only heal) brings back every acknowledged write; under any
  other fault nothing is quarantined or restored and health never calls the database corrupt;
* P14/P15/P16/P17 — commands keep answering, audit entries are never lost, a reload takes effect
  for the next operation, every operation is logged.

Corruption also stays in force *across* rules (:meth:`CellsMixin.corrupt_in_force`): the file's
``kv`` b-tree is damaged for real and the workload, commands, audit entries, backups and
integrity checks run while it is (writes to the intact tables may succeed and are acknowledged);
it ends only by ``db.recover()``, after which every acknowledged write must be back (P13). Only
with the redo journal on: without it, writes acknowledged after the last backup cannot come back
and recovery must (and does) say so, which ``BackupMixin.corrupt_and_recover`` checks.

The sweep also puts each other injected kind in force once (:class:`KindsMixin`): busy_commit (a
second runtime in rollback-journal mode), busy_snapshot, enospc, io_error and short_read (through
the VFS shim, in the runtime's own SQLite build), file_full (the redo journal's descriptor) and
disconnect_replace (another database at the path: commands go on, writes are refused honestly, messages stay
fit for a user), each feeding the properties it threatens.
Why a sweep per example rather than rules alone: a rule is drawn in some examples only, and the
main job fails when a declared cell is empty; the sweep makes every cell filled in every run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from ..faults import FaultError, make_fault
from ..faults._files import moved_name
from ..stats import STATS
from .audit import AuditMixin, has_audit
from .backup import BackupMixin, has_recovery, read_file_state
from .base import default_runtime_factory, swarm
from .config import ConfigMixin, has_reload
from .degradation import DegradationMixin, has_commands
from .errors_logging import OperationLogMixin
from .health import HealthMixin, has_integrity_check, integrity_ok
from .schema import SchemaMixin, run_migrate, run_validate, schema_shape
from .workload import AppError

#: The matrix families (``pytest_dbfault.stats.FAMILIES``) and the kinds a round puts in force.
ROUND_FAMILIES: dict[str, tuple[str, ...]] = {
    "locked": ("locked",),
    "disk_full": ("disk_full",),
    "corrupt": ("corrupt",),
    "disconnect": ("disconnect_close", "disconnect_rename"),
}
#: Error kinds that mean "the file is damaged".
CORRUPT_KINDS = ("corrupt", "notadb", "ioerr_corruptfs")
#: Words of a problem that calls a file damaged.
CORRUPT_WORDS = ("malformed", "corrupt", "not a database", "btree", "page")
#: The version a tampered schema records (no migration has it); the round plants and removes it.
TAMPER_VERSION = 9999


def audit_ids(conn: Any) -> list[str]:
    """The audit entry ids stored in the database behind ``conn``, in order."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone() is None:
        return []
    return [r[0] for r in conn.execute("SELECT entry_id FROM reliability_audit ORDER BY seq")]


class CellsMixin(DegradationMixin, AuditMixin, HealthMixin, SchemaMixin, BackupMixin, ConfigMixin,
                 OperationLogMixin):
    """Fault rounds (one family in force, every property checked) and corruption kept in force."""

    #: the families a round may put in force (a bite test narrows it to one)
    round_families: ClassVar[tuple[str, ...]] = tuple(ROUND_FAMILIES)
    #: the kinds of a family a round may put in force, where narrower than ROUND_FAMILIES (bite tests)
    round_kinds: ClassVar[dict[str, tuple[str, ...]]] = {}
    settings_overrides: ClassVar[dict[str, Any]] = {**OperationLogMixin.settings_overrides,
                                                    **BackupMixin.settings_overrides,
                                                    **HealthMixin.settings_overrides}

    def after_start(self) -> None:
        super().after_start()
        #: an operation met the corruption now in force (health must not say healthy from then on)
        self.corrupt_seen_error = False
        #: after how many steps this example sweeps every family: at once. (Drawn from 0-2 it left
        #: examples of fewer steps without a sweep, and some cells with 2 checks in a run: too close
        #: to empty for cells the main job declares.) Later rounds see the state earlier rounds left.
        self.sweep_at = 0
        self.sweep_steps = 0
        self.swept = False
        #: a transaction failed while the file was away: the faults then in force (lock checked on its return)
        self.lock_check_due: list[str] | None = None

    def text(self) -> str:
        """Free text as the workload's, from a pool of a dozen made per example: the rounds write a lot,
        and a Faker sentence costs more than the write it goes into."""
        pool = getattr(self, "_text_pool", None)
        if pool is None:
            make = super().text
            pool = self._text_pool = [make() for _ in range(12)]
        return self.rng.choice(pool)

    # -- where the file is now ------------------------------------------------------------------
    def file_now(self) -> str:
        """The database file as it is now: moved away by a rename fault, else at its path."""
        if "disconnect_rename" in self.faults:
            return str(moved_name(Path(self.db_path), Path(self.db_path), "dbfault-moved"))
        return self.db_path

    def read_at(self, path: str, fn: Any) -> Any:
        """``fn(conn)`` on a plain connection to ``path`` (the runtime's SQLite build).

        A file moved away is read from a copy of it and its WAL: a connection of our own would be
        the file's last one when it closes, and SQLite would then checkpoint and delete the WAL
        that the heal moves back.
        """
        module = self.sqlite_module()
        copy = None
        if path != self.db_path:
            copy = os.path.join(self.dir, "scratch", "moved-copy.sqlite")
            for suffix in ("", "-wal"):
                if os.path.exists(path + suffix):
                    shutil.copyfile(path + suffix, copy + suffix)
            path = copy
        conn = None
        try:
            conn = module.connect(path, timeout=1.0, isolation_level=None)
            return fn(conn)
        except module.Error as exc:
            if module is sqlite3:
                raise
            # Callers catch sqlite3.Error (as of raw()): another build's errors are raised as that, same text.
            raise sqlite3.DatabaseError(str(exc)) from exc
        finally:
            if conn is not None:
                conn.close()
            if copy is not None:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        os.remove(copy + suffix)

    def db_errors(self) -> tuple[type[BaseException], ...]:
        """The DB-API errors a fault or a helper connection may raise: the stdlib's and the runtime build's."""
        return (sqlite3.Error, self.sqlite_module().Error)

    def versions_at(self, path: str) -> list[int]:
        def read(conn: Any) -> list[int]:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_reliability_migrations'").fetchone() is None:
                return []
            return [r[0] for r in conn.execute("SELECT version FROM _reliability_migrations WHERE version != ? "
                                               "ORDER BY rowid", (TAMPER_VERSION,))]

        return self.read_at(path, read)

    def group_at(self, path: str, grp: int) -> list[tuple[int, int]]:
        return self.read_at(path, lambda c: [tuple(r) for r in c.execute(
            "SELECT leg, amount FROM pairs WHERE grp = ? ORDER BY leg", (grp,))])

    # -- faults -----------------------------------------------------------------------------------
    def inject(self, kind: str, param: int = 0) -> bool:
        # While the file is corrupt it stays where it is: a file fault would carry the damaged file
        # away and bring it back over the recovered one.
        if "corrupt" in self.faults and kind in ("disconnect_rename", "disconnect_delete"):
            return False
        return super().inject(kind, param)

    def inject_corruption(self, seed: int) -> bool:
        """Damage the ``kv`` table's b-tree root page for real (the registry's ``corrupt`` fault) and keep it
        in force.

        Only ``kv`` is damaged, so the schema, the migrations table, the audit table and ``pairs`` stay
        readable: what must still work around the damage can be checked. The root page, because every
        access to ``kv`` reads it: no later write can succeed there and rewrite the damaged page (a
        damaged leaf can be rewritten, and then the corruption is no longer in force).
        """
        if self.faults or "corrupt" in self.faults:
            return False
        try:
            fault = make_fault("corrupt", self.db_path, part="btree", table="kv", page="root", seed=seed,
                               backup_before=True, counted_in=STATS)
            fault.inject()
        except (FaultError, *self.db_errors()):
            return False
        self.faults["corrupt"] = fault
        self.corrupt_seen_error = False
        self.fault_history.append("corrupt")
        return True

    def heal(self, kind: str) -> None:
        if kind != "corrupt" or kind not in self.faults:
            super().heal(kind)
            return
        others = [k for k in self.faults if k != "corrupt"]
        for other in others:  # recovery under a lock or a full disk may fairly fail: heal those first
            super().heal(other)
        self.recover_from_corruption()

    def heal_all(self) -> None:
        for kind in [k for k in self.faults if k != "corrupt"]:
            self.heal(kind)
        if "corrupt" in self.faults:
            self.heal("corrupt")

    def recover_from_corruption(self) -> None:
        """The only way corruption ends: ``db.recover()``. With the redo journal on it must succeed
        and bring back every acknowledged write (P13); with it off it may fail but must say why."""
        fault = self.faults["corrupt"]
        out = self.call(None, self.absorb, self.db.recover, faults=["corrupt"])
        report_ok = out.ok and bool(getattr(out.value, "ok", False))
        if self.config.redo_journal and not getattr(self, "journal_gap", False):
            self.check(13, report_ok, lambda: f"recovery from corruption in force failed with the redo journal on "
                                              f"and a verified backup: {out.value if out.ok else out.error!r}",
                       faults=["corrupt"])
        else:
            # Without the journal (a round only, where nothing is acknowledged into the damaged file), or
            # after a commit the journal could not record (file_full round): failing is allowed, failing
            # silently is not, and an ok report is still checked for every acknowledged write below.
            problems = getattr(out.value, "problems", None) if out.ok else [str(out.error)]
            self.check(13, report_ok or bool(problems),
                       lambda: f"recovery failed without saying why: {out.value!r}", faults=["corrupt"])
        del self.faults["corrupt"]
        self.corrupt_seen_error = False
        self.last_healed = "corrupt"
        if not report_ok:
            # Nothing was acknowledged into the damaged file (a round's writes all touch the damaged
            # table and fail): the undamaged copy is the acknowledged state. Put it back.
            self.put_back_undamaged(fault)
            return
        self.settle()
        try:
            stored_kv, stored_pairs = self.stored_kv(), self.stored_pairs()
        except sqlite3.Error as exc:
            self.check(13, False, f"after recovery the file is unreadable: {exc}", faults=["corrupt"])
            return
        self.check(13, stored_kv == self.model.kv and stored_pairs == self.model.pairs,
                   lambda: f"after recovery from corruption that was in force, acknowledged writes are missing or "
                           f"changed: kv {sorted(set(self.model.kv.items()) ^ set(stored_kv.items()))[:4]}, groups "
                           f"{sorted(set(self.model.pairs) ^ set(stored_pairs))[:4]}", faults=["corrupt"])

    # -- corruption in force across rules ----------------------------------------------------------
    @precondition(swarm("corrupt_in_force"))
    @precondition(lambda self: has_recovery(self) and not self.faults and not self.writes_queued()
                  and bool(self.config.redo_journal))
    @rule(seed=st.integers(0, 2**16))
    def corrupt_in_force(self, seed: int) -> None:
        """Damage the file and leave the damage in force: the following rules (workload, commands,
        audit, backups, integrity checks, migrations) run against a corrupt database until a heal
        recovers it. With no verified backup yet one is taken first, as an operator's schedule would
        have; otherwise the writes since the newest backup must come back from the redo journal."""
        if not self.ensure_backup():
            return
        self.inject_corruption(seed)

    def ensure_backup(self) -> bool:
        """A verified backup exists (one is taken when none does); False when none could be."""
        if any(b.verified for b in self.db.backups()):
            return True
        out = self.call(None, self.absorb, self.db.backup)
        if out.ok:
            self.remember(out.value)
        return out.ok

    @precondition(lambda self: "corrupt" in self.faults)
    @rule()
    def probe_corruption(self) -> None:
        """While corruption is in force: a read of the damaged table fails as corruption (user message,
        log record: P2/P8/P9 in ``call``), and from then on health is not healthy (P10)."""
        out = self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv")
        if not out.ok and str(out.error.kind) in CORRUPT_KINDS:
            self.corrupt_seen_error = True
        if out.ok:
            self.check(6, dict(out.value) == self.model.kv or self.writes_queued(),
                       "a read of the damaged table answered rows other than the acknowledged ones")
        if self.corrupt_seen_error:
            status = str(self.db.health().status)
            self.check(10, status != "healthy",
                       f"health says {status!r} after an operation met corruption that is still in force")

    # -- a fault round: one family in force, every property ------------------------------------------
    @precondition(lambda self: self.db is not None and not getattr(self, "swept", True))
    @invariant()
    def fault_sweep(self) -> None:
        """Once per example, when it starts: a round of each family, then of each other kind, in a drawn order.

        A targeted sequence (issue #14, item 3): every example checks every property under every
        family at least once, so no default run leaves a cell of the matrix empty by chance.
        """
        self.sweep_steps += 1
        if self.sweep_steps <= self.sweep_at or self.faults or not getattr(self, "migrations", None):
            return
        self.swept = True
        order = list(self.round_families)
        self.rng.shuffle(order)
        for family in order:
            kinds = self.round_kinds.get(family, ROUND_FAMILIES[family])
            # (a full disk with one page of headroom in the sweep: a two-page migration and the round's
            # transaction then fail half way unless the file has free pages (P5 does not depend on it: see
            # migrate_under_fault); and a write lock, not an exclusive one: readers get in, so the file is judged)
            param = 1 if family == "disk_full" else 2 * self.rng.randrange(3) if family == "locked" \
                else self.rng.randrange(6)
            # (the file moved away three times in four: a migration then fails, so P5 under disconnect is
            # checked in nearly every example; a closed handle reconnects and the migration succeeds)
            kind = "disconnect_rename" if "disconnect_rename" in kinds and self.rng.random() < 0.75 else \
                kinds[self.rng.randrange(len(kinds))]
            tampered = family != "disconnect" and self.rng.random() < 0.3
            self.run_round(family, kind, tampered, param, self.rng.randrange(2**16),
                           self.rng.choice(("create", "big", "reads_kv")), self.rng.randint(1, 5))
            if family == "disconnect" and kind != "disconnect_close" and "disconnect_close" in kinds:
                self.closed_handle_serves()
        for kind in self.rng.sample(self.other_kinds, len(self.other_kinds)):
            self.kind_round(kind)

    def closed_handle_serves(self) -> None:
        """P1 under disconnect in every example: the runtime's handle closed under it, a read of an intact table
        is served (it reconnects). A round whose file was moved away cannot judge P1 (nothing to serve), and the
        draw picks the moved file three times in four nominally, nearly always with Hypothesis' random: the
        cell P1 x disconnect was met by this machine in 0 to 3 examples of 10."""
        if self.faults or not self.inject("disconnect_close"):
            return
        try:
            self.connection_serves("disconnect", self.active_fault_names)
        finally:
            self.heal_all()

    #: the other kinds a sweep puts in force (:class:`KindsMixin`; none here)
    other_kinds: ClassVar[tuple[str, ...]] = ()

    def kind_round(self, kind: str) -> None:
        """Hook of :class:`KindsMixin`."""

    def run_round(self, family: str, kind: str, tampered: bool, param: int, seed: int, migration: str,
                  attempts: int) -> None:
        # The planted version must never reach a verified backup (a restore would bring it back): a
        # corruption round backs up *before* planting it (recovery then restores that backup, without
        # it), and no other round takes a backup while it is planted (see round_checks).
        self.settle()  # writes queued by an earlier round replay first: the model and the file agree
        # A row written just before, so what the round judges (backups, the file under the fault) holds data.
        key, value = f"user-{self.rng.randrange(13)}", self.text()
        if self.call("execute", self.db.execute, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value)).ok:
            self.model.kv[key] = value
        if family == "corrupt":
            if not has_recovery(self) or self.writes_queued():
                return
            if not self.ensure_backup():
                return
        if tampered:
            self.tamper_schema()
        if family == "corrupt":
            if not self.inject_corruption(seed):
                return self.untamper(tampered)
        elif not self.inject(kind, param):
            return self.untamper(tampered)
        inode = self.inode_now()
        try:
            self.round_checks(family, tampered, migration, attempts, kind=kind, param=param)
            if family != "corrupt":
                self.not_taken_for_corruption(faults=self.active_fault_names, inode=inode)
        finally:
            self.clear_sleep_hooks()
            self.heal_all()
            due, self.lock_check_due = self.lock_check_due, None
        if due is not None:
            self.check_lock_free(due)
        self.untamper(tampered)

    def inode_now(self) -> int | None:
        try:
            return os.stat(self.file_now()).st_ino
        except OSError:
            return None

    def not_taken_for_corruption(self, faults: list[str], inode: int | None) -> None:
        """P13 under a fault that is not corruption: nothing is quarantined or restored (the file is the
        same file), and health never calls the database corrupt."""
        now = self.inode_now()
        reasons = [str(r) for r in getattr(self.db.health(), "reasons", ())]
        called = [r for r in reasons if "corrupt" in r.lower()]
        self.check(13, now == inode and not called,
                   f"under {faults} the database was treated as corrupt: file {'replaced' if now != inode else 'kept'}"
                   f", health reasons {called}", faults=faults)

    def committed_intact(self, faults: list[str]) -> None:
        """P6 under the fault: every acknowledged multi-leg write is in the file whole, nothing else is."""
        if self.writes_queued():
            return
        try:
            stored = self.read_at(self.file_now(), lambda c: [tuple(r) for r in c.execute(
                "SELECT grp, leg, amount FROM pairs ORDER BY grp, leg")])
        except sqlite3.Error:
            return  # a lock that keeps readers out too
        got: dict[int, list[tuple[int, int]]] = {}
        for grp, leg, amount in stored:
            got.setdefault(grp, []).append((leg, amount))
        self.check(6, got == self.model.pairs, lambda: f"under {faults} the file's groups differ from the acknowledged "
                                                       f"ones: {sorted(set(got) ^ set(self.model.pairs))[:5]}",
                   faults=faults)

    def connection_serves(self, family: str, faults: list[str]) -> None:
        """P1 under a fault that leaves the file readable: the connection is kept (or restored) and a
        read of an intact table is served, however many errors the fault caused before."""
        if family == "disconnect" and "disconnect_close" not in faults:
            return  # the file is away: nothing to serve
        out = self.call("fetch_all", self.db.fetch_all, "SELECT grp, leg FROM pairs", faults=faults)
        self.check(1, out.ok, lambda: f"under {faults} a read of an intact table failed: {out.error!r}", faults=faults)

    def round_checks(self, family: str, tampered: bool, migration: str, attempts: int, *, kind: str = "",
                     param: int = 0) -> None:
        faults = self.active_fault_names
        if family == "corrupt":
            self.probe_corruption()
        self.connection_serves(family, faults)
        self.validate_under_fault(faults, tampered)
        if tampered and not self.untamper_in_force(family, kind, param):
            return  # the fault could not be put back (not seen in practice): nothing more is in force to judge
        faults = self.active_fault_names
        if not self.tamper_planted:
            # (A migration judges the schema when it ends: with the planted version it would refuse
            # writes until the next validation, which this round only runs once the fault is healed.
            # So the planted version is removed first, the fault still in force: every round migrates.)
            self.add_round_migration(migration)
            self.migrate_under_fault(faults)
        self.transactions_under_fault(faults)
        self.committed_intact(faults)
        if not self.tamper_planted or family == "corrupt":  # (a backup of a corrupt file must fail: nothing leaks)
            self.backup_under_fault(family, faults)
        self.integrity_in_round(family, faults)
        if has_commands(self):
            self.greet()
            self.store(self.rng.randrange(13))
            if family == "corrupt" and self.corrupt_seen_error:
                self.replay_refused_while_damaged(faults)
        if has_audit(self):
            self.record_entry(4)
        if has_reload(self) and getattr(self, "watcher", None) is not None:
            self.reload_under_fault(family, faults, attempts)
        self.p10_health_monitoring()
        self.p17_operation_logging()
        self.p15_audit_retry()

    def replay_refused_while_damaged(self, faults: list[str]) -> None:
        """P14 with corruption in force and seen by the runtime (a statement met it): ``replay()`` applies nothing
        while the file is damaged (a queued write waits for a sound file), and its report says exactly that: nothing
        applied, skipped or failed, every queued write remaining, the error ``corrupt``, no failures; the queue file
        is unchanged (no write set aside, none marked done). Recovery replays them later (``recover_from_corruption``
        judges that every acknowledged write is back)."""
        queue = self.db.commands.queue
        if not len(queue):
            return
        with open(queue.path, "rb") as fh:
            before = fh.read()
        got = self.absorb(self.db.commands.replay)
        with open(queue.path, "rb") as fh:
            after = fh.read()
        said = (got.applied, got.skipped, got.failed, got.remaining, got.error, list(got.failures))
        self.check(14, said == (0, 0, 0, len(queue), "corrupt", []) and after == before,
                   lambda: f"db.commands.replay() with {len(queue)} write(s) queued while corruption is in force and "
                           f"seen: reported applied/skipped/failed/remaining/error/failures {said}, expected "
                           f"{(0, 0, 0, len(queue), 'corrupt', [])}"
                           + ("" if after == before else "; the queue file changed"), faults=faults)

    # -- P3 -------------------------------------------------------------------------------------------
    #: the tampered version is recorded in the file now (planted by tamper_schema, removed by untamper*)
    tamper_planted = False

    def tamper_schema(self) -> None:
        """Record a migration version no known migration has (a database from a newer release)."""
        with self.raw() as conn:
            conn.execute("INSERT INTO _reliability_migrations (version, name, checksum, applied_at, duration) "
                         "VALUES (?, 'from_the_future', 'x', '2099-01-01T00:00:00Z', 0)", (TAMPER_VERSION,))
        self.tamper_planted = True

    def untamper_in_force(self, family: str, kind: str, param: int) -> bool:
        """Remove the planted version once P3 has judged it, the round's fault still in force, so the rest of the
        round (a migration, a backup) runs on the intact schema in every round: whether a cell of P4, P5 or P12
        is checked must not hang on the draw of ``tampered`` (Hypothesis' random draws it far more often than
        its nominal 30 %; seed 2 left P5 x disk_full with 1 example of 10). Only the runtime's explicit
        validations ran with the row in place, and those set no trust, so nothing is left to undo in the runtime.

        A full disk (one connection's page cap) or damaged ``kv`` pages leave a connection of ours free to
        write; a lock does not: it is released, the row removed and the same lock taken again (the checks
        after it are labelled with the lock, which is in force again). False when that lock could not be
        taken again (the round then ends); under another fault the row stays and the round goes on as a
        tampered one (no migration, no backup but a corrupt file's)."""
        try:
            with self.raw() as conn:
                conn.execute("DELETE FROM _reliability_migrations WHERE version = ?", (TAMPER_VERSION,))
            self.tamper_planted = False
            return True
        except self.db_errors():
            if family != "locked":
                return True
        self.clear_sleep_hooks()
        self.heal_all()
        self.untamper(True)
        return self.inject(kind, param)

    def untamper(self, tampered: bool) -> None:
        """Remove the tampered row and let the runtime validate again (a migration run meanwhile
        judged the schema with the row in place and refused writes, as it must)."""
        if not tampered:
            return
        from reliability import DatabaseError

        with self.raw() as conn:
            conn.execute("DELETE FROM _reliability_migrations WHERE version = ?", (TAMPER_VERSION,))
        self.tamper_planted = False
        if callable(getattr(self.db, "validate_schema", None)):
            try:
                self.absorb(self.db.validate_schema)
            except DatabaseError:
                pass

    def validate_under_fault(self, faults: list[str], tampered: bool) -> None:
        """P3: validation under the fault never trusts a tampered schema nor condemns an intact one."""
        applied = [m for m in self.migrations if m.version in set(self.model.applied_versions)]
        out = self.call(None, self.absorb, run_validate, self.db, applied, faults=faults, expected_message=False)
        if not out.ok:
            return  # a clear refusal (its kind, message and log record are checked by call())
        report = out.value
        if tampered:
            self.check(3, not report.ok, f"a schema recording an unknown version {TAMPER_VERSION} was validated "
                                         f"ok under {faults}: {report}", faults=faults)
        elif "corrupt" not in faults:
            self.check(3, report.ok, lambda: f"an intact schema was reported damaged under {faults}: "
                                             f"{report.problems}", faults=faults)
        else:
            # The schema itself is intact (only table pages are damaged): ok, or problems that name the damage.
            self.check(3, report.ok or all(any(w in p.lower() for w in CORRUPT_WORDS) for p in report.problems),
                       lambda: f"under corruption of table pages, validation invented schema problems: "
                               f"{report.problems}", faults=faults)

    # -- P4 / P5 --------------------------------------------------------------------------------------
    def next_batch(self) -> list[Any]:
        """The known migrations up to the first pending one: one migration per ``migrate`` call.

        Why: when a batch applies some versions and then fails, the runtime keeps its old list of
        known migrations, so the next validation (an explicit one, a restart, a recovery) calls the
        applied versions "unknown" and refuses every write (found by this machine; reported to the
        runtime's owners, reliability/durability/trust.py ``_change_schema``). Until that is fixed this
        machine, which recovers often, migrates one version at a time; SchemaMachine and the chaos
        machine still run whole batches.
        """
        first = next((i for i, m in enumerate(self.migrations) if m.version not in self.model.applied_versions), None)
        return list(self.migrations) if first is None else list(self.migrations[:first + 1])

    @precondition(swarm("migrate"))
    @precondition(lambda self: bool(getattr(self, "migrations", None)))
    @rule()
    def migrate(self) -> None:
        """SchemaMixin's migrate rule (P4/P5), on :meth:`next_batch`."""
        saved = self.migrations
        self.migrations = self.next_batch()
        try:
            SchemaMixin.migrate(self)
        finally:
            self.migrations = saved

    def add_round_migration(self, kind: str) -> None:
        """A pending migration of two statements, so a fault can strike between them."""
        from reliability.schema import Migration

        if any(m.version not in self.model.applied_versions for m in self.migrations):
            return  # one is pending already
        version = len(self.migrations) + 1
        name = f"r{version}"
        if kind == "create":
            # (the index is on id: the schema-damage rule may drop the label column)
            sql = f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT); CREATE INDEX ix_{name} ON {name} (id)"
        elif kind == "big":
            sql = (f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT); INSERT INTO {name} (label) "
                   f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) "
                   f"SELECT hex(randomblob(1500)) FROM n")
        else:
            sql = (f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT); "
                   f"INSERT INTO {name} (label) SELECT k FROM kv")
        self.migrations.append(Migration(version, f"{kind}_{name}", sql))
        if kind != "reads_kv":
            # (The runtime's validator skips a migration that cannot run on an empty database, as this
            # one, which reads a table made outside the migrations: damage to its table is not
            # detectable by design, so the schema-damage rule must not pick it.)
            self.tables.append(name)

    def migrate_under_fault(self, faults: list[str]) -> None:
        """P4 and P5 under the fault, whatever the migration's outcome; the file is read where it is.

        P5 (a migration is never half-applied: it goes in whole or leaves the recorded versions and the
        schema as they were) is judged on every outcome, and on the outcome it is about in every round: when
        the pending migration went in under the fault (a full disk with free pages left, a closed handle that
        reconnects, a lock healed in time), a second one that cannot go in is run under the same fault
        (:meth:`migrate_doomed`). Whether the cells P5 x family are checked then never hangs on the draw (a
        seed left P5 x disk_full empty in a default run while a migration that succeeded checked P4 only).
        """
        if not any(m.version not in self.model.applied_versions for m in self.migrations):
            self.add_round_migration("create")  # (a round always adds one; a caller of its own may not have)
        if self.judge_migrate(faults):
            self.migrate_doomed(faults)

    def judge_migrate(self, faults: list[str], doomed: bool = False) -> bool:
        """Run the first pending migration under the fault and judge P4/P5; True when it went in.

        ``doomed``: the pending migration cannot succeed (:meth:`migrate_doomed`): it must fail and leave nothing,
        and it never enters the model (a runtime that recorded it anyway is told so by P5 here)."""
        before = list(self.model.applied_versions)
        pending = [m.version for m in self.migrations if m.version not in before][:1]
        out = self.call(None, self.absorb, run_migrate, self.db, self.next_batch(), expected_message=False,
                        faults=faults, series=3)
        path = self.file_now()
        try:
            after = self.versions_at(path)
            live = self.read_at(path, schema_shape)
        except sqlite3.Error:
            return False  # a lock that keeps readers out too: nothing to read now
        order = [m.version for m in self.migrations]
        self.check(4, after == order[:len(after)],
                   f"recorded versions {after} are not an ordered prefix of the known migrations {order}",
                   faults=faults)
        newly = after[len(before):]
        if out.ok and not doomed:
            self.check(4, list(out.value.applied) == pending and after == before + pending,
                       f"migrate under {faults} reported {list(out.value.applied)} applied and recorded {after}; "
                       f"pending were {pending} after {before}", faults=faults)
            self.model.applied_versions += pending
            want = self.expected_shape()
            self.check(4, live == want, lambda: f"schema is {live}, the applied migrations make {want}", faults=faults)
        else:
            if not doomed:
                self.model.applied_versions += newly
            want = self.expected_shape()
        if doomed:
            self.check(5, not out.ok, lambda: f"a migration whose last statement cannot succeed (it inserts into a "
                                              f"missing table) was reported applied under {faults}: {out.value!r}",
                       faults=faults)
        # P5 on either outcome: the recorded versions are the ones before plus all of the pending ones (it went in)
        # or a part that stops short of the one that failed, and the file's schema is exactly what they make.
        whole = out.ok and not doomed
        how = "succeeded" if whole else "failed" if not out.ok else "was reported applied"
        self.check(5, after[:len(before)] == before and newly == pending[:len(newly)]
                   and (newly == pending if whole else len(newly) < len(pending)),
                   f"after a migrate that {how} under {faults} the recorded versions are {after} (before {before}, "
                   f"pending {pending})", faults=faults)
        self.check(5, live == want, lambda: f"after a migrate that {how} under {faults} the schema is {live}; the "
                                            f"versions recorded make {want}", faults=faults)
        return out.ok and not doomed

    def migrate_doomed(self, faults: list[str]) -> None:
        """P5 on the failure path under the fault: a migration that makes a table and writes a row to it (one page:
        it fits the sweep's full disk too), then runs a statement that cannot succeed (a missing table). It fails,
        under the fault (a lock, a file away or damaged, no room) or by its own statement, and must leave the
        recorded versions and the schema as they were: the runtime's own rollback is judged while the fault is in
        force. Then it leaves the program's migrations (never applied, it was never known)."""
        from reliability.schema import Migration

        version = max((m.version for m in self.migrations), default=0) + 1
        name = f"d{version}"
        sql = (f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT); INSERT INTO {name} (label) VALUES "
               f"('half of a migration'); INSERT INTO no_such_table_{name} (x) VALUES (1)")
        doomed = Migration(version, f"doomed_{name}", sql)
        self.migrations.append(doomed)
        self.renew_one_shot()
        try:
            self.judge_migrate(faults, doomed=True)
        finally:
            self.migrations.remove(doomed)

    # -- P6 / P7 --------------------------------------------------------------------------------------
    def transactions_under_fault(self, faults: list[str]) -> None:
        """P6 and P7 under the fault in every round: a transaction as :meth:`transaction_under_fault` draws it,
        and when that one committed (a closed handle reconnects, a full disk with free pages) one that gives
        up under the same fault, so P7 (a failed transaction leaves nothing, no open transaction, no lock) is
        judged whatever the draw (it was met only when the drawn transaction failed: 9 of 10 examples of a
        run under disconnect, fewer with more closed-handle rounds)."""
        if self.transaction_under_fault(faults):
            self.renew_one_shot()
            self.transaction_under_fault(faults, give_up=True)

    def renew_one_shot(self) -> None:
        """A fault that acts once (a closed handle: the runtime's next call reconnects) is put in force again before
        a second call judged under it, so that call meets it as the first did (the label stays true)."""
        old = self.faults.get("disconnect_close")
        if old is None:
            return
        self.heal("disconnect_close")
        if not self.inject("disconnect_close"):
            self.faults["disconnect_close"] = old  # no handle to close: nothing reopened it, still in force

    def transaction_under_fault(self, faults: list[str], give_up: bool | None = None) -> bool:
        """A two-leg write under the fault that also touches ``kv`` and, if it got that far, gives up
        (the application's own failure; drawn unless ``give_up`` says): whatever ended it, the file holds
        all of it or none of it. True when it committed."""
        grp = self.model.new_group()
        legs = [self.rng.randint(1, 500)]
        legs.append(-legs[0])
        key, value = f"user-{self.rng.randrange(13)}", self.text()
        drawn = self.rng.random() < 0.5
        give_up = drawn if give_up is None else give_up

        note = self.text() * 60  # two legs of it are more than a page: a full disk refuses them

        def body() -> None:
            for i, amount in enumerate(legs):
                self.db.execute("INSERT INTO pairs (grp, leg, amount, note) VALUES (?, ?, ?, ?)",
                                (grp, i, amount, note))
            self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
            if give_up:
                raise AppError("the application gave up under the fault")

        def run() -> None:
            with self.db.transaction():
                body()

        self.opaque_ops = True  # the statements inside are not booked one by one
        try:
            out = self.call("transaction", run, faults=faults)
        except AppError:
            self.model.ledger.app_aborts += 1
            out = None
        committed = out is not None and out.ok
        if committed:
            self.model.pairs[grp] = list(enumerate(legs))
            self.model.kv[key] = value
        depth = getattr(getattr(self.db, "transactions", None), "depth", 0)
        conn = getattr(getattr(self.db, "connections", None), "_conn", None)
        try:
            open_tx = bool(conn is not None and conn.in_transaction)
        except Exception:  # noqa: BLE001  a closed handle holds no transaction
            open_tx = False
        if not committed:
            self.check(7, depth == 0 and not open_tx,
                       f"after a transaction failed under {faults}: depth={depth}, in_transaction={open_tx}",
                       faults=faults)
        path = self.file_now()
        try:
            stored = self.group_at(path, grp)
        except sqlite3.Error as exc:
            self.check(7, False, f"the file cannot be read after a transaction under {faults}: {exc}", faults=faults)
            return committed
        expected = self.model.pairs.get(grp, [])
        self.check(7 if not committed else 6, stored == expected,
                   f"a transaction that {'committed' if committed else 'failed'} under {faults} left {stored} in "
                   f"the file (expected {expected})", faults=faults)
        if not committed and "locked" not in faults:
            if path == self.db_path:
                self.check_lock_free(faults)
            else:
                self.lock_check_due = faults  # the file is away (read from a copy): checked once it is back
        return committed

    def check_lock_free(self, faults: list[str]) -> None:
        """P7: after a transaction failed under ``faults``, the runtime holds no write lock on the file."""
        try:
            with self.raw() as conn:
                conn.execute("PRAGMA busy_timeout = 0")
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            free, why = True, ""
        except sqlite3.Error as exc:
            free, why = False, str(exc)
        self.check(7, free, lambda: f"the runtime still holds the write lock after a transaction failed under "
                                    f"{faults}: {why}", faults=faults)

    # -- P12 ------------------------------------------------------------------------------------------
    def backup_under_fault(self, family: str, faults: list[str]) -> None:
        """P12 under the fault: never a verified backup of a corrupt database, never a good backup lost
        to a failed one, and a verified backup taken under any other fault holds the acknowledged state."""
        if not callable(getattr(self.db, "backup", None)):
            return
        good_before = {str(b.path) for b in self.db.backups() if b.verified}
        out = self.call(None, self.absorb, self.db.backup, faults=faults)
        listed = {str(b.path): b.verified for b in self.db.backups()}
        if family == "corrupt":
            new_verified = sorted(p for p, v in listed.items() if v and p not in good_before)
            self.check(12, not (out.ok and out.value.verified) and not new_verified,
                       f"a backup of a corrupt database was marked verified: {new_verified or out.value}",
                       faults=faults)
        if not out.ok:
            lost = sorted(p for p in good_before if not listed.get(p))
            self.check(12, not lost, f"a backup that failed under {faults} took verified backups with it: {lost}",
                       faults=faults)
            return
        info = out.value
        if family == "corrupt" or not info.verified:
            return
        if self.writes_queued():
            return  # acknowledged writes wait in the queue: the file is behind the model by design
        try:
            got: Any = read_file_state(str(info.path))
        except sqlite3.Error as exc:
            got = f"unreadable: {exc}"
        want = (self.model.kv, self.model.pairs)
        self.check(12, got == want, lambda: f"a verified backup taken under {faults} does not hold the acknowledged "
                                            f"state ({'differs' if not isinstance(got, str) else got})", faults=faults)
        # As remember() does, but the audit log is read where the file is now (never at an empty path).
        self.snapshots[str(info.path)] = (dict(self.model.kv), {k: list(v) for k, v in self.model.pairs.items()})
        self.audit_snapshots[str(info.path)] = self.read_at(self.file_now(), audit_ids)
        self.version_snapshots[str(info.path)] = list(self.model.applied_versions)
        self.taken.append(str(info.path))

    # -- P11 ------------------------------------------------------------------------------------------
    def integrity_in_round(self, family: str, faults: list[str]) -> None:
        if not has_integrity_check(self):
            return
        if family != "corrupt":
            self.integrity_under_fault()
            return
        from reliability import DatabaseError

        if self.damage_gone():
            return  # nothing left to flag: no claim either way (see damage_gone)

        try:
            flagged = not integrity_ok(self.absorb(self.db.check_integrity))
            why = "check_integrity() answered ok"
        except DatabaseError as err:
            flagged, why = str(err.kind) in CORRUPT_KINDS, f"check_integrity() raised {err.kind}"
        self.check(11, flagged, lambda: f"damage in force was not flagged: {why}", faults=faults)
        if flagged:
            self.corrupt_seen_error = True

    def damage_gone(self) -> bool:
        """True when the harness's own ``quick_check`` of the file finds it intact although corruption is said to
        be in force: a write that succeeded on the damaged table rewrote the damaged page (damage that hit a part
        of the page SQLite does not read back, found by the CI profile: seed-dependent). The runtime answering
        "ok" then is right, and judging it against the damage would be a false violation."""
        def quick(conn: Any) -> list[Any]:
            return conn.execute("PRAGMA quick_check").fetchall()

        try:
            rows = self.read_at(self.file_now(), quick)
        except sqlite3.DatabaseError:
            return False
        return rows == [("ok",)]

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and bool(self.faults))
    @rule()
    def integrity_under_fault(self) -> None:
        """P11 with any fault in force; under corruption the check must flag the damage."""
        if "corrupt" in self.faults:
            self.integrity_in_round("corrupt", self.active_fault_names)
            return
        super().integrity_under_fault()

    # -- P16 ------------------------------------------------------------------------------------------
    def reload_under_fault(self, family: str, faults: list[str], attempts: int) -> None:
        """P16 under the fault: a valid change is taken while the fault is in force, and the next
        locked write makes exactly that many attempts."""
        from reliability import ConfigError

        lines = dict(self.env_lines, RELIABILITY_RETRY_ATTEMPTS=str(attempts))
        self.write_env(lines)
        try:
            self.watcher.check_now(force=True)
            why = ""
        except ConfigError as exc:
            why = str(exc)
        self.check(16, not why, f"a valid change was rejected under {faults}: {why}", faults=faults)
        if why:
            return
        self.env_lines = lines
        self.config = self.db.config
        self.check(16, self.db.config.retry_attempts == attempts
                   and getattr(self.db.policy, "attempts", attempts) == attempts,
                   f"under {faults} the reload left retry_attempts={self.db.config.retry_attempts}, policy "
                   f"{getattr(self.db.policy, 'attempts', None)}; the file says {attempts}", faults=faults)
        if family in ("corrupt", "disconnect"):
            return  # writes are refused at once (corruption) or the file is away: no retry series to count
        sleeps0, t0 = len(self.time.sleeps), self.time.now
        lock = None if "locked" in self.faults else make_fault("locked", self.db, mode="write", counted_in=STATS)
        if lock is not None:
            lock.inject()
        try:
            out = self.call("execute", self.db.execute, "INSERT INTO kv (k, v) VALUES ('locked-out', 'x')",
                            faults=sorted(set(faults) | {"locked"}))
        finally:
            if lock is not None:
                lock.heal()
        made = len(self.time.sleeps) - sleeps0 + 1
        cfg = self.db.config
        ceiling = min(cfg.retry_max_delay, cfg.retry_base_delay * 2 ** (made - 1))
        budget_cut = made < attempts and (self.time.now - t0) + ceiling > cfg.retry_budget
        self.check(16, not out.ok and (made == attempts or budget_cut),
                   f"a locked write after a reload under {faults} made {made} attempt(s); the file says {attempts}",
                   faults=faults)


@contextlib.contextmanager
def path_faults_on(module: str) -> Iterator[None]:
    """Faults given a bare path act on SQLite build ``module`` meanwhile (``$DBFAULT_SQLITE_MODULE``)."""
    from ..faults.target import MODULE_ENV

    old = os.environ.get(MODULE_ENV)
    os.environ[MODULE_ENV] = module
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(MODULE_ENV, None)
        else:
            os.environ[MODULE_ENV] = old


#: The other injected kinds: each is put in force once per sweep and feeds the properties it threatens.
OTHER_KINDS = ("busy_commit", "busy_snapshot", "enospc", "file_full", "io_error", "short_read",
               "disconnect_replace")
#: Kinds acting through the VFS shim: only connections opened after inject() see them.
VFS_KINDS = ("enospc", "io_error", "short_read")


class KindsMixin(CellsMixin):
    """A round per other fault kind (issue #14, item 2: "the other kinds each feed the properties they
    threaten"): the kind is put in force on the runtime for real, the properties it threatens are
    checked while it is, then it is healed."""

    def heal(self, kind: str) -> None:
        if kind in VFS_KINDS and kind in self.faults:
            # The runtime's connection was opened through the shim: close it before the shim goes,
            # so the next call reconnects on the default VFS.
            self.db.reconnect()
        super().heal(kind)

    def put_vfs_fault(self, kind: str, **params: Any) -> bool:
        # The shim goes into the runtime's own SQLite build (a fault at a bare path acts on the build
        # $DBFAULT_SQLITE_MODULE names): a shim in another copy of SQLite would never see the runtime's
        # files, and a check labelled with the fault would claim coverage it did not have.
        try:
            fault = make_fault(kind, self.db_path, counted_in=STATS, **params)
            with path_faults_on(self.config.sqlite_module):
                fault.inject()
        except (FaultError, ImportError):
            return False  # no shim in this build (VfsUnavailable is a FaultError): nothing to check
        self.faults[kind] = fault
        self.fault_history.append(kind)
        self.db.reconnect()  # reconnect through the shim
        return True

    def kind_round(self, kind: str) -> None:
        if self.faults:
            return
        self.settle()  # writes queued by the previous round replay first: the model and the file agree
        if self.writes_queued():
            return
        try:
            getattr(self, f"round_{kind}")()
        finally:
            self.clear_sleep_hooks()
            self.heal_all()

    def write_key(self, faults: list[str]) -> tuple[str, str, Any]:
        """One acknowledged-or-refused write of a random key; the model follows what was acknowledged."""
        key, value = f"user-{self.rng.randrange(13)}", self.text()
        out = self.call("execute", self.db.execute, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value),
                        faults=faults)
        if out.ok:
            self.model.kv[key] = value
        return key, value, out

    def read_back(self, key: str, faults: list[str], number: int = 6) -> None:
        """The runtime reads ``key`` back under the fault: the acknowledged value, nothing else."""
        out = self.call("fetch_one", self.db.fetch_one, "SELECT v FROM kv WHERE k = ?", (key,), faults=faults)
        if out.ok and not self.writes_queued():
            got = out.value[0] if out.value else None
            self.check(number, got == self.model.kv.get(key),
                       f"under {faults} {key!r} reads {got!r}, acknowledged {self.model.kv.get(key)!r}", faults=faults)

    def round_io_error(self) -> None:
        """A one-off I/O error on a write (P1: retried after a reconnect, the write succeeds; P6: stored once)."""
        if not self.put_vfs_fault("io_error", ops="write", nth=1):
            return
        faults = ["io_error"]
        key, _value, out = self.write_key(faults)
        self.check(1, out.ok or self.config.retry_attempts == 1,
                   lambda: f"a write failed on a one-off I/O error with {self.config.retry_attempts} attempts allowed: "
                           f"{out.error!r}", faults=faults)
        self.read_back(key, faults)
        if has_integrity_check(self):
            self.heal("io_error")
            self.read_error_in_integrity_check()

    def read_error_in_integrity_check(self) -> None:
        """P11: a one-off I/O error on the integrity check's first read is no verdict: the check is rerun and
        passes, or (``retry_attempts=1``: one attempt cannot tell a one-off error from a lasting one) raises an
        error; it never reports the intact file as having problems. The runtime's own handle was opened before
        the fault and does not see it: only the check's new connection does."""
        from reliability import DatabaseError

        try:
            fault = make_fault("io_error", self.db_path, counted_in=STATS, ops="read", nth=1)
            with path_faults_on(self.config.sqlite_module):
                fault.inject()
        except (FaultError, ImportError):
            return
        self.faults["io_error"] = fault
        faults = ["io_error"]
        try:
            report = self.absorb(self.db.check_integrity)
            verdict = None if integrity_ok(report) else list(getattr(report, "problems", []) or ["(none named)"])
            raised = None
        except DatabaseError as err:
            verdict, raised = None, err
        if not getattr(fault, "fired", 0):
            self.heal("io_error")
            return  # the error never struck the check's reads: nothing was checked under it, so no claim
        self.check(11, verdict is None, lambda: f"a one-off read error in the integrity check (retry_attempts="
                                                f"{self.config.retry_attempts}) was reported as problems: {verdict}",
                   faults=faults)
        self.check(11, raised is None or self.config.retry_attempts == 1,
                   lambda: f"the integrity check raised on a one-off read error with {self.config.retry_attempts} "
                           f"attempts allowed: {raised!r}", faults=faults)
        self.heal("io_error")

    def round_enospc(self) -> None:
        """The file system is full (every write of the database's files fails): writes are refused as
        full and change nothing (P2, P6, P7), commands queue (P14), audit entries survive (P15)."""
        if not self.put_vfs_fault("enospc"):
            return
        faults = ["enospc"]
        key, _value, out = self.write_key(faults)
        self.check(2, not out.ok, "a write succeeded while every write of the database files fails with ENOSPC",
                   faults=faults)
        self.read_back(key, faults)
        self.transaction_under_fault(faults)
        if has_commands(self):
            self.store(self.rng.randrange(13))
        if has_audit(self):
            self.record_entry(4)

    def round_short_read(self) -> None:
        """Every read of the file comes back short (zero-filled): the integrity check flags it (P11), health
        says so (P10), reads fail as corruption (P2/P8/P9); once healed, a fresh check passes again."""
        if not self.put_vfs_fault("short_read", persistent=True):
            return
        faults = ["short_read"]
        self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv", faults=faults)
        if has_integrity_check(self):
            from reliability import DatabaseError

            try:
                flagged = not integrity_ok(self.absorb(self.db.check_integrity))
            except DatabaseError as err:
                flagged = str(err.kind) in CORRUPT_KINDS + ("ioerr",)
            self.check(11, flagged, "an integrity check passed while every read of the file came back short",
                       faults=faults)
            if flagged:
                status = str(self.db.health().status)
                self.check(10, status != "healthy", f"health says {status!r} after the integrity check failed",
                           faults=faults)
        self.heal("short_read")
        if has_integrity_check(self):
            self.integrity_passes(None)  # the verdict is not kept once the file reads fine again

    def round_busy_snapshot(self) -> None:
        """The runtime's connection holds a stale WAL snapshot: a write fails as busy_snapshot or succeeds
        (P2/P8/P9), a failed one changed nothing (P6), the connection is kept and still serves reads while
        the snapshot is stale (P1), and once it is released writes work (P1, labelled "after:busy_snapshot":
        the fault is no longer in force)."""
        if str(self.config.journal_mode).upper() != "WAL":
            return
        try:
            fault = make_fault("busy_snapshot", self.db, counted_in=STATS)
            fault.inject()
        except (FaultError, *self.db_errors()):
            return
        self.faults["busy_snapshot"] = fault
        self.fault_history.append("busy_snapshot")
        faults = ["busy_snapshot"]
        key, _value, _out = self.write_key(faults)
        self.read_back(key, faults)
        served = self.call("fetch_all", self.db.fetch_all, "SELECT grp, leg FROM pairs", faults=faults)
        self.check(1, served.ok, lambda: f"under busy_snapshot a read of an intact table failed: {served.error!r}",
                   faults=faults)
        self.heal("busy_snapshot")
        after_heal = self.labels()  # ["after:busy_snapshot"]: checked once the fault is gone
        _k, _v, after = self.write_key(after_heal)
        self.check(1, after.ok, lambda: f"a write failed after the stale snapshot was released: {after.error!r}",
                   faults=after_heal)

    def round_file_full(self) -> None:
        """The redo journal's file is full (ENOSPC on its descriptor): a write is refused or stored, never
        half (P6), and while the journal cannot be written health is not healthy (P10)."""
        if not self.config.redo_journal:
            return
        try:
            fault = make_fault("file_full", self.db, sidecar=".redo", counted_in=STATS)
            fault.inject()
        except (FaultError, OSError):
            return
        self.faults["file_full"] = fault
        self.fault_history.append("file_full")
        faults = ["file_full"]
        key, _value, out = self.write_key(faults)
        self.read_back(key, faults)
        if out.ok:
            # acknowledged, not journaled: a later recovery may fairly report that it cannot replay it
            self.journal_gap = True
            status = str(self.db.health().status)
            self.check(10, status != "healthy", f"health says {status!r} although a commit could not be journaled",
                       faults=faults)
        # The journal now misses a commit: a backup re-anchors it (what the runtime's own schedule does).
        self.heal("file_full")
        self.call(None, self.absorb, self.db.backup)

    def round_disconnect_replace(self) -> None:
        """The database file (with its -wal) replaced by another database, an empty file or an unrelated
        one, while the runtime runs; healed by putting the original back. While the stand-in is in force:

        * P14 — a command that needs no database answers; a write command is acknowledged (ok, queued)
          or refused with a message fit for a user, and only an acknowledged one is booked;
        * P2 — a write to the application's table is refused (the stand-in has no such table: a write
          acknowledged there would be gone when the original is back), as an error of a kind the fault
          can cause, with its user message and log record (P8, P9 in :meth:`call`);
        * P6 — a read that is served returns the acknowledged value (a refusal is fine, another value is not).

        Once the original is back a write and a read of it are served (P1, P6, labelled
        ``after:disconnect_replace``). Audit entries are not recorded under it: an entry recorded into
        the stand-in is acknowledged as stored and lost when the original comes back (a runtime bug
        reported in issue #15's audit work; see the h14-seeds report)."""
        standin = None
        if self.rng.random() < 0.5:  # an unrelated database, as another application's file would be
            standin = os.path.join(self.dir, "scratch", "standin.sqlite")
            if not os.path.exists(standin):
                conn = self.sqlite_module().connect(standin, isolation_level=None)
                try:
                    conn.execute("CREATE TABLE other (x)")
                finally:
                    conn.close()
        try:
            fault = make_fault("disconnect_replace", self.db_path, replacement=standin, counted_in=STATS)
            fault.inject()
        except (FaultError, OSError):
            return
        self.faults["disconnect_replace"] = fault
        self.fault_history.append("disconnect_replace")
        faults = ["disconnect_replace"]
        if has_commands(self):
            name = self.pick("first_name")
            greeted = self.db.commands.run("greet", name)
            self.check(14, greeted.status == "ok" and greeted.value == f"hello {name}",
                       f"'greet' answered {greeted.status!r} {greeted.value!r} ({greeted.message}) while the "
                       f"database file was replaced", faults=faults)
        key, _value, out = self.write_key(faults)
        self.check(2, not out.ok, f"a write to the application's table was acknowledged while the path named "
                                  f"another database ({'an unrelated one' if standin else 'an empty file'}): "
                                  f"it is lost when the original is back", faults=faults)
        self.read_back(key, faults)
        if has_commands(self):
            self.command_under_replace(faults)
        self.heal("disconnect_replace")
        after = self.labels()
        _k, _v, written = self.write_key(after)
        self.check(1, written.ok, lambda: f"a write failed once the original database was put back: "
                                          f"{written.error!r}", faults=after)
        self.read_back(key, after)

    def command_under_replace(self, faults: list[str]) -> None:
        """P14/P8: a write command under a replaced file is acknowledged or refused in words fit for a user."""
        from .workload import user_message_problems

        key, value = f"user-{self.rng.randrange(13)}", self.text()
        before = len(self.db.commands.queue)
        result = self.absorb(self.db.commands.run, "store", key, value)
        self.check(14, result.status in ("ok", "queued", "error", "unavailable", "rejected"),
                   f"'store' answered {result.status!r}: {result.message}", faults=faults)
        if result.status == "queued":
            self.check(14, len(self.db.commands.queue) >= before + 1 and self.queue_file_has(result.queue_key),
                       f"a queued write is not in the durable queue file (key {result.queue_key})", faults=faults)
        if result.status in ("ok", "queued"):
            self.model.kv[key] = value  # acknowledged: it must be in the original once replayed
            return
        problems = user_message_problems(result.message, [self.dir, self.db_path])
        self.check(8, not problems, lambda: f"'store' refused with {result.message!r}: {'; '.join(problems)}",
                   faults=faults)

    def round_busy_commit(self) -> None:
        """Rollback journal: a reader's SHARED lock makes COMMIT busy. On a second runtime (DELETE journal
        mode, its own file): the transaction is rerun and commits once the reader goes (P1), lands whole
        or not at all (P6), and a failed one leaves no open transaction nor lock (P7)."""
        side_path = os.path.join(self.dir, "side.db")
        factory = type(self).runtime_factory or default_runtime_factory()
        cfg = dataclasses.replace(self.config, db_path=side_path, journal_mode="DELETE", redo_journal=False,
                                  operation_log=False)
        side = factory(cfg)
        policy = getattr(side, "policy", None)
        if policy is not None:
            policy.sleep, policy.clock = self.time.sleep, self.time.clock
        try:
            side.execute("CREATE TABLE IF NOT EXISTS legs (n INTEGER PRIMARY KEY, amount INTEGER NOT NULL)")
            try:
                # The side runtime, not its path: the reader then uses its SQLite build (only that build's
                # readers block its COMMIT).
                fault = make_fault("busy_commit", side, counted_in=STATS)
                fault.inject()
            except (FaultError, *self.db_errors()):
                return
            self.faults["busy_commit"] = fault
            self.fault_history.append("busy_commit")
            faults = ["busy_commit"]
            heal_after = self.rng.randint(1, 4)
            healed_in_time = heal_after < self.config.retry_attempts
            if healed_in_time:
                self.heal_after_sleeps(faults, heal_after)
            base = self.rng.randrange(10**6) * 2

            def body() -> None:
                side.execute("INSERT INTO legs (n, amount) VALUES (?, ?)", (base, 7))
                side.execute("INSERT INTO legs (n, amount) VALUES (?, ?)", (base + 1, -7))

            out = self.call(None, side.run_in_transaction, body, faults=faults)
            self.clear_sleep_hooks()
            rows = self.read_side(side_path, base)
            self.check(7, rows is not None, "after a transaction under busy_commit ended, readers are shut out of "
                                            "the file: the runtime still holds its lock", faults=faults)
            if rows is None:
                return
            self.check(6, rows in (0, 2), f"a transaction under busy_commit left {rows} of its 2 rows", faults=faults)
            self.check(6, (rows == 2) == out.ok, f"the transaction {'committed' if out.ok else 'failed'} but the "
                                                 f"file holds {rows} of its rows", faults=faults)
            spent_ok = self.time.now < 10**9  # (the fake clock never runs out)
            if healed_in_time and spent_ok:
                self.check(1, out.ok or self.budget_spent(),
                           lambda: f"the reader left after retry {heal_after} of {self.config.retry_attempts - 1}, "
                                   f"but the transaction failed: {out.error!r}", faults=faults)
            if not out.ok:
                try:
                    open_tx = side.connection.in_transaction
                except Exception:  # noqa: BLE001  a closed handle holds no transaction
                    open_tx = False
                self.check(7, not open_tx, "a transaction that failed on a busy COMMIT was left open", faults=faults)
            self.heal("busy_commit")
        finally:
            side.close()

    def budget_spent(self) -> bool:
        """True when the last retry series may have stopped on the retry budget rather than the attempts."""
        return sum(self.time.sleeps[-self.config.retry_attempts:]) + self.config.retry_max_delay > \
            self.config.retry_budget

    def read_side(self, path: str, base: int) -> int | None:
        """How many of the transaction's two rows the side file holds; None when readers are locked out."""
        module = self.sqlite_module()
        conn = module.connect(path, timeout=0.2, isolation_level=None)
        try:
            return int(conn.execute("SELECT count(*) FROM legs WHERE n IN (?, ?)", (base, base + 1)).fetchone()[0])
        except module.OperationalError:
            # (The runtime's build's class: under pysqlite3 "database is locked" is not a sqlite3.OperationalError,
            # and caught as one it escaped the machine instead of failing P7.)
            return None
        finally:
            conn.close()


class UnderFaultMachine(KindsMixin):
    """Fault rounds and corruption in force, among the workload, commands, audit, backups, migrations."""

    other_kinds = OTHER_KINDS

    core_groups = frozenset(("corrupt_in_force",))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close", "disconnect_rename")

    @precondition(lambda self: "corrupt" in self.faults and has_commands(self) and len(self.faults) == 1)
    @rule()
    def replay_while_damaged(self) -> None:
        """P14 with corruption in force across rules: :meth:`replay_refused_while_damaged` (a statement meets the
        damage first when none has yet, so the runtime knows)."""
        if not self.corrupt_seen_error:
            self.probe_corruption()
        if self.corrupt_seen_error:
            self.command_under_replace(["corrupt"])
            self.replay_refused_while_damaged(["corrupt"])

