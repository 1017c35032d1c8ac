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
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from reliability import BackupManager

from ..faults import make_fault
from ..faults.crash import CrashResult, Starter, forked, watch_child
from ..stats import STATS
from . import served
from .audit import AuditMixin, has_audit
from .backup import CORRUPTIONS, BackupMixin, has_backups, has_recovery
from .base import default_runtime_factory, swarm
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
        the journal must have been fsynced before each acknowledgement."""
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

    # -- what a clean restart keeps, and what a start must see ------------------------------
    @precondition(swarm("restart"))
    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and has_backups(self))
    @rule(backup_first=st.booleans())
    def clean_restart_keeps_durable_health(self, backup_first: bool) -> None:
        """P10, P12: what health() says about durable state is what the files say, before and after a clean
        restart: ``last_backup_at`` is the newest verified backup's ``created_at`` (the backup directory lists
        it), every backup listed before is listed after, the write queue's pending count and the audit key are
        the same, and the rows are the acknowledged ones."""
        if backup_first:
            self.take_backup(False)
        before = self.db.health()
        listed_before = {(str(b.path), b.verified) for b in self.db.backups()}
        self.reopen()
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
                self.db.close()
                fault.heal()
                self.db = self.open_runtime(self.make_config(auto_recover=False))
        finally:
            for _original, copy in getattr(fault, "_backup", None) or []:
                copy.unlink(missing_ok=True)  # (the undamaged copy, when nothing put it back)
            if not auto:
                self.db.close()
                self.db = self.open_runtime(config)
                self.after_reopen()
