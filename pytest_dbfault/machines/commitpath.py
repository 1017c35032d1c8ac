"""P13 on the redo journal's commit path (issue #17): a kill at any point of a commit loses nothing acknowledged.

The rule ``write`` runs one journaled transaction and may *kill the process* at one point of the
commit path. A kill is modelled the way the kernel leaves things: at that instant the database
directory (database, WAL, journals, backups — everything but the ``-shm`` index, which SQLite rebuilds)
is copied as it is, since the page cache survives a process kill; the runtime is stopped right
there (an exception no handler of the runtime takes for an error) and abandoned; a fresh runtime
starts on the copy, as a restart after ``kill -9`` would. The points, in both commit paths (the
synchronous FULL/EXTRA path writes its record before COMMIT and overlaps the fsyncs; the only
writer at NORMAL writes it after COMMIT, see :mod:`reliability.redo`):

* ``before_record`` — the record is about to be written;
* ``mid_record`` — the record's bytes are in the file, its high-water mark not yet (the two writes of one
  record are two system calls: a kill can land between them);
* ``after_record`` — the record is written (not yet flushed / not yet acknowledged);
* ``before_commit`` — just before COMMIT (after the record on the FULL path, before it when alone);
* ``after_commit`` — COMMIT and the record done, the caller not yet told.

The killed transaction was never acknowledged, so either outcome is allowed at the restart, but
checked (P13): every acknowledged write is present, a write that failed (a real COMMIT failure:
a deferred foreign key) never is, and after the database is damaged and recovered from backup +
journals the result is exactly what the database held — the killed transaction included exactly
when the restarted database had it (no orphan replayed, journal and database never diverge), with
``ok=True``. A second manager writing meanwhile makes the sequence of a manager committing alone
get published, and backups come in between.

Power loss is not modelled here (the copy keeps what the page cache held): SQLite's side of it is
the VFS shim's (``tests/vfs/test_vfs_redo_powerloss.py``), the journal's the power-loss model of
:mod:`.powerloss`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from ..stats import STATS
from .base import RuntimeMachine, config_strategy, swarm_strategy

POINTS = ("none", "before_record", "mid_record", "after_record", "before_commit", "after_commit")
KEYS = tuple(f"k{i}" for i in range(6))
FK_TABLES = (
    # Every write also adds 1 here: replaying a transaction twice (or one that never committed) shows.
    "CREATE TABLE IF NOT EXISTS tally (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO tally (id, n) VALUES (1, 0)",
    "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL "
    "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
)


class Killed(BaseException):
    """The process died here. (The runtime's COMMIT wrapper turns it into a DatabaseError on its way
    out; the machine knows the kill from :attr:`CommitPathMachine.killed_at`, not from the exception.)"""


class CommitPathMachine(RuntimeMachine):
    """Kill -9 at the points of the journaled commit path; P13 after the restart and after recovery."""

    fault_kinds: ClassVar[tuple[str, ...]] = ("none",)
    settings_overrides: ClassVar[dict[str, Any]] = {"redo_journal": True, "auto_recover": False}

    # Both commit paths, the one alone (NORMAL) as often as the two fsynced ones together.
    @initialize(rnd=st.randoms(use_true_random=False), drawn=config_strategy(), enabled=swarm_strategy(),
                sync=st.sampled_from(("NORMAL", "FULL", "NORMAL", "EXTRA")))
    def start(self, rnd: Any, drawn: dict[str, Any], enabled: frozenset[str], sync: str) -> None:
        """The base machine's start with ``synchronous`` drawn here (see the comment above)."""
        super().start(rnd=rnd, drawn={**drawn, "synchronous": sync}, enabled=enabled)

    def after_start(self) -> None:
        for sql in FK_TABLES:
            self.db.execute(sql)
        self.acked: dict[str, str] = {"#": "0"}
        self.failed: set[int] = set()
        self.kills = 0
        self.copies: list[str] = []
        self._dirs = [self.dir]
        self.killed_at: str | None = None
        self.db.backup()

    # -- the kill ------------------------------------------------------------------------------
    def _arm(self, db: Any, point: str) -> None:
        redo = db.redo_journal
        machine = self

        def kill() -> None:
            if machine.killed_at is None:  # (a retry of the dead runtime must not take a second copy)
                machine.killed_at = point
                machine._snapshot()
            raise Killed(point)

        if point == "before_record":
            redo.write_record = lambda seq, **kw: kill()
        elif point == "mid_record":
            def half_written(seq: int, *, sync: bool = True, alone: bool = False) -> bool:
                # What write_record's first system call leaves: the record appended, the file's high-water mark
                # still naming the record before it (an unprotected journal writes nothing).
                if redo._fd is not None and redo.error is None and redo._end >= 0:
                    record = redo._encoder.record((seq, redo._pending, 1) if alone else (seq, redo._pending))
                    os.pwrite(redo._fd, record, redo._end)
                kill()
                return True  # pragma: no cover - kill() raised
            redo.write_record = half_written
        elif point == "after_record":
            write = redo.write_record

            def written(seq: int, **kw: Any) -> bool:
                write(seq, **kw)
                kill()
                return True  # pragma: no cover - kill() raised
            redo.write_record = written
        elif point == "before_commit":
            redo.start_sync = kill  # the FULL/EXTRA path: record written, COMMIT next
            if redo.claim is not None:
                redo.claim.enter = kill  # the path alone: COMMIT next, record after it
        elif point == "after_commit":
            redo.committed = lambda seq: kill()

    def _snapshot(self) -> None:
        dest = tempfile.mkdtemp(prefix="dbfault-killed-", dir=self.base_dir)
        for name in os.listdir(self.dir):
            src = os.path.join(self.dir, name)
            if name.endswith("-shm"):
                continue
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(dest, name), symlinks=True)
            else:
                shutil.copy2(src, os.path.join(dest, name))
        self.copies.append(dest)
        self._dirs.append(dest)

    def stored(self) -> dict[str, str]:
        """The kv rows and, under ``"#"``, the tally (one connection, one read transaction: both from one snapshot)."""
        with self.raw() as conn:
            return self._stored(conn)

    @staticmethod
    def _stored(conn: Any) -> dict[str, str]:
        conn.execute("BEGIN")
        try:
            (n,) = conn.execute("SELECT n FROM tally WHERE id = 1").fetchone()
            return {**dict(conn.execute("SELECT k, v FROM kv").fetchall()), "#": str(n)}
        finally:
            if conn.in_transaction:  # (a failed read may have ended it: the first error is the one to see)
                conn.execute("COMMIT")

    def _restart_on_copy(self) -> None:
        old = self.db
        try:
            old.close()  # (writes into the old directory: the copy is what the kill left)
        except Exception:  # noqa: BLE001 - a runtime stopped mid-commit may not close cleanly
            pass
        self.abandoned.append(old)
        self.dir = self.copies[-1]
        self.db_path = os.path.join(self.dir, "app.db")
        self.db = self.open_runtime(self.make_config())
        self.kills += 1
        STATS.record_fault("kill")
        self.last_healed = "kill"  # what is checked from here on judges what the kill left (labelled after:kill)

    # -- rules ---------------------------------------------------------------------------------
    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True),
          point=st.one_of(st.just("none"), st.sampled_from(POINTS[1:])))  # (half the writes are not killed)
    def write(self, keys: list[str], point: str) -> None:
        """One transaction writing ``keys``; with ``point`` the process is killed there."""
        self.steps += 1
        value = f"v{self.steps}-{self.kills}"
        if point != "none":
            self._arm(self.db, point)

        def work() -> None:
            for k in keys:
                self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (k, value))
            self.db.execute("UPDATE tally SET n = n + 1 WHERE id = 1")
        try:
            self.db.run_in_transaction(work)
        except BaseException:
            if self.killed_at is None:
                raise
        if self.killed_at is not None:
            self.killed_at = None
            self._restart_on_copy()
            stored = self.stored()
            with_it = {**self.acked, **dict.fromkeys(keys, value), "#": str(int(self.acked["#"]) + 1)}
            self.check(13, stored in (self.acked, with_it), lambda: (
                f"after a kill at {point}: the database holds {stored}, expected the acknowledged "
                f"{self.acked} with or without the killed transaction's {keys}={value}"))
            self.acked = stored  # whichever the database kept is now the truth the journal must agree with
            return
        self.acked.update(dict.fromkeys(keys, value))
        self.acked["#"] = str(int(self.acked["#"]) + 1)
        self.check(13, self.stored() == self.acked, "an acknowledged write is not in the database")

    @rule()
    def failing_commit(self) -> None:
        """A COMMIT that fails for real (a deferred foreign key): reported, and never present later."""
        self.steps += 1
        child = self.steps

        def work() -> None:
            self.db.execute("INSERT INTO child (id, parent) VALUES (?, ?)", (child, -child))
        from reliability import DatabaseError
        try:
            self.db.run_in_transaction(work)
        except DatabaseError:
            self.failed.add(child)
        self.check(13, child in self.failed, "a COMMIT that violates a deferred foreign key was acknowledged")

    @rule()
    def second_writer(self) -> None:
        """Another manager on the same database writes once (publishes the sequence of one committing alone)."""
        self.steps += 1
        other = self.open_runtime(self.make_config())
        try:
            value = f"second-{self.steps}"
            other.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", ("k0", value))
            self.acked["k0"] = value
        finally:
            other.close()

    @rule()
    def backup(self) -> None:
        """A verified backup (re-anchors the journal; must carry the complete sequence)."""
        self.db.backup()

    @invariant()
    def journals_agree_with_the_database(self) -> None:
        """After every step: the journals merge, on top of the newest backup, into exactly the transactions
        the database says it committed (one record per sequence, none missing) — what recovery would use."""
        from reliability.redo import _locked_by_someone, journal_files, plan_replay, read_committed

        if getattr(self, "acked", None) is None or self.db is None or self.db.redo_journal is None:
            return
        newest = self.db.durability.backups.newest_verified()
        start = newest.last_seq if newest is not None and newest.last_seq is not None else 0
        redo = self.db.redo_journal
        # (On the runtime's SQLite build: a connection of another build closing on the live file would drop
        # the runtime's POSIX locks on it, see read_committed.)
        committed = read_committed(self.db_path, self.sqlite_module())
        plan = plan_replay(self.db.config.redo_journal_file, start, seen=redo.seen, committed=committed,
                           alive=frozenset({redo.slot}))
        self.check(13, not plan.problems, lambda: f"the journals and the database disagree: {plan.problems}")
        # A journal's lock says its owner runs (every process judges a stopped journal's last record by it, and
        # a manager opening takes the first free slot): here the one manager open is this one, so every other
        # journal must be free once a step is over (a startup that looked at the stopped ones let go of them).
        held = [slot for slot, path in journal_files(self.db.config.redo_journal_file)
                if slot != redo.slot and _locked_by_someone(path)]
        self.check(13, not held, lambda: (
            f"redo journal slot(s) {held} are locked although no manager of them is open (this manager holds "
            f"slot {redo.slot}): other processes take their owner for alive, and no manager can take them"))

    @rule()
    def damage_and_recover(self) -> None:
        """Damage the database for real and recover it from the newest backup and the journals."""
        self.db.connections.close()
        with open(self.db_path, "r+b") as f:
            f.write(b"\x00" * 16)  # the header: nothing in the file can be read any more
        report = self.db.recover()
        with self.raw() as conn:
            stored = self._stored(conn)
            children = {r[0] for r in conn.execute("SELECT id FROM child")}
        self.check(13, report.ok, lambda: f"recovery after kills at the commit path did not succeed: {report}")
        self.check(13, stored == self.acked, lambda: (
            f"recovered {stored}, but the database held {self.acked} before the damage (an acknowledged write "
            "lost, or an orphan record replayed)"))
        self.check(13, not (children & self.failed), lambda: f"failed writes replayed: {children & self.failed}")
        self.acked = stored

    def teardown(self) -> None:
        earlier = [d for d in getattr(self, "_dirs", []) if d != self.dir]
        super().teardown()
        for d in earlier:
            shutil.rmtree(d, ignore_errors=True)
