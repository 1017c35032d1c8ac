"""Hard restarts: a kill -9 of a process running the runtime, and power loss at the worst moments.

Two ways a deployment loses its process, each followed by a new runtime on the same files:

* **kill -9** (:meth:`RestartMixin.kill9_restart`): the machine's runtime is closed and a real
  process (:mod:`.kill_worker`, forked by a fork server) runs a drawn list of writes on the same files; it is
  SIGKILLed at a drawn point — before any file write, flush or rename the runtime makes, or before any statement
  SQLite starts (``BEGIN``, a write, ``COMMIT``). A new runtime then opens the files. Every write
  the worker acknowledged is there, every write that failed is not, and the one in flight is all
  there or not at all (P6); with ``then_damage`` the file is also damaged and recovered, and
  recovery must bring back every acknowledged write and no failed one (P13). The page cache
  survives a kill, so this judges ordering and reconciliation, not fsync.
* **power loss** (the model of :mod:`.powerloss`): only what was fsynced survives, for the runtime's
  own files (redo journal, write queue, audit fallback, backups and their directory). The rules
  put it where a missing fsync costs something: during an outage with commands queued and audit
  entries in the fallback file (P14 and P15 then want every acknowledged one back), and between
  acknowledged writes and a damaged file (P13: recovery replays the journal, so the journal must
  hold every acknowledged write), and right after backups and their rotation (P12: every verified
  backup is still there and every rotated one stays gone).

The machine runs synchronous FULL or EXTRA (NORMAL promises nothing across a power loss).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from reliability import BackupManager

from ..faults import make_fault
from ..faults.base import FaultError
from ..faults.crash import CrashResult, Starter, forked, watch_child
from ..stats import STATS
from . import served
from .audit import FALLBACK_FIELDS, AuditMachine, AuditMixin, has_audit
from .backup import CORRUPTIONS, BackupMixin, has_backups, has_recovery
from .base import KV_INDEX, default_runtime_factory, swarm
from .degradation import OUTAGES, DegradationMixin, has_commands
from .kill_worker import FORMS, work
from .served import _PassFd


def fork_and_kill(factory: Any, config: Any, ops: list[tuple[str, list[tuple[str, str, bool]]]], occurrence: int,
                  timeout: float = 60.0) -> CrashResult:
    """Start a child running :func:`.kill_worker.work` with runtime ``factory(config)`` and SIGKILL it at its
    ``occurrence``-th point.

    The child is forked by a single-threaded fork server (:func:`worker_starter`), not by this process:
    this one runs threads (the runtime's journal flusher, a user's), and a child forked from a
    multi-threaded process may hang on a lock another thread held at the fork (Python 3.12+ warns).

    ``killed`` is False when the child made every operation first (it then ended without closing the
    runtime, which is the same as a kill after its last acknowledgement).
    :raises RuntimeError: the child failed on its own (its traceback is on stderr).
    """
    child, killed, point, seen = watch_child(worker_starter(factory, config, ops),
                                             kill_at="any", occurrence=occurrence, timeout=timeout)
    if not killed and child.returncode != 0:
        raise RuntimeError(f"the kill -9 worker failed on its own (exit {child.returncode}; traceback on stderr)")
    return CrashResult(config.db_path, killed, point, occurrence if killed else None, dict(seen), child.returncode)


def worker_starter(factory: Any, config: Any, ops: list[tuple[str, list[tuple[str, str, bool]]]]) -> Starter:
    """How :func:`fork_and_kill` starts its worker: from multiprocessing's fork server when it can.

    The fork server is a fresh single-threaded interpreter started once per test run (the
    ``forkserver`` start method, Python 3.14's default on Linux) with the runtime imported; each
    worker is a fork of it (milliseconds, where a new interpreter per worker costs about a second on
    a loaded machine). What the worker needs reaches it pickled, so ``factory`` must be importable
    by name. One that is not (a lambda, a closure, a class defined in a function) cannot cross to
    another process; for it the worker is forked from this process as before, which Python 3.12+
    warns about when threads are running (the warning is then true: say so rather than hide it).
    """
    if not _crosses(factory, config, ops):
        return forked(lambda points_w, ack_r: work(factory, config, ops, points_w, ack_r))
    ctx = served.context()  # (the server the data-loss machine's processes are forked from too)

    def start(points_w: int, ack_r: int, parent_ends: tuple[int, int]) -> _ServedChild:
        # (parent_ends need no closing: the served child inherits nothing of this process but what is passed.)
        process = ctx.Process(target=_serve_worker, name="dbfault-kill-worker", daemon=False,
                              args=(factory, config, ops, _PassFd(points_w), _PassFd(ack_r), _PassFd(2)))
        process.start()
        return _ServedChild(process)

    return start


def _crosses(factory: Any, config: Any, ops: Any) -> bool:
    """Can the worker's arguments reach a process that is not a fork of this one?"""
    try:
        pickle.dumps((factory, config, ops))
    except Exception:  # noqa: BLE001  # dbfault: no fault (pickle raises many kinds: not picklable is the answer)
        return False
    module = getattr(factory, "__module__", None)
    # Pickled by reference: the server's child imports it by this name (with this process's sys.path).
    try:
        return module is None or module in sys.builtin_module_names or importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # dbfault: no fault (a module made at run time: no spec to find)
        return False


def _serve_worker(factory: Any, config: Any, ops: Any, points_fd: int, ack_fd: int, stderr_fd: int) -> None:
    """The served child's body: stderr where this test's is now (a traceback reaches its report), then work."""
    os.dup2(stderr_fd, 2)
    os.close(stderr_fd)
    work(factory, config, ops, points_fd, ack_fd)  # ends the process with os._exit


class _ServedChild:
    """A child started by the fork server, seen as the ``subprocess.Popen`` that ``watch_child`` drives."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid = process.pid
        #: The exit code once ended (``-signal`` when killed by one, as ``subprocess`` says), else None.
        self.returncode: int | None = None
        self._closed = False

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child (unless it was reaped already: its pid may belong to another process)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # it ended between the poll and the kill: the fork server reaped it
                pass

    def kill(self) -> None:
        """SIGKILL the child."""
        self.send_signal(signal.SIGKILL)

    def poll(self) -> int | None:
        """The exit code once the child ended, else None."""
        if self.returncode is None and not self._closed:
            self.returncode = self.process.exitcode
        return self.returncode

    def wait(self) -> int:
        """Wait for the child and return its exit code."""
        if not self._closed:
            self.process.join()
            self.returncode = self.process.exitcode
            self.process.close()  # its sentinel pipe: one per worker, many workers per run
            self._closed = True
        assert self.returncode is not None
        return self.returncode


#: Damage to a page of the database file, made while no runtime runs: the ``kv`` table's root or right-most leaf
#: page, the header's magic or page size, the root page of kv's primary-key index, or one key of that index changed
#: in place (the file stays well formed: only ``integrity_check`` sees it). No start looks at pages by design (the
#: runtime's start looks at the file's size and the damage mark only): the first statement that reads the page
#: meets the damage, or, off every statement's path (an index a full scan does not read), the full integrity check.
PAGE_DAMAGE = ("btree_root", "btree_leaf", "header", "page_size", "index_root", "index_entry")
#: Damage made while the runtime runs, then found by the full integrity check (a verdict that outlives the process).
CHECKED_DAMAGE = ("index_entry", "btree_leaf", "btree_root")


def page_damage(part: str, seed: int) -> dict[str, Any]:
    """The corrupt fault's parameters for ``part`` of :data:`PAGE_DAMAGE` on the machine's ``kv`` table."""
    if part.startswith("btree_"):
        return {"part": "btree", "table": "kv", "page": part[len("btree_"):], "seed": seed}
    if part == "index_root":
        return {"part": "index", "index": KV_INDEX, "seed": seed}
    if part == "index_entry":
        return {"part": "index_entry", "index": KV_INDEX, "seed": seed}
    return {"part": part, "seed": seed}


#: One worker operation: a form and its writes ``(key number, replace?)``.
worker_op = st.tuples(st.sampled_from(FORMS),
                      st.lists(st.tuples(st.integers(0, 12), st.booleans()), min_size=1, max_size=3))


class RestartMixin(BackupMixin, DegradationMixin, AuditMixin):
    """Kill -9 restarts and power loss during outages and before damage."""

    kills = 0

    # -- kill -9 ---------------------------------------------------------------------------
    @precondition(swarm("restart"))
    @precondition(lambda self: hasattr(os, "fork") and self.db is not None and not self.faults
                  and not self.writes_queued() and self.kills < 2)
    @rule(ops=st.lists(worker_op, min_size=1, max_size=4), at=st.integers(1, 40), then_damage=st.booleans(),
          part=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**16))
    def kill9_restart(self, ops: list[tuple[str, list[tuple[int, bool]]]], at: int, then_damage: bool,
                      part: str, seed: int) -> None:
        """P6 (P13 with ``then_damage``): a process writing through the runtime dies by SIGKILL at point
        ``at``; the next runtime holds the acknowledged writes, no failed one, the in-flight one whole or
        not at all."""
        self.kills += 1
        spec_ops = []
        for form, writes in ops:
            if form == "execute":
                writes = writes[:1]
            spec_ops.append((form, [(f"user-{n}", self.text(), replace) for n, replace in writes]))
        self.db.close()
        STATS.record_fault("crash")
        self.fault_history.append("crash")
        observed = self.powerloss is not None
        if observed:  # the child must not call into the model (a lock held at fork time would hang it)
            self._powerloss_cm.__exit__(None, None, None)
        try:
            result = fork_and_kill(type(self).runtime_factory or default_runtime_factory(), self.config,
                                   spec_ops, at)
        finally:
            if observed:
                # The page cache survives a kill: what the child wrote counts as on disk from here on.
                self.powerloss.snapshot_all()
                self._powerloss_cm = self.powerloss.observing()
                self._powerloss_cm.__enter__()
        self.last_healed = "crash"
        outcome: dict[int, str] = {}
        for label in result.seen:
            verdict, _, rest = label.partition(":")
            if verdict in ("ok", "fail"):
                outcome[int(rest.split(":")[0])] = verdict
        in_flight = next((i for i in range(len(spec_ops)) if i not in outcome), None) if result.killed else None
        # The process is gone; a new one starts on the same files (the journal it left is reconciled).
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        acknowledged = dict(self.model.kv)
        for i, (_form, writes) in enumerate(spec_ops):
            if outcome.get(i) == "ok":
                for key, value, _replace in writes:
                    acknowledged[key] = value
        with_in_flight = dict(acknowledged)
        if in_flight is not None:
            for key, value, _replace in spec_ops[in_flight][1]:
                with_in_flight[key] = value
        stored = self.stored_kv()
        self.check(6, stored in (acknowledged, with_in_flight),
                   lambda: f"after a kill -9 at point {at} ({result.point or 'the worker finished'}) the file "
                           f"differs from the acknowledged writes: "
                           f"{sorted(set(stored.items()) ^ set(acknowledged.items()))[:4]} (operations "
                           f"{[(f, len(w)) for f, w in spec_ops]}, outcomes {outcome}, in flight {in_flight})")
        self.model.kv = stored if stored == with_in_flight else acknowledged
        if then_damage and has_recovery(self):
            self.corrupt_and_recover(part, seed)

    # -- power loss ------------------------------------------------------------------------
    def power_loss_ready(self) -> bool:
        return self.powerloss is not None and not self.faults

    @precondition(swarm("power_loss"))
    @precondition(lambda self: self.power_loss_ready() and (has_commands(self) or has_audit(self)))
    @rule(outage=st.sampled_from(OUTAGES), keys=st.lists(st.integers(0, 3), max_size=3),
          entries=st.integers(0, 3), param=st.integers(0, 5))
    def power_loss_during_outage(self, outage: str, keys: list[int], entries: int, param: int) -> None:
        """P14, P15: commands queued and audit entries kept in the fallback file during an outage, then the
        power goes: after the restart every acknowledged command and entry is still there (the invariants
        replay and reconcile them, labelled ``after:power_loss``)."""
        if not self.inject(outage, param):
            return
        for n in keys:
            self.store(n)
        for _ in range(entries):
            self.record_entry(4)
        self.simulate_power_loss()

    @precondition(swarm("power_loss"))
    @precondition(lambda self: self.power_loss_ready() and has_backups(self))
    @rule(count=st.integers(1, 3))
    def power_loss_after_backups(self, count: int) -> None:
        """P12: backups taken (and rotated, ``backup_keep``) right before a power loss are all there after it,
        and the rotated ones stay gone: the backup directory is fsynced after each rename into it and each
        unlink from it (checked ``after:power_loss``; P12's invariant then checks each one's state)."""
        for _ in range(count):
            self.take_backup(False)
        before = {b.path for b in self.db.backups() if b.verified}
        manager = BackupManager(self.config.backup_directory, self.config.backup_keep)  # (only reads the directory)
        after: set[str] = set()
        self.simulate_power_loss(lambda: after.update(b.path for b in manager.list() if b.verified))
        lost, back = sorted(before - after), sorted(after - before)
        self.check(12, not lost and not back,
                   lambda: f"after a power loss right after {count} backup(s), verified backups lost: {lost}; "
                           f"deleted by rotation and back: {back}")

    @precondition(swarm("power_loss"))
    @precondition(lambda self: self.power_loss_ready() and has_recovery(self))
    @rule(backup_first=st.booleans(), keys=st.lists(st.integers(0, 12), min_size=1, max_size=3),
          part=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**16))
    def power_loss_then_damage(self, backup_first: bool, keys: list[int], part: str, seed: int) -> None:
        """P13: acknowledged writes, a power loss, and the database file found damaged when the machine comes
        back. Recovery (the newest backup plus the redo journal) must bring every acknowledged write back, so
        the journal must have been fsynced before each acknowledgement; and a power loss right after the recovery
        must not take them away again (the file it installed was fsynced before its rename: see
        ``BackupMixin.check_install_durable``)."""
        if backup_first:
            self.take_backup(False)
        for n in keys:
            self.upsert(n)
        view = self.powerloss.durable_view()
        self.db.close()  # (whatever close() writes to the runtime's own files is discarded below)
        self.powerloss.apply(view)
        kwargs: dict[str, Any] = {"seed": seed, "part": part}
        if part == "btree_root":
            kwargs.update(part="btree", table="kv")
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS, **kwargs)
        fault.inject()  # the damage is there before the new runtime starts (counted by the registry)
        STATS.record_fault("power_loss")
        self.fault_history += ["power_loss", "corrupt"]
        mark = self.installs_seen()  # (a start with auto_recover may install the recovered file itself)
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        out = self.call(None, self.absorb, self.db.recover, faults=["power_loss", "corrupt"])
        report_ok = out.ok and bool(getattr(out.value, "ok", False))
        self.last_healed = "corrupt"
        if self.config.redo_journal:
            self.check(13, report_ok, lambda: f"recovery after a power loss and {part} damage failed: "
                                              f"{out.value if out.ok else out.error!r}",
                       faults=["power_loss", "corrupt"])
        if not report_ok:  # honest failure (no journal): put the undamaged file back and go on
            self.put_back_undamaged(fault)
            return
        try:
            stored: Any = self.stored_kv()
        except sqlite3.Error as exc:
            stored = f"unreadable: {exc}"
        self.check(13, stored == self.model.kv,
                   lambda: f"after a power loss and {part} damage, recovery reported ok but acknowledged writes are "
                           f"missing or changed: {stored if isinstance(stored, str) else self.kv_diff(stored)}",
                   faults=["power_loss", "corrupt"])
        if stored == self.model.kv:
            # and they stay through a second power loss right after the recovery (its file fsynced before the rename)
            self.check_install_durable(13, f"recovery after a power loss and {part} damage", mark)

    def kv_diff(self, stored: dict[str, str]) -> list[tuple[str, str]]:
        """A few rows that differ between the file and the acknowledged writes (for messages)."""
        return sorted(set(stored.items()) ^ set(self.model.kv.items()))[:4]


class RestartMachine(RestartMixin):
    """Kill -9 restarts and power losses between queued commands, audit entries, backups and damage."""

    core_groups = frozenset(("restart", "power_loss", "commands", "outage", "audit", "backup", "recover"))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_rename", "disconnect_delete")
    settings_overrides: ClassVar[dict[str, Any]] = {**BackupMixin.settings_overrides}

    def make_config(self, **overrides: Any) -> Any:
        # A power loss is judged only where the runtime promises durability across one.
        # The redo journal is on: what it promises across kills, power losses and damage is judged here.
        sync = self.drawn.get("synchronous", "FULL")
        return super().make_config(**{"synchronous": "FULL" if sync == "NORMAL" else sync, "redo_journal": True,
                                      **overrides})

    # -- what a reconcile kept aside, across a power loss ---------------------------------
    def rejected_lines(self) -> list[str]:
        """The lines of ``<audit fallback>.rejected`` (where reconcile keeps the lines it will not chain)."""
        path = self.db.audit.fallback_path
        try:
            with open(path.with_name(path.name + ".rejected"), encoding="utf-8") as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []

    @precondition(swarm("power_loss"))
    @precondition(lambda self: self.power_loss_ready() and has_audit(self) and not self.fallback_ids()
                  and bool(self.db.audit.key))
    @rule(fields=st.permutations(FALLBACK_FIELDS), n=st.integers(1, len(FALLBACK_FIELDS)), param=st.integers(0, 5))
    def power_loss_after_edited_fallback_lines(self, fields: list[str], n: int, param: int) -> None:
        """P15 across a power loss (issue #14: the audit fallback is one of the runtime's own files, and what it
        has not fsynced is gone after one). Fallback lines edited in the file are rejected at reconcile and kept in
        ``<fallback>.rejected`` (the audit machine's ``edit_the_fallback_file``); then a later entry is chained (the
        anchor is replaced and the directory synced, so the reconcile's own renames and unlinks are durable) and the
        power goes. After the restart, and a reconcile of whatever the power loss brought back, every kept line is still
        in ``<fallback>.rejected``: the evidence of an edit outlives the power loss."""
        before = self.rejected_lines()
        # (The audit machine's rule, run on this machine: what it uses is all in AuditMixin. Not moved into the mixin:
        # a change to the audit machine's class source moves its derandomized search, and its bites with it.)
        AuditMachine.edit_the_fallback_file(self, fields, n, param)  # type: ignore[arg-type]
        kept = [line for line in self.rejected_lines() if line not in before]
        if not kept or self.faults:
            return
        self.record_entry(4)
        self.simulate_power_loss()
        out = self.call(None, self.absorb, self.db.audit.reconcile, faults=["power_loss"])
        if not out.ok:
            return  # (judged by the invariant: every entry reconciled once the database takes them)
        after = set(self.rejected_lines())
        lost = [line for line in kept if line not in after]
        self.check(15, not lost, lambda: (
            f"{len(kept)} edited fallback line(s) were rejected and kept in {self.db.audit.fallback_path.name}"
            f".rejected; a later entry was chained, then the power went: after the restart (and a reconcile) "
            f"{len(lost)} of them are no longer there (the file holds {len(after)} line(s)): written without an "
            f"fsync?"), faults=["power_loss"])

    # -- what a clean restart keeps, and what a start must see ------------------------------
    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and has_backups(self))
    @rule(backup_first=st.booleans())
    def clean_restart_keeps_durable_health(self, backup_first: bool) -> None:
        """P10, P12: what health() says about durable state is what the files say, before and after a clean
        restart: ``last_backup_at`` is the newest verified backup's ``created_at`` (the backup directory lists
        it), every backup listed before is listed after, the write queue's pending count and the audit key are
        the same, and the rows are the acknowledged ones. The manager closed by the restart serves nothing (an
        application that kept a reference to it): its health says ``unavailable``, a write through it is refused
        as the caller's bug (``misuse``) and is not in the file (README: a closed manager; a write it committed
        would have no journal record, so no recovery could bring it back)."""
        from reliability import DatabaseError

        if backup_first:
            self.take_backup(False)
        before = self.db.health()
        listed_before = {(str(b.path), b.verified) for b in self.db.backups()}
        old = self.db
        self.reopen()
        status = str(old.health().status)
        self.check(10, status == "unavailable", f"health() of a manager closed by a clean restart says {status!r}")
        try:
            old.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", ("closed-manager", "served"))
            refused = "nothing: the write was taken"
        except DatabaseError as exc:
            refused = str(exc.kind)
        self.check(2, refused == "misuse",
                   f"a write through a manager closed by a clean restart was refused with {refused!r}, not misuse")
        after = self.db.health()
        listed = BackupManager(self.config.backup_directory, self.config.backup_keep).list()
        newest = max((b.created_at for b in listed if b.verified), default=None)
        self.check(10, after.last_backup_at == newest,
                   lambda: f"after a clean restart health().last_backup_at is {after.last_backup_at!r}, but the "
                           f"newest verified backup in {self.config.backup_directory} was created at {newest!r} "
                           f"(before the restart health said {before.last_backup_at!r})")
        listed_after = {(str(b.path), b.verified) for b in self.db.backups()}
        self.check(12, listed_before <= listed_after,
                   lambda: f"backups listed before a clean restart are gone or changed after it: "
                           f"{sorted(listed_before - listed_after)[:3]}")
        for key, field in (("write_queue", "pending"), ("audit", "key_id")):
            was = (before.extra.get(key) or {}).get(field)
            now = (after.extra.get(key) or {}).get(field)
            self.check(10, was == now,
                       lambda key=key, field=field, was=was, now=now:
                       f"health()['{key}']['{field}'] was {was!r} before a clean restart and is {now!r} after it")
        stored = self.stored_kv()
        self.check(6, stored == self.model.kv,
                   lambda: f"after a clean restart the rows differ from the acknowledged writes: "
                           f"{self.kv_diff(stored)}")
        self.judge_stale_backup_at_start(newest)

    #: The shortest ``backup_interval`` :meth:`judge_stale_backup_at_start` starts a runtime with: the window between
    #: its start and its first scheduled backup, in which its health is looked at (a backup younger than 2.5 times
    #: this is waited for: at most 50 ms).
    STALE_MIN_INTERVAL = 0.02

    def judge_stale_backup_at_start(self, newest: float | None) -> None:
        """P10/P12: a runtime that starts when its newest verified backup (``created_at`` ``newest``) is older than
        twice its ``backup_interval`` (the schedule missed two backups: the service was down, or they failed) is not
        ``healthy`` and says why, until a backup succeeds (reliability/durability/__init__.py, ``health``: "the last
        verified backup is older than twice the backup interval").

        The backup is as old as the example made it (one taken just now is waited for up to 2.5 times
        ``STALE_MIN_INTERVAL``): the runtime is started once more, cleanly, with the interval at 0.4 times that age
        (past twice the interval, short of three times), health is asked at once, and the example's runtime comes
        back. Judged only when the first scheduled backup (due one interval after the start) had not ended by the
        time health answered; one that ran is in the listing like any other (unknown to the model, so never restored
        by the machine, and rotation may have removed an older one: the machine restores only what is listed)."""
        if newest is None or self.faults:
            return
        short = 2.5 * self.STALE_MIN_INTERVAL - (time.time() - newest)
        if short > 0:
            time.sleep(short + 0.002)
        interval = (time.time() - newest) * 0.4
        base = self.config  # (open_runtime keeps the config it opens with: the example's comes back below)
        self.db.close()
        try:
            stale = self.open_runtime(base.replace(backup_interval=interval))
        except BaseException:
            self.db = self.open_runtime(base)
            self.after_reopen()
            raise
        try:
            scheduler = getattr(getattr(stale, "durability", None), "scheduler", None)
            runs = getattr(scheduler, "runs", None)
            before = None if runs is None else runs.get("backup", 0)
            health = stale.health()
            ran = before is None or runs.get("backup", 0) != before or health.last_backup_at != newest
            ran = ran or stale.health().last_backup_at != newest  # (a backup that ended as health answered)
        finally:
            stale.close()
            self.db = self.open_runtime(base)
            self.after_reopen()
        if ran:
            return  # (the scheduled backup ran first, or this runtime does not say: nothing to judge)
        self.check(10, str(health.status) != "healthy" and bool(health.reasons), lambda: (
            f"a runtime started with backup_interval={interval:.3f}s when its newest verified backup was "
            f"{time.time() - newest:.3f}s old (past twice the interval, no backup since) says {health.status} "
            f"with reasons {list(health.reasons)[:3]}: the missed backups go unreported"))

    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and has_recovery(self))
    @rule(cut=st.booleans(), nbytes=st.integers(1, 2**16), auto=st.booleans(), seed=st.integers(0, 2**16))
    def damaged_while_stopped(self, cut: bool, nbytes: int, auto: bool, seed: int) -> None:
        """P11, P13: the application stopped cleanly, then its database file lost its end inside a page
        (the corrupt fault's ``truncate``) or had stray bytes appended (its ``append``). The next start sees
        it before serving anything: with ``auto_recover`` off, health() is not healthy and ``integrity_ok`` is
        False, and ``db.recover()`` brings every acknowledged write back; with it on, the start recovers and
        the first read has every acknowledged write."""
        self.take_backup(False)
        config = self.config
        self.db.close()  # (the application stopped)
        path = self.db_path
        if any(os.path.exists(path + side) and os.path.getsize(path + side) for side in ("-wal", "-journal")):
            self.db = self.open_runtime(config)  # (not at rest: nothing to judge at this start)
            self.after_reopen()
            return
        with open(path, "rb") as fh:
            header = fh.read(100)
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        size = os.path.getsize(path)
        shift = nbytes % (page_size - 1) + 1  # never a whole page
        labels = ["corrupt"]
        observed = self.powerloss is not None
        if observed:  # the damage is done by no process of the runtime: not the model's business
            self._powerloss_cm.__exit__(None, None, None)
        if cut and size > page_size:
            new = size - shift
            fault = make_fault("corrupt", path, part="truncate", fraction=(new + 0.5) / size, backup_before=True,
                               counted_in=STATS)
            fault.inject()
            what = f"cut from {size} to {os.path.getsize(path)} bytes"
        else:
            fault = make_fault("corrupt", path, part="append", length=shift, seed=seed, backup_before=True,
                               counted_in=STATS)
            fault.inject()
            what = f"{shift} stray bytes appended to its {size} bytes"
        if observed:  # what is on disk now is where a power loss would leave it
            self.powerloss.snapshot_all()
            self._powerloss_cm = self.powerloss.observing()
            self._powerloss_cm.__enter__()
        self.fault_history.append("corrupt")
        self.db = self.open_runtime(config if auto else self.make_config(auto_recover=False))
        self.after_reopen()
        self.last_healed = "corrupt"
        try:
            health = self.db.health()
            if auto:
                first = self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv", faults=labels)
                now = os.path.getsize(path)
                self.check(13, health.integrity_ok is not False and first.ok and dict(first.value) == self.model.kv
                           and now % page_size == 0,
                           lambda: f"the database file {what} while no runtime ran, auto_recover on: after the "
                                   f"start the file is {now} bytes ({page_size}-byte pages), integrity_ok is "
                                   f"{health.integrity_ok!r} and the first read "
                                   + (f"has {'the' if dict(first.value) == self.model.kv else 'not the'} "
                                      f"acknowledged writes "
                                      f"{sorted(set(self.model.kv.items()) ^ set(dict(first.value).items()))[:4]}"
                                      if first.ok else f"failed ({first.error!r})")
                                   + f" (last recovery: {health.extra.get('last_recovery')!r})", faults=labels)
                return
            self.check(11, health.integrity_ok is False and not health.healthy,
                       lambda: f"the database file {what} while no runtime ran, auto_recover off: the next start "
                               f"did not see it (health {health.status}, integrity_ok {health.integrity_ok!r}, "
                               f"problems {health.extra.get('integrity_problems')!r})", faults=labels)
            got = self.call(None, self.absorb, self.db.recover, faults=labels)
            report = got.value if got.ok else None
            try:
                whole = (self.stored_kv(), self.stored_pairs()) == (self.model.kv, self.model.pairs)
            except sqlite3.Error:
                whole = False
            self.check(13, report is not None and bool(report.ok) and whole,
                       lambda: f"db.recover() of a database file {what} while no runtime ran: "
                               f"{report if report is not None else got.error!r}; "
                               f"{'every acknowledged write is back' if whole else 'acknowledged writes are missing'}",
                       faults=labels)
            if not (report is not None and report.ok):  # put the undamaged file back (the check said why)
                self.undamaged_file_back(fault)
        finally:
            self.drop_undamaged_copy(fault)
            if not auto:
                self.restart_with(config)

    def undamaged_file_back(self, fault: Any) -> None:
        """After a check that failed on a file damaged while stopped: the fault puts the undamaged file back and the
        runtime starts on it (auto_recover off), so the next rules meet the failure's report, not its aftermath."""
        self.db.close()
        fault.heal()
        self.db = self.open_runtime(self.make_config(auto_recover=False))

    @staticmethod
    def drop_undamaged_copy(fault: Any) -> None:
        """Remove the undamaged copy a page fault kept, when nothing put it back."""
        for _original, copy in getattr(fault, "_backup", None) or []:
            copy.unlink(missing_ok=True)

    def restart_with(self, config: Any) -> None:
        """A clean stop and a start with ``config`` (faults left as they are), then what every reopen owes the
        model."""
        self.db.close()
        self.db = self.open_runtime(config)
        self.after_reopen()

    # -- what a start owes a file damaged while stopped, a verdict, a schema ----------------------
    @contextmanager
    def outside_the_runtime(self) -> Iterator[None]:
        """Files changed by no process of the runtime (an outside cause, while it is stopped): the power-loss
        model does not watch it, and what is on disk afterwards is where a power loss would leave it."""
        observed = self.powerloss is not None
        if observed:
            self._powerloss_cm.__exit__(None, None, None)
        try:
            yield
        finally:
            if observed:
                self.powerloss.snapshot_all()
                self._powerloss_cm = self.powerloss.observing()
                self._powerloss_cm.__enter__()

    def at_rest(self) -> bool:
        """No ``-wal`` or ``-journal`` with content beside the stopped file (a start then replays or rolls back)."""
        return not any(os.path.exists(self.db_path + side) and os.path.getsize(self.db_path + side)
                       for side in ("-wal", "-journal"))

    def read_kv(self, faults: list[str] | None = None) -> Any:
        """``SELECT k, v FROM kv`` through the runtime, checked and booked like any read."""
        return self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv", faults=faults)

    def whole(self) -> bool:
        """The file holds exactly the acknowledged rows (kv and pairs), read by a plain connection."""
        try:
            return (self.stored_kv(), self.stored_pairs()) == (self.model.kv, self.model.pairs)
        except sqlite3.Error:
            return False

    def recover_checked(self, what: str, labels: list[str]) -> bool:
        """``db.recover()`` after ``what``: it reports ok and every acknowledged write is back (P13). True when so;
        else the undamaged copy is put back by the caller."""
        got = self.call(None, self.absorb, self.db.recover, faults=labels)
        report = got.value if got.ok else None
        whole = self.whole()
        self.check(13, report is not None and bool(report.ok) and whole,
                   lambda: f"db.recover() after {what}: {report if report is not None else got.error!r}; "
                           f"{'every acknowledged write is back' if whole else 'acknowledged writes are missing'}",
                   faults=labels)
        return report is not None and bool(report.ok)

    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and has_recovery(self) and callable(getattr(self.db, "check_integrity", None)))
    @rule(part=st.sampled_from(PAGE_DAMAGE), seed=st.integers(0, 2**16), then_restart=st.booleans(),
          keys=st.lists(st.integers(0, 12), min_size=1, max_size=2))
    def page_damaged_while_stopped(self, part: str, seed: int, then_restart: bool, keys: list[int]) -> None:
        """P11, P13: the application stopped cleanly; a page of its file was damaged (the corrupt fault's
        ``part``) before the next start (``auto_recover`` off). A start reads no page by design (it looks at the
        file's size and at the damage mark, which no one wrote here), so the damage is owed at first use, never
        served as data:

        * before anything read the file, health() does not call it sound (``integrity_ok`` is not True);
        * the first read of ``kv`` returns exactly the acknowledged rows or fails with an error whose action
          is a restore (the runtime saw a damaged file); when the read does not meet the damage (an index a
          full scan skips) the full integrity check must report it;
        * once met, health() says ``integrity_ok`` False, not healthy, and the damage mark is written (every
          other process and the next start share the verdict);
        * then ``db.recover()`` brings every acknowledged write back, or (``then_restart``) the application
          stops and starts with ``auto_recover`` on: a start on a file marked damaged runs the full check and
          recovers (README), so health() has no verdict and no mark left and the first read has every
          acknowledged row.

        Acknowledged writes after the last backup make the recovery replay the redo journal."""
        self.take_backup(False)
        for n in keys:
            self.upsert(n)
        config = self.config
        self.db.close()  # (the application stopped)
        if not self.at_rest() or not self.model.kv:
            self.db = self.open_runtime(config)  # (not at rest, or nothing for an index to hold: no judging)
            self.after_reopen()
            return
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS, **page_damage(part, seed))
        try:
            with self.outside_the_runtime():
                fault.inject()
        except FaultError:  # (this file has no such part to damage now)
            self.db = self.open_runtime(config)
            self.after_reopen()
            return
        labels = ["corrupt"]
        self.fault_history.append("corrupt")
        what = f"{part} damage made while no runtime ran (auto_recover off)"
        self.db = self.open_runtime(self.make_config(auto_recover=False))
        self.after_reopen()
        self.last_healed = "corrupt"
        try:
            first_health = self.db.health()
            self.check(11, first_health.integrity_ok is not True,
                       lambda: f"{what}: right after the start, before any check or read, health() says "
                               f"integrity_ok True (status {first_health.status})", faults=labels)
            first = self.read_kv(labels)
            if first.ok:
                rows = dict(first.value)
                self.check(13, rows == self.model.kv,
                           lambda: f"{what}: the first read returned rows other than the acknowledged ones without an "
                                   f"error: {sorted(set(rows.items()) ^ set(self.model.kv.items()))[:4]}",
                           faults=labels)
                checked = self.call(None, self.absorb, self.db.check_integrity, True, faults=labels)
                self.check(11, checked.ok and not checked.value.ok,
                           lambda: f"{what}: a full scan of kv did not meet it, and then the full integrity check "
                                   f"reported {checked.value if checked.ok else checked.error!r}", faults=labels)
            else:
                from reliability import RecoveryAction

                self.check(11, first.error.action is RecoveryAction.RESTORE,
                           lambda: f"{what}: the first read failed with {first.error.kind} (action "
                                   f"{first.error.action}), not as a damaged file", faults=labels)
            health = self.db.health()
            self.check(11, health.integrity_ok is False and not health.healthy
                       and health.extra.get("damage_mark") is not None,
                       lambda: f"{what}: once the damage was met health() says integrity_ok "
                               f"{health.integrity_ok!r}, status {health.status}, damage mark "
                               f"{health.extra.get('damage_mark')!r}", faults=labels)
            if then_restart:
                self.db.close()
                self.db = self.open_runtime(self.make_config(auto_recover=True))
                self.after_reopen()
                after = self.db.health()
                again = self.read_kv(labels)
                got = dict(again.value) if again.ok else None
                self.check(13, got == self.model.kv and self.whole() and after.integrity_ok is not False
                           and after.extra.get("damage_mark") is None,
                           lambda: f"{what}, seen, then a clean restart with auto_recover on: the start on the marked "
                                   f"file must check and recover it; after the start integrity_ok "
                                   f"{after.integrity_ok!r}, damage mark {after.extra.get('damage_mark')!r}, "
                                   f"recoveries {after.extra.get('recoveries')!r}, and the first read "
                                   + (f"{'has' if got == self.model.kv else 'lacks'} the acknowledged rows"
                                      if again.ok else f"failed ({again.error.kind})"), faults=labels)
                if got != self.model.kv or not self.whole():
                    self.undamaged_file_back(fault)
                return
            if not self.recover_checked(what, labels):
                self.undamaged_file_back(fault)
        finally:
            self.drop_undamaged_copy(fault)
            self.restart_with(config)

    #: Drawn three times as often as one rule (a targeted weight): each call judges one damage at first use.
    page_damaged_while_stopped_again = page_damaged_while_stopped
    page_damaged_while_stopped_third = page_damaged_while_stopped

    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and has_recovery(self) and callable(getattr(self.db, "check_integrity", None)))
    @rule(part=st.sampled_from(CHECKED_DAMAGE), seed=st.integers(0, 2**16),
          recover_first=st.sampled_from((False, False, True)),
          auto=st.booleans(), keys=st.lists(st.integers(0, 12), min_size=1, max_size=2))
    def verdict_across_clean_restart(self, part: str, seed: int, recover_first: bool, auto: bool,
                                     keys: list[int]) -> None:
        """P10, P11, P13: the full integrity check finds damage (``auto_recover`` off: nothing recovers yet),
        maybe ``db.recover()`` follows, then a clean stop and a start (``auto_recover`` drawn). What health()
        says of the file after the start follows the durable verdict, the damage mark (README: "a manager that
        starts on a file marked damaged runs the full check before anything else (with ``auto_recover``, a failed
        one recovers)"; a recovery removes the mark):

        * not recovered, ``auto_recover`` off: the start checked: ``integrity_ok`` False, a
          ``last_integrity_check_at`` from this start, problems named, the mark kept, not healthy; then
          ``db.recover()`` brings every acknowledged write back;
        * not recovered, ``auto_recover`` on: the start recovered: ``integrity_ok`` not False, no mark, and the
          first read has every acknowledged row;
        * recovered before the stop: no verdict comes back: ``integrity_ok`` not False, no mark, and the rows
          are the acknowledged ones."""
        self.take_backup(False)
        for n in keys:
            self.upsert(n)
        config = self.config
        self.db.close()
        self.db = self.open_runtime(self.make_config(auto_recover=False))
        self.after_reopen()
        labels = ["corrupt"]
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS, **page_damage(part, seed))
        try:
            with self.outside_the_runtime():
                fault.inject()
        except FaultError:
            self.db.close()
            self.db = self.open_runtime(config)
            self.after_reopen()
            return
        self.fault_history.append("corrupt")
        self.last_healed = "corrupt"
        what = f"{part} damage found by the full integrity check"
        try:
            checked = self.call(None, self.absorb, self.db.check_integrity, True, faults=labels)
            found = checked.ok and not checked.value.ok
            self.check(11, found, lambda: f"{what}: the full check reported "
                                          f"{checked.value if checked.ok else checked.error!r}", faults=labels)
            if not found:
                return
            if recover_first:
                if not self.recover_checked(what, labels):
                    self.undamaged_file_back(fault)
                    return
                what += " and recovered"
            before = self.db.health()
            self.db.close()  # (a clean stop)
            started = time.time()
            self.db = self.open_runtime(config if auto else self.make_config(auto_recover=False))
            self.after_reopen()
            after = self.db.health()
            mark = after.extra.get("damage_mark")
            said = (f"before the stop: integrity_ok {before.integrity_ok!r}, damage mark "
                    f"{'kept' if before.extra.get('damage_mark') else 'none'}; after the start: integrity_ok "
                    f"{after.integrity_ok!r}, status {after.status}, last check at {after.last_integrity_check_at!r} "
                    f"(start at {started:.3f}), problems {after.extra.get('integrity_problems')!r}, damage mark "
                    f"{'kept' if mark else 'none'}, recoveries {after.extra.get('recoveries')!r}")
            if not recover_first and not auto:
                checked_now = after.last_integrity_check_at is not None and after.last_integrity_check_at >= started - 1
                self.check(11, after.integrity_ok is False and checked_now and not after.healthy
                           and bool(after.extra.get("integrity_problems")) and mark is not None,
                           lambda: f"{what}, then a clean restart (auto_recover off): the start must run the full "
                                   f"check on the marked file and keep the verdict; {said}", faults=labels)
                if not self.recover_checked(f"{what} and a clean restart", labels):
                    self.undamaged_file_back(fault)
                return
            first = self.read_kv(labels)
            rows = dict(first.value) if first.ok else None
            self.check(11, after.integrity_ok is not False and mark is None,
                       lambda: f"{what}, then a clean restart (auto_recover {'on' if auto else 'off'}): the verdict "
                               f"must be {'acted on at the start' if not recover_first else 'gone with the recovery'}; "
                               f"{said}", faults=labels)
            self.check(13, rows == self.model.kv and self.whole(),
                       lambda: f"{what}, then a clean restart: the first read "
                               + (f"{'has' if rows == self.model.kv else 'lacks'} the acknowledged rows"
                                  if first.ok else f"failed ({first.error.kind})") + f"; {said}", faults=labels)
        finally:
            self.drop_undamaged_copy(fault)
            self.restart_with(config)

    #: Drawn three times as often as one rule (a targeted weight).
    verdict_across_clean_restart_again = verdict_across_clean_restart
    verdict_across_clean_restart_third = verdict_across_clean_restart

    #: The migrations this example's application knows (written as numbered ``.sql`` files, see
    #: :meth:`schema_kept_across_clean_restart`); versions only grow.
    migration_versions: list[int] = []

    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and callable(getattr(self.db, "migrate", None))
                  and callable(getattr(self.db, "validate_schema", None)))
    @rule(steps=st.lists(st.tuples(st.sampled_from((1, 2, 9)), st.booleans()), min_size=1, max_size=2),
          folder=st.booleans(), auto_migrate=st.booleans())
    def schema_kept_across_clean_restart(self, steps: list[tuple[int, bool]], folder: bool,
                                         auto_migrate: bool) -> None:
        """P3, P10: migrations applied (``db.migrate``: numbered ``.sql`` files, passed as the folder or as the
        list loaded from it; versions with gaps, a table created or a column added), a clean stop, and the
        application started again with the same migrations (``auto_migrate`` drawn: nothing is pending, so it
        changes nothing). The start validates the schema against them (trust.py: "at startup ... the known
        migrations are validated"), so health()'s ``schema`` is that validation: ok, current and expected version
        the highest one applied, nothing pending, no problem; ``validate_schema()`` says what it said before the
        stop (current version the highest applied); and writes are served (a trusted schema).

        (Before the stop the runtime may have been started without migrations, as the other rules start it: then
        it knows none and health() has no ``schema`` yet, so the field is judged against what the start owes.)"""
        from reliability.schema import load_migrations

        where = os.path.join(self.dir, "migrations")
        os.makedirs(where, exist_ok=True)
        versions = list(self.migration_versions)
        for gap, alter in steps:
            version = (versions[-1] if versions else 0) + gap
            if alter and versions:
                sql = f"ALTER TABLE s22_v{versions[0]} ADD COLUMN c{version} TEXT"
            else:
                sql = f"CREATE TABLE s22_v{version} (id INTEGER PRIMARY KEY, note TEXT)"
            with open(os.path.join(where, f"{version:03d}_s22_{version}.sql"), "w", encoding="utf-8") as fh:
                fh.write(sql + "\n")
            versions.append(version)
        if not versions:
            return
        self.migration_versions = versions
        known: Any = where if folder else load_migrations(where)
        out = self.call(None, self.absorb, self.db.migrate, known)
        if not out.ok:  # (a migration refused on this file: the schema machine judges migrations)
            return
        self.model.applied_versions = sorted(set(self.model.applied_versions) | set(versions))
        before_report = self.absorb(self.db.validate_schema)
        before = self.db.health().extra.get("schema")
        config = self.config
        self.db.close()  # (the application stopped)
        self.db = self.open_runtime(self.make_config(auto_migrate=auto_migrate), migrations=known)
        self.after_reopen()
        try:
            after = self.db.health().extra.get("schema")
            after_report = self.absorb(self.db.validate_schema)
            shown = (f"versions {versions} ({'folder' if folder else 'list'}, auto_migrate {auto_migrate}); "
                     f"before the stop health()['schema'] {before!r}, validate_schema() {before_report!r}; after "
                     f"the start health()['schema'] {after!r}, validate_schema() {after_report!r}")
            top = versions[-1]
            owed = {"ok": True, "problems": [], "current_version": top, "expected_version": top, "pending": []}
            self.check(10, isinstance(after, dict) and {k: after.get(k) for k in owed} == owed,
                       lambda: f"after a clean restart with the applied migrations health()'s schema is not the "
                               f"start's validation {owed}: {shown}")
            self.check(3, after_report.ok and after_report.current_version == versions[-1]
                       and (after_report.ok, after_report.current_version, after_report.expected_version,
                            list(after_report.pending), list(after_report.problems))
                       == (before_report.ok, before_report.current_version, before_report.expected_version,
                           list(before_report.pending), list(before_report.problems)),
                       lambda: f"validate_schema() differs across a clean restart: {shown}")
            wrote = self.upsert(versions[-1] % 13)
            self.check(3, wrote.ok, lambda: f"after a clean restart on a trusted schema a write was refused: "
                                            f"{wrote.error!r} ({shown})")
        finally:
            # The other rules' restarts start the application without migrations, as before this rule.
            self.db.close()
            self.db = self.open_runtime(config)
            self.after_reopen()

    #: Drawn twice as often as one rule (a targeted weight).
    schema_kept_across_clean_restart_again = schema_kept_across_clean_restart
