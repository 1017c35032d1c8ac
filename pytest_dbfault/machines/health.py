"""P10 health counters and P11 integrity checking."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from ..faults.registry import make_fault
from .base import KV_INDEX, swarm
from .workload import Workload

#: Damage the integrity check must see (each is real byte damage, see FAULTS.md). ``index_entry`` leaves
#: a well-formed file whose unique index no longer matches its table: only the full check can see it.
CORRUPT_PARTS = ("header", "btree_root", "btree_leaf", "truncate", "index_entry")


#: The scheduled tasks a rule runs, each with the setting that schedules it.
SCHEDULED_INTERVALS = {"quick_check": "quick_check_interval", "integrity_check": "integrity_check_interval",
                       "health_check": "health_check_interval"}
#: (task, what is wrong while it runs): damage to both checks, a lock to every task, nothing.
SCHEDULED_CASES = tuple((task, trouble) for task in ("quick_check", "integrity_check")
                        for trouble in ("none", "locked", "btree_leaf", "index_entry")) + (
    ("health_check", "none"), ("health_check", "locked"))
#: How long (real seconds) a rule waits for the schedule's thread to run its task once.
SCHEDULE_WAIT = 10.0


def wait_for_run(scheduler: Any, task: str, runs: int = 1) -> bool:
    """Wait until ``scheduler`` ran ``task`` ``runs`` times (its count goes up after the task returns or raises)."""
    import time

    deadline = time.monotonic() + SCHEDULE_WAIT
    while scheduler.runs.get(task, 0) < runs:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def is_this_runtime(self: Any) -> bool:
    """The runtime is this package's (its configuration and schedule are known to the rule)."""
    from reliability import ReliabilityConfig

    return isinstance(self.config, ReliabilityConfig) and hasattr(getattr(self.db, "durability", None), "scheduler")


def integrity_ok(result: Any) -> bool:
    """Read ``db.check_integrity()``'s answer whether it is a bool, a report object or a dict."""
    if isinstance(result, bool):
        return result
    if isinstance(result, dict):
        return bool(result.get("ok"))
    return bool(result.ok)


def has_integrity_check(self: Any) -> bool:
    return self.db is not None and callable(getattr(self.db, "check_integrity", None))


class HealthMixin(Workload):
    """Compares the runtime's health counters with the ledger; corrupts files for the integrity check."""

    # The integrity rule restores the damaged file itself; automatic recovery would race it.
    settings_overrides: ClassVar[dict[str, Any]] = {"auto_recover": False}

    @precondition(lambda self: self.db is not None)
    @invariant()
    def p10_health_monitoring(self) -> None:
        """Counters equal the operations performed, the errors surfaced and the retries slept."""
        report = self.db.health()
        ops, errors = dict(report.operations), dict(report.errors)
        want_ops = {k: n for k, n in self.model.ledger.ok.items() if n}
        want_errors = {k: n for k, n in self.model.ledger.errors.items() if n}
        if self.opaque_ops:
            short = {k: (ops.get(k, 0), n) for k, n in want_ops.items() if ops.get(k, 0) < n}
            self.check(10, not short, lambda: f"operation counters below the operations performed: {short}")
            return
        self.check(10, ops == want_ops, lambda: f"health counts operations {ops}, performed {want_ops}")
        # Open question (h14 report, seed 2282382046): a surfaced "closed" error is sometimes not
        # counted. Until it is settled, "closed" is checked from above only; every other kind exactly.
        closed_ok = errors.get("closed", 0) <= want_errors.get("closed", 0)
        rest = ({k: n for k, n in errors.items() if k != "closed"}
                == {k: n for k, n in want_errors.items() if k != "closed"})
        self.check(10, closed_ok and rest, lambda: f"health counts errors {errors}, surfaced {want_errors}")
        slept = len(self.time.sleeps) - self.sleeps_base
        self.check(10, report.retries == slept,
                   lambda: f"health counts {report.retries} retries, the runtime slept {slept} times")
        self.check_latency(report)

    def check_latency(self, report: Any) -> None:
        """P10 beyond counters: latency percentiles are ordered, non-negative and bounded by the wall
        time the example has run; the status says unavailable/degraded only with a reason."""
        import time as _time

        lat = dict(report.latency_ms)
        p50, p95, p99 = lat.get("p50", 0.0), lat.get("p95", 0.0), lat.get("p99", 0.0)
        bound = (_time.perf_counter() - self.started) * 1000.0 + 1.0
        self.check(10, 0 <= p50 <= p95 <= p99 <= bound,
                   f"latency percentiles {lat} are not ordered p50 <= p95 <= p99 within the {bound:.0f} ms run")
        status = str(report.status)
        self.check(10, status in ("healthy", "degraded", "unavailable")
                   and (status == "healthy") != bool(report.reasons),
                   f"health status {status!r} with reasons {list(report.reasons)}")

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults)
    # index_entry is drawn twice as often as each other part: it is the one damage that tells the full check
    # from the quick one, at four entry points (runtime, Inspector, `reliability check --full`, and health).
    @rule(part=st.sampled_from((*CORRUPT_PARTS, "index_entry")), seed=st.integers(0, 2**16))
    def corrupt_and_check(self, part: str, seed: int) -> None:
        """P11: injected damage is flagged by the quick and the full check; the restored file passes again.

        Damage to index content alone (``index_entry``) is documented to pass ``quick_check``, which skips
        index content: there only the full check (``integrity_check``) must flag it. Both are asked every
        time (cheap on the machine's small file), so neither path depends on a draw.
        """
        from reliability import DatabaseError

        fault = self.damage_at_rest(part, seed)
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        flagged = False
        for full in (False, True):
            must_flag = full or part != "index_entry"
            call = f"check_integrity(full={full})"
            try:
                flagged_now = not integrity_ok(self.absorb(self.db.check_integrity, full=full))
                why = f"{call} answered ok"
            except DatabaseError as err:
                flagged_now = str(err.kind) in ("corrupt", "notadb", "ioerr_corruptfs")
                why = f"{call} raised {err.kind}"
            flagged = flagged or flagged_now
            if must_flag:
                self.check(11, flagged_now, f"{part} damage (seed {seed}) not flagged: {why}", faults=["corrupt"])
            seen = self.read_only_verdict(["corrupt"], full=full)
            if must_flag:
                self.check(11, seen is None or seen[0],
                           f"{part} damage (seed {seed}) not flagged by the read-only inspection (Inspector"
                           f".check_integrity(full={full})): {seen and seen[1]}", faults=["corrupt"])
            said = self.command_line_verdict(["corrupt"], full=full)
            if must_flag:
                self.check(11, said is None or said[0],
                           f"{part} damage (seed {seed}) not flagged by `reliability check"
                           f"{' --full' if full else ''}`: {said and said[1]}", faults=["corrupt"])
        if flagged:
            # P10 under corruption: health must say so (auto_recover is off here, nothing repairs it).
            status = str(self.db.health().status)
            self.check(10, status != "healthy",
                       f"health().status is {status!r} after an integrity check found {part} damage",
                       faults=["corrupt"])
            # And the operator's view: `reliability health` must not exit 0 (a cron job reads only that).
            ran = self.run_command_line(["health"], 10, ["corrupt"])
            if ran is not None:
                self.check(10, ran[0] in (1, 3), f"`reliability health` exited {ran[0]} ({ran[1].get('message')}) "
                                            f"after an integrity check found {part} damage", faults=["corrupt"])
        self.put_back_undamaged(fault)
        self.last_healed = "corrupt"
        self.integrity_passes(None)

    def damage_at_rest(self, part: str, seed: int) -> Any:
        """Close the runtime and damage its file (``part`` of :data:`CORRUPT_PARTS`); the fault, which keeps the
        undamaged copy (:meth:`put_back_undamaged`). The caller opens the next runtime."""
        if part == "index_entry" and not self.model.kv:
            self.put(0)  # an index with no entry has no entry to change
        self.reopen()  # flush WAL frames into the file so the damage hits committed pages
        self.db.close()
        kwargs: dict[str, Any] = {"seed": seed, "backup_before": True}
        if part.startswith("btree"):
            kwargs.update(part="btree", table="kv", page="root" if part == "btree_root" else "leaf")
        elif part == "index_entry":
            kwargs.update(part=part, index=KV_INDEX)
        else:
            kwargs.update(part=part)
        from ..stats import STATS

        fault = make_fault("corrupt", self.db_path, counted_in=STATS, **kwargs)
        fault.inject()
        self.fault_history.append("corrupt")
        return fault

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and bool(self.faults))
    @rule()
    def integrity_under_fault(self) -> None:
        """P11 while a fault is in force: a file that is away is never reported intact, and an intact
        file behind a lock, a full disk or a closed handle is never reported corrupt."""
        from reliability import DatabaseError

        away = any(f in self.faults for f in ("disconnect_rename", "disconnect_delete"))
        err = None
        try:
            report = self.absorb(self.db.check_integrity)
            ok, problems = integrity_ok(report), list(getattr(report, "problems", []) or [])
        except DatabaseError as exc:
            ok, problems, err = False, [], exc
        if away:
            self.check(11, not ok, "check_integrity() answered ok while the database file is away")
            return
        words = ("malformed", "corrupt", "not a database", "btree", "page")
        called_corrupt = (err is not None and str(err.kind) in ("corrupt", "notadb", "ioerr_corruptfs")) or (
            not ok and any(w in p.lower() for p in problems for w in words))
        self.check(11, not called_corrupt,
                   lambda: f"an intact file under {self.active_fault_names} was reported corrupt: "
                           f"{repr(err) if err is not None else problems[:3]}")

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults)
    @rule(full=st.booleans(), parent=st.integers(1, 3))
    def orphan_row_and_check(self, full: bool, parent: int) -> None:
        """P11: a row whose parent row is missing, written by another program with foreign keys off, is an
        integrity problem every check reports (``PRAGMA foreign_key_check``): the runtime's quick or full check,
        the read-only inspection and ``reliability check``; health() then does not say healthy (P10). Once the
        orphan is gone the file passes again."""
        from reliability import DatabaseError

        with self.raw() as conn:
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("CREATE TABLE IF NOT EXISTS fk_parent (id INTEGER PRIMARY KEY)")
            conn.execute("CREATE TABLE IF NOT EXISTS fk_child (id INTEGER PRIMARY KEY, "
                         "parent INTEGER NOT NULL REFERENCES fk_parent (id))")
            conn.execute("INSERT INTO fk_child (parent) VALUES (?)", (1000 + parent,))
        call = f"check_integrity(full={full})"
        try:
            report = self.absorb(self.db.check_integrity, full=full)
            problems = list(getattr(report, "problems", []) or [])
            flagged = not integrity_ok(report) and any("foreign key" in p.lower() for p in problems)
            why = f"{call} answered {problems[:2] or 'ok'}"
        except DatabaseError as err:
            flagged, why = False, f"{call} raised {err.kind}: {err.detail}"
        self.check(11, flagged, f"a row whose parent is missing (fk_child -> fk_parent) was not reported: {why}")
        if flagged:
            status = str(self.db.health().status)
            self.check(10, status != "healthy",
                       f"health().status is {status!r} after an integrity check found a foreign key violation")
        seen = self.read_only_verdict(None, full=full)
        self.check(11, seen is None or seen[0], "a row whose parent is missing was not reported by the read-only "
                   f"inspection (Inspector.check_integrity(full={full})): {seen and seen[1]}")
        said = self.command_line_verdict(None, full=full)
        self.check(11, said is None or said[0], f"a row whose parent is missing was not reported by `reliability "
                                                f"check{' --full' if full else ''}`: {said and said[1]}")
        with self.raw() as conn:  # (gone again: the schema machines compare the tables with the migrations')
            conn.execute("DROP TABLE fk_child")
            conn.execute("DROP TABLE fk_parent")
        self.integrity_passes(None)

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults)
    @rule()
    def check_healthy_file(self) -> None:
        self.integrity_passes(None)

    def integrity_passes(self, faults: list[str] | None) -> None:
        """A healthy file passes the quick and the full check, the runtime's and the read-only one's."""
        from reliability import DatabaseError

        for full in (False, True):
            call = f"check_integrity(full={full})"
            try:
                ok = integrity_ok(self.absorb(self.db.check_integrity, full=full))
                why = f"{call} reported a problem"
            except DatabaseError as err:
                ok, why = False, f"{call} raised {err.kind}: {err.detail}"
            self.check(11, ok, f"a healthy file failed the integrity check: {why}", faults=faults)
            seen = self.read_only_verdict(faults, full=full)
            self.check(11, seen is None or not seen[0],
                       f"a healthy file failed the read-only inspection (Inspector.check_integrity(full={full})): "
                       f"{seen and seen[1]}", faults=faults)
            said = self.command_line_verdict(faults, full=full)
            self.check(11, said is None or not said[0],
                       f"a healthy file failed `reliability check{' --full' if full else ''}`: {said and said[1]}",
                       faults=faults)

        # Every other time, a copy of the file rebuilt with another page size passes as well, and fails with stray
        # bytes after its last page (:meth:`page_size_copy_checked`; a deterministic turn, not a draw: a draw here
        # would move every derandomized search of the machines that check a healthy file).
        self.integrity_turns = getattr(self, "integrity_turns", 0) + 1
        if self.integrity_turns % 2 and not self.faults and is_this_runtime(self):
            turn = self.integrity_turns // 2
            self.page_size_copy_checked(9 + turn % 8, 1 + (turn * 7919 + len(self.model.kv)) % 4095,
                                        closed=bool(turn % 2))

    def page_size_copy_checked(self, exp: int, n: int, closed: bool) -> None:
        """P11 on every page size SQLite allows (512 to 65536 bytes; the machine's own file keeps SQLite's default):
        a copy of the database (``VACUUM INTO``) rebuilt with pages of ``2**exp`` bytes (``PRAGMA page_size`` and
        ``VACUUM``, as an operator tunes a database) is a sound database, and a runtime started on it says so: its
        quick and full checks and the read-only inspection pass it (the cut-off check counts whole pages of the
        file's own size: 3 pages of 1024 bytes are no cut). Then ``n`` bytes' worth of stray data (a whole number
        of 512- or 4096-byte blocks when smaller than a page, else single bytes; never a whole page) is appended:
        every check flags it. ``closed``: that runtime's handle is closed behind it before each check (the checks
        read on their own connection: nothing changes)."""
        from reliability import DatabaseError, ReliabilityConfig
        from reliability.inspection import Inspector

        from ..stats import STATS
        from .base import default_runtime_factory

        if not isinstance(self.config, ReliabilityConfig):
            return
        size = 1 << exp
        copy = os.path.join(self.dir, f"paged-{size}-{n}.db")
        for side in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(copy + side):
                os.remove(copy + side)
        with self.raw() as conn:
            conn.execute("VACUUM INTO ?", (copy,))
        module = self.sqlite_module()
        conn = module.connect(copy, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")  # (in WAL mode VACUUM keeps the page size)
            conn.execute(f"PRAGMA page_size = {size}")
            conn.execute("VACUUM")
            got = int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()
        length = os.path.getsize(copy)
        unit = next((u for u in (4096, 512) if u < got and n % 3 == (1 if u == 4096 else 2)), 1)
        extra = unit * (1 + (n - 1) % (got // unit - 1))
        # (its own side files beside the copy, nothing scheduled: the machine's runtime keeps its files and schedule)
        config = self.config.replace(db_path=copy, backup_dir="", audit_fallback_path="",
                                     write_queue_path="", operation_log_path="", auto_recover=False,
                                     backup_interval=0, quick_check_interval=0, integrity_check_interval=0,
                                     health_check_interval=0)
        faults = ["disconnect_close"] if closed else None
        for stray in (0, extra):
            if stray:
                make_fault("corrupt", copy, part="append", length=stray, seed=n, counted_in=STATS).inject()
            what = (f"a sound copy of the database rebuilt with {got}-byte pages ({length} bytes)" if not stray else
                    f"{stray} stray byte(s) after the last page of a copy with {got}-byte pages ({length + stray} "
                    "bytes: no whole number of pages)")
            db = (type(self).runtime_factory or default_runtime_factory())(config)
            try:
                for full in (False, True):
                    if closed:
                        db.connection.close()  # (behind the runtime's back, as the disconnect_close fault does)
                    try:
                        report = db.check_integrity(full=full)
                        ok, why = integrity_ok(report), f"answered {list(getattr(report, 'problems', []) or [])[:2]}"
                    except DatabaseError as err:
                        ok, why = False, f"raised {err.kind}: {err.detail}"
                    verdict = "not flagged" if stray else "failed the integrity check"
                    self.check(11, ok == (not stray), f"{what} {verdict}: check_integrity(full={full}) {why}",
                               faults=faults if not stray else [*(faults or []), "corrupt"])
            finally:
                db.close()
            for full in (False, True):
                try:
                    with Inspector(config) as view:
                        report = view.check_integrity(full=full)
                    ok, why = report.ok, f"answered {report.problems[:2]}"
                except DatabaseError as err:
                    ok, why = False, f"raised {err.kind}: {err.detail}"
                verdict = "not flagged by" if stray else "failed"
                self.check(11, ok == (not stray), f"{what} {verdict} the read-only inspection "
                                                  f"(Inspector.check_integrity(full={full})): {why}",
                           faults=None if not stray else ["corrupt"])

    def read_only_verdict(self, faults: list[str] | None, full: bool = False) -> tuple[bool, str] | None:
        """Whether the read-only inspection (``Inspector``, which ``reliability check`` reads through: another
        entry point to the same rule) flags the file, and what it said; None for a runtime this harness
        cannot inspect. Inspection changes nothing: the database file is not written (:meth:`file_fingerprint`)."""
        import os

        from reliability import DatabaseError, ReliabilityConfig
        from reliability.inspection import Inspector

        if not isinstance(self.config, ReliabilityConfig) or not os.path.exists(self.db_path):
            return None

        digest = self.file_fingerprint  # (never an open()/close() of the file: see there)
        before = digest()
        try:
            with Inspector(self.config) as view:
                report = view.check_integrity(full=full)
            seen = (not report.ok, "; ".join(report.problems[:3]) or "ok")
        except DatabaseError as err:
            seen = (str(err.kind) in ("corrupt", "notadb", "ioerr_corruptfs"), f"raised {err.kind}: {err.detail}")
        self.check(11, digest() == before, "the read-only inspection changed the database file", faults=faults)
        return seen

    def command_line_verdict(self, faults: list[str] | None, full: bool = False) -> tuple[bool, str] | None:
        """Whether ``reliability check [--full]`` flags the file, and what it said; None for a runtime that
        is not this package's.

        Flagged means exit 1 with problems listed, or exit 3 with a corruption error kind; exit 0 means
        intact. Any other outcome (usage, configuration, an internal error) is itself a violation: the
        command must give a verdict on a file it can open.
        """
        ran = self.run_command_line(["check", *(["--full"] if full else [])], 11, faults)
        if ran is None:
            return None
        code, doc = ran
        kind = (doc.get("error") or {}).get("kind")
        said = f"exit {code}: {doc.get('message')}"
        self.check(11, code in (0, 1) or (code == 3 and bool(kind)),
                   f"`reliability check` gave no verdict: {said} (error {doc.get('error')})", faults=faults)
        return code == 1 or kind in ("corrupt", "notadb", "ioerr_corruptfs"), said


class HealthMachine(HealthMixin):
    """Operations under faults, counted; corruption flagged."""

    core_groups = frozenset(("integrity",))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close", "disconnect_rename", "disconnect_delete")

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults and is_this_runtime(self))
    @rule(case=st.sampled_from(SCHEDULED_CASES), seed=st.integers(0, 2**16))
    def scheduled_maintenance(self, case: tuple[str, str], seed: int) -> None:
        """P11 on the schedule (``quick_check_interval``, ``integrity_check_interval``, ``health_check_interval``):
        the background task, not a call, reaches the verdict. Damage the task's check can see marks the file
        (health not healthy, the shared mark written); a lock held while it runs is never taken for damage; a
        healthy file stays unmarked. The runtime restarts with the interval short, the rule waits for one run
        (real time: the schedule's thread), and the next runtime has the example's intervals again."""
        task, trouble = case
        base = self.config
        fault = self.damage_at_rest(trouble, seed) if trouble in CORRUPT_PARTS else None
        if fault is None:
            self.db.close()
        self.db = self.open_runtime(base.replace(**{SCHEDULED_INTERVALS[task]: 0.02}))
        self.after_reopen()
        scheduler = self.db.durability.scheduler
        before = scheduler.runs.get(task, 0)
        locked = trouble == "locked" and self.inject("locked", 1)  # (1: an exclusive lock, which blocks reads too)
        # Under the lock: two more runs, so that one began after the lock was taken (the label must be true).
        ran = wait_for_run(scheduler, task, scheduler.runs.get(task, 0) + 2 if locked else before + 1)
        labels = ["corrupt"] if fault is not None else None
        self.check(11, ran, f"{SCHEDULED_INTERVALS[task]}=0.02: the scheduled {task} did not run within "
                            f"{SCHEDULE_WAIT} s", faults=labels)
        if locked:
            self.heal("locked")  # (the verdict is judged below, the lock gone: what it left behind)
        seen = self.db.monitor.integrity_ok is False
        marked = os.path.lexists(f"{self.db_path}.damaged")
        must_see = fault is not None and task != "health_check" and (task == "integrity_check"
                                                                     or trouble != "index_entry")
        if ran and must_see:
            status = str(self.db.health().status)
            self.check(11, seen and marked and status != "healthy", lambda: (
                f"{trouble} damage (seed {seed}) not flagged by the scheduled {task}: integrity_ok="
                f"{self.db.monitor.integrity_ok}, damage mark {'written' if marked else 'absent'}, health {status}"),
                faults=labels)
        elif fault is None:
            self.check(11, not seen and not marked, lambda: (
                f"the scheduled {task} {'under a held lock ' if locked else ''}marked an intact file damaged: "
                f"{self.db.monitor.integrity_problems[:3]}"), faults=["locked"] if locked else None)
        self.db.close()
        self.config = base
        if fault is not None:
            self.put_back_undamaged(fault)  # (opens the next runtime on self.config: the intervals drawn)
            self.last_healed = "corrupt"
            self.integrity_passes(None)
        else:
            self.db = self.open_runtime(base)
            self.after_reopen()

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults and is_this_runtime(self))
    @rule(part=st.sampled_from((*CORRUPT_PARTS, "index_entry")), seed=st.integers(0, 2**16))
    def verdict_cleared_by_the_full_check(self, part: str, seed: int) -> None:
        """P11 (and P10 through health): the damage verdict an integrity check reached (``integrity_ok`` False,
        the shared mark ``<db>.damaged``, health not healthy) is cleared by a clean full integrity check, and by
        nothing less (README: "A clean ``quick_check`` clears no verdict").

        The full check finds the damage; a quick check follows with the damage still there. On ``index_entry``
        damage, which ``quick_check`` does not see, it passes: the verdict must stand all the same, or health calls
        a file healthy whose index misses a row (and the runtime's own writes go through it). Then the undamaged
        file is put back (the fault healed) and the runtime started on it; its clean full check must clear the
        verdict: ``integrity_ok`` True, the mark gone, health naming no damage (a verdict that outlives a clean full
        check keeps the runtime's own writes waiting and the status down for good, with ``auto_recover`` off)."""
        from reliability import DatabaseError
        from reliability.damage_mark import DamageMarker

        def mark() -> Any:
            return DamageMarker(self.db_path).read()

        if self.db.monitor.integrity_ok is False or mark() is not None:
            return  # (a verdict from before: another rule's business)
        fault = self.damage_at_rest(part, seed)
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        try:
            flagged = not integrity_ok(self.absorb(self.db.check_integrity, full=True))
        except DatabaseError as err:
            flagged = str(err.kind) in ("corrupt", "notadb", "ioerr_corruptfs")
        if flagged:  # (a miss is corrupt_and_check's violation)
            before = mark()
            try:
                quick = "passed" if integrity_ok(self.absorb(self.db.check_integrity, full=False)) else "failed"
            except DatabaseError as err:
                quick = f"raised {err.kind}"
            status, now = str(self.db.health().status), mark()
            self.check(11, self.db.monitor.integrity_ok is False and now is not None and status != "healthy",
                       lambda: (f"{part} damage (seed {seed}) found by check_integrity(full=True), still in the file: "
                                f"check_integrity(full=False) {quick} and the verdict no longer stands: integrity_ok="
                                f"{self.db.monitor.integrity_ok}, damage mark "
                                f"{'present' if now is not None else 'removed'}"
                                f"{' (there before the quick check)' if before is not None else ''}, health {status}"),
                       faults=["corrupt"])
        self.put_back_undamaged(fault)
        self.last_healed = "corrupt"
        if not flagged:
            return
        sticky = mark()
        if sticky is not None and sticky.sticky:
            return  # (a sticky mark is removed only by a recovery: not this rule's question)
        try:
            ok = integrity_ok(self.absorb(self.db.check_integrity, full=True))
            why = "answered ok"
        except DatabaseError as err:
            ok, why = False, f"raised {err.kind}: {err.detail}"
        if not ok:
            return  # (a healthy file failing the check: integrity_passes' violation, asked in check_healthy_file)
        report = self.db.health()
        left = mark()
        damage = [r for r in report.reasons if r.startswith("the database is marked")]
        self.check(11, self.db.monitor.integrity_ok is True and left is None and not damage, lambda: (
            f"the undamaged file put back after {part} damage (seed {seed}), check_integrity(full=True) {why}, yet "
            f"the verdict stands: integrity_ok={self.db.monitor.integrity_ok}, damage mark "
            f"{'present (' + left.describe() + ')' if left is not None else 'removed'}, health {str(report.status)!r} "
            f"{list(report.reasons)[:2]}"))

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults and is_this_runtime(self))
    @rule(part=st.sampled_from(("btree_root", "btree_leaf")), frame=st.integers(1, 64), seed=st.integers(0, 2**16))
    def sticky_mark_outlives_a_later_verdict(self, part: str, frame: int, seed: int) -> None:
        """P11 (and P10 through health) on the shared damage mark ``<db>.damaged`` (damage_mark.py): another
        process on this database found a damaged ``-wal`` frame and wrote a *sticky* mark about this file (the
        damage may be checkpointed into the file where no check sees it: "only a recovery removes it"). This
        runtime's statement then meets other damage in the same file and rewrites the mark with its own, visible
        verdict. "A sticky mark already there about the same file stays sticky, and its first problem is kept": the
        mark must still be sticky, name this file (device, inode), and keep the other process's problem first;
        health's ``damage_mark`` names this file too. Else a later clean check removes the only witness of damage
        that no check can see. The undamaged file is put back and the mark removed (as a recovery would) after."""
        from reliability import DatabaseError, files
        from reliability.damage_mark import DamageMarker
        from reliability.health import WAL_DAMAGE

        marker = DamageMarker(self.db_path)
        if self.db.monitor.integrity_ok is False or marker.read() is not None:
            return  # (a verdict from before: another rule's business)
        fault = self.damage_at_rest(part, seed)
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        try:
            identity = files.file_identity(self.db_path)
            first = (f"{WAL_DAMAGE}frame {frame} of {os.path.basename(self.db_path)}-wal (page {1 + seed % 97}) "
                     "fails its checksum")
            # (what another manager's close writes on finding its -wal damaged: verdict.wal_at_close)
            marker.write("a damaged -wal found by the manager's close", [first], identity, sticky=True)
            met = None
            try:
                self.absorb(lambda: self.db.execute("SELECT k, v FROM kv NOT INDEXED").fetchall())
            except DatabaseError as err:
                met = err
            if met is not None and str(met.kind) in ("corrupt", "notadb"):
                mark = marker.read()
                said = "none" if mark is None else (
                    f"sticky={mark.sticky}, file={mark.file}, problems={list(mark.problems)[:2]}")
                self.check(11, mark is not None and mark.sticky and mark.file == identity
                           and bool(mark.problems) and mark.problems[0] == first, lambda: (
                               f"a sticky damage mark about this file ({identity}, first problem {first!r}) was "
                               f"rewritten after a statement met {part} damage ({met.kind}): the mark now says {said}"),
                           faults=["corrupt"])
                shown = (self.db.health().extra or {}).get("damage_mark") or {}
                self.check(10, shown.get("file") == list(identity or ()) and shown.get("sticky") is True, lambda: (
                    f"health's damage_mark after a sticky mark about this file {identity} was rewritten by a "
                    f"statement's verdict: file={shown.get('file')}, sticky={shown.get('sticky')}"), faults=["corrupt"])
        finally:
            with contextlib.suppress(OSError):  # (removed as a recovery that installs a file removes it: the
                marker.clear()  # directory fsynced, so a simulated power loss later does not bring the mark back)
            self.put_back_undamaged(fault)
            self.last_healed = "corrupt"
        self.integrity_passes(None)

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults and is_this_runtime(self))
    @rule(planted=st.sampled_from(("link", "dangling_link", "directory")), then=st.sampled_from(("full", "quick")))
    def marker_error_lifted_once_fixed(self, planted: str, then: str) -> None:
        """P10: an error writing or removing the damage mark is "logged and kept for health" (verdict.py) while it
        stands, and is no reason once the marker works again. Something not a marker is planted at ``<db>.damaged``
        (a symlink, one to nothing, a directory: never written through nor removed, damage_mark.py); a clean full
        integrity check then cannot remove it: health is not healthy. An operator removes the planted thing; the
        next clean check (``then``: full or quick) removes nothing and fails at nothing, and health must no longer
        name the marker's error (a stale error keeps the status degraded for good)."""
        from reliability import DatabaseError
        from reliability.damage_mark import marker_path
        from reliability.files import fsync_dir

        path = str(marker_path(self.db_path))
        if os.path.lexists(path) or self.db.monitor.integrity_ok is False:
            return
        target = os.path.join(self.dir, "planted-marker-target")
        if planted == "directory":
            os.mkdir(path)
        else:
            if planted == "link":
                with open(target, "w") as fh:
                    fh.write("{}")
            os.symlink(target, path)
        try:
            try:
                ok = integrity_ok(self.absorb(self.db.check_integrity, full=True))
            except DatabaseError:
                ok = False
            if not ok:
                return  # (a healthy file failing: integrity_passes' violation, asked in check_healthy_file)
            before = self.db.health()
            self.check(10, str(before.status) != "healthy", lambda: (
                f"a {planted} planted at {path} (a marker no check may remove) and health says healthy"))
        finally:
            if planted == "directory":
                os.rmdir(path)
            else:
                os.unlink(path)
            if os.path.exists(target):
                os.unlink(target)
            fsync_dir(self.dir)  # (gone for good: a simulated power loss later must not bring the planted thing back)
        try:
            ok = integrity_ok(self.absorb(self.db.check_integrity, full=then == "full"))
        except DatabaseError:
            ok = False
        if not ok:
            return
        report = self.db.health()
        stale = [r for r in report.reasons if "damage marker" in r or path in r]
        self.check(10, not stale, lambda: (
            f"the {planted} planted at {path} was removed and a clean {then} check ran, yet health still names the "
            f"marker: {stale[:2]} (status {str(report.status)!r})"))

    #: Each drawn three times as often as one rule (a targeted weight: drawn once, the sticky mark's rewrite went
    #: unjudged in one default run of two with its merge broken; each call costs one reopen).
    sticky_mark_outlives_a_later_verdict_again = sticky_mark_outlives_a_later_verdict
    sticky_mark_outlives_a_later_verdict_third = sticky_mark_outlives_a_later_verdict
    marker_error_lifted_once_fixed_again = marker_error_lifted_once_fixed
    marker_error_lifted_once_fixed_third = marker_error_lifted_once_fixed

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults and is_this_runtime(self))
    @rule(change=st.sampled_from(("disconnect_rename", "disconnect_replace")),
          first=st.sampled_from(("health", "quick", "full")), then=st.sampled_from(("health", "quick", "full")),
          seed=st.integers(0, 2**16))
    def inspector_follows_the_path(self, change: str, first: str, then: str, seed: int) -> None:
        """P11 and P10 through the read-only inspection (``Inspector``, what ``reliability check`` and ``reliability
        health`` read through): an inspector kept open across a change of the file at its path reports on the file
        now at the path, not on the one it read before (inspection.py: "Called before every report ... a report on
        that file would call a database healthy and sound that is gone from the path"). The application stopped, an
        inspector reads the intact file once (its health or an integrity check), then the file is moved away
        (nothing at the path) or replaced by bytes that are no database; asked again (``then`` first, then the other
        reports), the same inspector must say each time it cannot read the database: health ``unavailable``, the
        quick and the full integrity check failed. The file is put back after."""
        from reliability import DatabaseError
        from reliability.inspection import Inspector

        from ..stats import STATS

        def ask(view: Any, what: str) -> tuple[bool, str]:
            """(whether the answer says the file at the path is unreadable, what it said)"""
            try:
                if what == "health":
                    report = view.health()
                    # (and says why: a report that is not healthy gives its reason, as the runtime's own does)
                    return (str(report.status) != "healthy" and report.connection_state == "unavailable"
                            and bool(report.reasons),
                            f"health {report.status} ({report.connection_state}): reasons {list(report.reasons)[:2]}")
                result = view.check_integrity(full=what == "full")
                return not result.ok, f"check_integrity(full={what == 'full'}) answered {result.problems[:2] or 'ok'}"
            except DatabaseError as err:  # (a read that fails outright is an answer too: it is no verdict of sound)
                return str(err.kind) in ("cantopen", "notadb", "corrupt"), f"{what} raised {err.kind}: {err.detail}"

        self.db.close()
        fault = None
        try:
            with Inspector(self.config) as view, Inspector(self.config) as other:
                # (the intact file: read once by each, so each inspector holds a connection to it; reading changes
                # nothing: see read_only_verdict)
                before = self.file_fingerprint()
                ask(view, first)
                ask(other, first)
                self.check(11 if first != "health" else 10, self.file_fingerprint() == before,
                           f"the read-only inspection changed the database file ({first})")
                params: dict[str, Any] = {}
                if change == "disconnect_replace":
                    junk = os.path.join(self.dir, "not-a-database.bin")
                    rnd = random.Random(seed)
                    with open(junk, "wb") as fh:  # (no SQLite header: "file is not a database")
                        fh.write(b"JUNK" + bytes(rnd.getrandbits(8) for _ in range(4092)))
                    params["replacement"] = junk
                fault = make_fault(change, self.db_path, counted_in=STATS, **params)
                fault.inject()
                self.fault_history.append(change)
                what = ("moved away (nothing at the path)" if change == "disconnect_rename"
                        else "replaced by a file that is no database")
                # One inspector asked ``then`` first, the other two reports after it; the other one asked for its
                # health first (each report must look at the path itself, not count on another having looked).
                for inspector, order in ((view, (then, *(r for r in ("health", "quick", "full") if r != then))),
                                         (other, ("health",))):
                    for now in order:
                        seen, said = ask(inspector, now)
                        self.check(11 if now != "health" else 10, seen, lambda now=now, said=said: (
                            f"the read-only inspection (an Inspector that read the intact file ({first}), asked again "
                            f"({now}) after the file was {what}) still reports on the old file: {said}"),
                            faults=[change])
                fault.heal()
                fault = None
        finally:
            if fault is not None:
                fault.heal()
            self.db = self.open_runtime(self.config)
            self.after_reopen()
        self.last_healed = change

    @precondition(swarm("integrity"))
    @precondition(lambda self: has_integrity_check(self) and not self.faults and is_this_runtime(self))
    @rule(change=st.sampled_from(("stray_bytes", "file_away")), n=st.integers(1, 4095), seed=st.integers(0, 2**16))
    def file_changed_while_stopped(self, change: str, n: int, seed: int) -> None:
        """The database file changed while the application was stopped, as another program or an operator changes
        it: bytes appended to it (:meth:`stray_bytes_after_the_last_page`, P11), or the file moved away
        (:meth:`write_queued_while_the_file_is_missing`, P10). The next runtime's verdict is judged."""
        if change == "stray_bytes":
            self.stray_bytes_after_the_last_page(n, seed)
        else:
            self.write_queued_while_the_file_is_missing(n % 13, seed % 6)

    def stray_bytes_after_the_last_page(self, extra: int, seed: int) -> None:
        """P11: stray bytes after the file's last page (a copy or a concatenation gone wrong, another program
        writing past the end) leave a database file whose size is no whole number of pages. SQLite reads past
        them without a word (the header's page count wins; no PRAGMA looks at the file's length), but the
        runtime's integrity check is documented to report a file that ends inside a page, as part of every check
        (``reliability.health.file_problems``): the quick one and the full one, the read-only inspection's and
        ``reliability check``'s. health() then does not say healthy (P10). With the bytes gone the file passes."""
        from reliability import DatabaseError

        self.reopen()  # (the WAL's frames checkpointed into the file: its size at rest is its last page's end)
        self.db.close()
        with open(self.db_path, "rb") as fh:
            raw = int.from_bytes(fh.read(18)[16:18], "big")
        page_size = 65536 if raw == 1 else raw
        size = os.path.getsize(self.db_path)
        extra = 1 + (extra - 1) % (page_size - 1)  # (never a whole page: that would be a page, not a cut one)
        from ..stats import STATS

        make_fault("corrupt", self.db_path, part="append", length=extra, seed=seed, counted_in=STATS).inject()
        self.fault_history.append("corrupt")
        what = (f"{extra} stray byte(s) after the last page ({size + extra} bytes: no whole number of "
                f"{page_size}-byte pages)")
        try:
            self.db = self.open_runtime(self.config)
            self.after_reopen()
            flagged = False
            for full in (False, True):
                call = f"check_integrity(full={full})"
                try:
                    report = self.absorb(self.db.check_integrity, full=full)
                    flagged_now = not integrity_ok(report)
                    why = f"{call} answered {list(getattr(report, 'problems', []) or [])[:2] or 'ok'}"
                except DatabaseError as err:
                    flagged_now = str(err.kind) in ("corrupt", "notadb", "ioerr_corruptfs")
                    why = f"{call} raised {err.kind}: {err.detail}"
                flagged = flagged or flagged_now
                self.check(11, flagged_now, f"{what} not flagged: {why}", faults=["corrupt"])
                seen = self.read_only_verdict(["corrupt"], full=full)
                self.check(11, seen is None or seen[0], f"{what} not flagged by the read-only inspection (Inspector"
                                                        f".check_integrity(full={full})): {seen and seen[1]}",
                           faults=["corrupt"])
                said = self.command_line_verdict(["corrupt"], full=full)
                self.check(11, said is None or said[0], f"{what} not flagged by `reliability check"
                                                        f"{' --full' if full else ''}`: {said and said[1]}",
                           faults=["corrupt"])
            if flagged:
                status = str(self.db.health().status)
                self.check(10, status != "healthy", f"health().status is {status!r} after an integrity check "
                                                    f"found {what}", faults=["corrupt"])
        finally:
            self.db.close()
            os.truncate(self.db_path, size)
            self.db = self.open_runtime(self.config)
            self.after_reopen()
        self.last_healed = "corrupt"
        self.integrity_passes(None)

    def write_queued_while_the_file_is_missing(self, n: int, param: int) -> None:
        """P10: the database file is away when the runtime starts, although a backup shows it held data, and
        ``auto_recover`` is off: the runtime refuses to start from an empty file, and health says
        ``unavailable``. A write command accepted meanwhile (queued: "saved automatically when the database is
        available again") is one more reason to name, never one that lifts the status: the database is still
        unavailable, not merely degraded. The file back, the next runtime replays the write."""
        from reliability import DatabaseError
        from reliability.degraded import Needs

        try:
            self.absorb(self.db.backup)  # (what shows the runtime managed this database: a verified backup)
        except DatabaseError:
            return
        self.db.close()
        moved = self.inject("disconnect_rename", param)  # (at rest: the file and its sidecars moved aside)
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        if not moved:
            return
        key, value = f"user-{n}", self.text()

        def store(db: Any, k: str, v: str) -> int:
            return db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (k, v)).rowcount

        try:
            before = str(self.db.health().status)
            self.check(10, before == "unavailable", lambda: (
                f"the database file is missing at start (a backup exists, auto_recover off) and health says "
                f"{before!r}: {list(self.db.health().reasons)}"))
            self.db.commands.register("store", Needs.WRITE, store)
            result = self.absorb(self.db.commands.run, "store", key, value)
            if result.status == "queued":
                report = self.db.health()
                self.check(10, str(report.status) == "unavailable", lambda: (
                    f"the database file is missing (a backup exists, auto_recover off), a write command was queued, "
                    f"and health says {str(report.status)!r}: {list(report.reasons)}"))
        finally:
            self.db.close()
            self.heal("disconnect_rename")
            self.db = self.open_runtime(self.config)
            self.after_reopen()
        if result.status in ("ok", "queued"):
            self.model.kv[key] = value  # (acknowledged: the invariants want it in the file once replayed)
            self.db.commands.register("store", Needs.WRITE, store)
            self.absorb(self.db.commands.replay)
