"""P12 automatic backup and P13 corruption recovery without losing an acknowledged write."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sqlite3
import stat
import time
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from ..faults.registry import make_fault
from ..stats import STATS
from .base import swarm
from .loss_report import disagreements, loss_statements
from .workload import Workload

CORRUPTIONS = ("btree_root", "header", "truncate")


def has_backups(self: Any) -> bool:
    return self.db is not None and all(callable(getattr(self.db, n, None)) for n in ("backup", "backups"))


def has_recovery(self: Any) -> bool:
    return has_backups(self) and callable(getattr(self.db, "recover", None))


def read_file_state(path: str) -> tuple[dict[str, str], dict[int, list[tuple[int, int]]]]:
    """The kv rows and groups of a database file (a backup), which stays untouched.

    Opened read-only and ``immutable``: SQLite then writes nothing, creates no journal, WAL or index beside
    it and takes no lock, and reads the pages a byte-for-byte copy would hold (it was read from such a copy,
    made and removed for every backup after every step of the machines that check P12). Only SQLite's
    journal and locks are skipped, and a backup has no journal nor, between steps, any lock to honour."""
    conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro&immutable=1", uri=True,
                           isolation_level=None)
    try:
        kv = dict(conn.execute("SELECT k, v FROM kv").fetchall())
        pairs: dict[int, list[tuple[int, int]]] = {}
        for grp, leg, amount in conn.execute("SELECT grp, leg, amount FROM pairs ORDER BY grp, leg"):
            pairs.setdefault(grp, []).append((leg, amount))
        return kv, pairs
    finally:
        conn.close()


def recorded_sequence(path: str) -> int | None:
    """The redo sequence a backup file itself holds: the larger of the last applied sequence it records and
    the highest commit sequence of its writers table (None when it has neither), read without writing."""
    from reliability.redo import WRITERS_TABLE

    conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro&immutable=1", uri=True,
                           isolation_level=None)
    try:
        values = []
        for sql in ("SELECT last_seq FROM _reliability_redo_state WHERE id = 1",
                    f"SELECT max(seq) FROM {WRITERS_TABLE}"):
            try:
                row = conn.execute(sql).fetchone()
            except sqlite3.OperationalError:  # no such table
                row = None
            if row is not None and row[0] is not None:
                values.append(int(row[0]))
        return max(values) if values else None
    finally:
        conn.close()


def sound_file(path: str) -> bool:
    """True when ``path`` is a whole SQLite database passing ``PRAGMA integrity_check`` (read without writing)."""
    try:
        conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro&immutable=1", uri=True,
                               isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        return rows == [("ok",)] and os.path.getsize(path) % page == 0
    except sqlite3.Error:
        return False
    finally:
        conn.close()


class BackupMixin(Workload):
    """Takes backups (now and as the schedule would), corrupts the file, recovers."""

    settings_overrides: ClassVar[dict[str, Any]] = {"backup_interval": 3600.0}
    #: every field of each backup :meth:`take_backup` makes is judged (:meth:`check_backup_info`); on in the
    #: backup machine only, so the searches and bites of the machines sharing this mixin stay as they were
    judge_backup_fields: ClassVar[bool] = False

    def after_start(self) -> None:
        super().after_start()
        self.snapshots: dict[str, tuple[dict[str, str], dict[int, list[tuple[int, int]]]]] = {}
        self.audit_snapshots: dict[str, list[str]] = {}
        # The migration versions the file held when each backup was taken: restoring one takes the schema back.
        self.version_snapshots: dict[str, list[int]] = {}
        self.taken: list[str] = []
        os.makedirs(os.path.join(self.dir, "scratch"), exist_ok=True)

    def remember(self, info: Any) -> None:
        self.snapshots[str(info.path)] = (dict(self.model.kv), {k: list(v) for k, v in self.model.pairs.items()})
        # Audit entries live in the database too: restoring a backup takes the log back to it,
        # except entries still waiting in the fallback file, which is outside the database.
        self.audit_snapshots[str(info.path)] = self.stored_audit_ids()
        self.version_snapshots[str(info.path)] = list(self.model.applied_versions)

    def stored_audit_entries(self) -> list[tuple[str, str]]:
        """``(entry_id, action)`` of every audit entry in the database, in chain order."""
        with self.raw() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone() is None:
                return []
            return [(r[0], r[1]) for r in conn.execute("SELECT entry_id, action FROM reliability_audit ORDER BY seq")]

    def stored_audit_ids(self) -> list[str]:
        """The ids of :meth:`stored_audit_entries`."""
        return [entry_id for entry_id, _action in self.stored_audit_entries()]

    @precondition(swarm("backup"))
    @precondition(lambda self: has_backups(self) and not self.faults)
    @rule(scheduled=st.booleans())
    def take_backup(self, scheduled: bool) -> None:
        """P12: a backup taken now (or by the scheduled task) is listed, verified, and holds the state; its rotation
        keeps exactly the newest ``backup_keep`` verified backups and leaves every unverified file in place."""
        # The listing just before the backup: rotation is judged against it (see check_rotation).
        listing = list(self.db.backups())
        started = time.time()
        if scheduled:
            tasks = [t for t in getattr(getattr(getattr(self.db, "durability", None), "scheduler", None), "tasks", [])
                     if t[0] == "backup"]
            self.check(12, bool(tasks) and tasks[0][1] == self.config.backup_interval,
                       f"no backup task scheduled every {self.config.backup_interval}s: {tasks}")
            before = {str(b.path) for b in self.db.backups()}
            self.absorb(tasks[0][2])  # what the schedule runs when the interval is due
            new = [b for b in self.db.backups() if str(b.path) not in before]
            self.check(12, len(new) == 1, f"the scheduled backup task made {len(new)} new backup(s)")
            info = new[0]
        else:
            out = self.call(None, self.absorb, self.db.backup)
            self.check(12, out.ok, lambda: f"a backup failed on a healthy database: {out.error!r}")
            info = out.value
        self.check(12, info.verified, f"backup {info.path} was not verified")
        self.check(12, str(info.path) in {str(b.path) for b in self.db.backups()},
                   f"backup {info.path} is not listed")
        self.check_self_contained(str(info.path))
        if self.judge_backup_fields:
            self.check_backup_info(info, started, time.time())
        self.remember(info)
        self.taken.append(str(info.path))
        self.check_rotation(listing, str(info.path))

    def check_backup_info(self, info: Any, started: float, ended: float) -> None:
        """P12, every field of the :class:`BackupInfo` a backup call returned, against the file it names, its
        manifest and ``db.backups()`` (documented in ``reliability.durability.backup``): ``path`` is the final
        file, in the backup directory, named ``backup-*.sqlite``, with its manifest ``<backup>.json`` beside it,
        both mode 0600 in a 0700 directory; ``size`` is the file's size; ``created_at`` the time of the call;
        ``last_seq`` the redo sequence the copy itself records (what replay after a restore skips to); and the
        listing (newest first) shows the same record first."""
        path = str(info.path)
        where = os.path.abspath(str(self.config.backup_directory))
        name = os.path.basename(path)
        self.check(12, os.path.isfile(path) and os.path.dirname(os.path.abspath(path)) == where
                   and name.startswith("backup-") and name.endswith(".sqlite"),
                   lambda: f"db.backup() returned path {path!r}: not an existing backup-*.sqlite file in the backup "
                           f"directory {where!r} (there: {sorted(os.listdir(where)) if os.path.isdir(where) else []})")
        if not os.path.isfile(path):
            return
        size = os.path.getsize(path)
        self.check(12, info.size == size, f"db.backup() says {path} holds {info.size} bytes, the file has {size}")
        self.check(12, started - 1.0 <= info.created_at <= ended + 1.0,
                   f"db.backup() between {started:.3f} and {ended:.3f} says the backup was created at "
                   f"{info.created_at:.3f}")
        modes = {what: stat.S_IMODE(os.stat(p).st_mode) for what, p in
                 (("backup", path), ("manifest", path + ".json"), ("directory", where)) if os.path.exists(p)}
        self.check(12, modes == {"backup": 0o600, "manifest": 0o600, "directory": 0o700},
                   lambda: f"backup {path}: modes {({k: oct(v) for k, v in modes.items()})}, documented: the backup "
                           f"and its manifest (<backup>.json) 0600 in a 0700 directory")
        listing = list(self.db.backups())
        times = [b.created_at for b in listing]
        self.check(12, times == sorted(times, reverse=True) and bool(listing) and str(listing[0].path) == path,
                   lambda: f"db.backups() is not newest first with the backup just taken ({path}) at its head: "
                           f"{[(os.path.basename(str(b.path)), b.created_at) for b in listing]}")
        listed = next((b for b in listing if str(b.path) == path), None)
        fields = ("path", "created_at", "size", "verified", "last_seq")
        self.check(12, listed is not None and all(getattr(listed, f) == getattr(info, f) for f in fields),
                   lambda: f"db.backup() returned {info}, db.backups() lists {listed}")
        recorded = recorded_sequence(path)
        if self.config.redo_journal or recorded is not None:
            self.check(12, info.last_seq == recorded,
                       f"db.backup() says {path} covers redo sequence {info.last_seq}; the copy records {recorded}")

    def check_self_contained(self, path: str) -> None:
        """P12: a backup is one self-contained file (``reliability.durability.backup``: "A self-contained file: no -wal
        beside it, so copying or renaming it is safe"): a rollback-journal database, not a WAL one, so that opening it
        read-only, as anyone inspecting it does, reads the file alone and leaves nothing beside it (a WAL database
        gets a ``-wal`` and a ``-shm`` from every reader, which a read-only one cannot remove, and a copy of the file
        alone may miss what a ``-wal`` holds)."""
        folder = os.path.dirname(os.path.abspath(path))
        before = set(os.listdir(folder))
        try:
            conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
            try:
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return  # (unreadable: the verification checks' business)
        # (its own sidecars only: a scheduled backup may write another file in the folder meanwhile)
        left = sorted(n for n in set(os.listdir(folder)) - before if n.startswith(os.path.basename(path)))
        self.check(12, mode != "wal" and not left, lambda: (
            f"backup {path} is not a self-contained file: journal_mode {mode!r}; opened read-only and closed, it left "
            f"{left or 'nothing'} beside it"))

    def installs_seen(self) -> int:
        """How many installs the power-loss model has seen so far (0 without the model): a mark for
        :meth:`check_install_durable`."""
        return len(self.powerloss.installs) if self.powerloss is not None else 0

    def check_install_durable(self, prop: int, what: str, since: int) -> None:
        """``what`` (a restore or a recovery) installed a database since the mark ``since``: a power loss right after
        the install must leave the acknowledged state at the database's path, as the install itself is documented
        (``reliability.durability.backup.install``: "Atomically rename a prepared, fsynced database file").

        Judged with the power-loss model (:mod:`.powerloss`), which knows the bytes of the file's last fsync when
        it was renamed into place. SQLite's own writes after the rename are not modelled (lenient): only the last
        install counts, and only the rows (the acknowledged ``kv`` and ``pairs``) are compared."""
        if self.powerloss is None:
            return
        base = os.path.basename(self.db_path)
        mine = [i for i in self.powerloss.installs[since:] if i[0] == base]
        if not mine:
            return
        _name, durable, live = mine[-1]
        if durable == live:
            return
        scratch = os.path.join(self.dir, "scratch", "install-after-power-loss.db")
        os.makedirs(os.path.dirname(scratch), exist_ok=True)
        for side in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(scratch + side):
                os.remove(scratch + side)
        with open(scratch, "wb") as fh:
            fh.write(durable)
        try:
            got: Any = read_file_state(scratch)
        except sqlite3.Error as exc:
            got = f"unreadable: {exc}"
        want = (self.model.kv, self.model.pairs)
        self.check(prop, got == want, lambda: (
            f"{what}: a power loss right after it renamed its file into place at {base} would leave "
            f"{len(durable)} of the {len(live)} bytes installed there (the file was not fsynced before the rename), "
            f"and acknowledged writes lost: {got if isinstance(got, str) else 'the rows differ'}"))

    def check_rotation(self, listing: list[Any], new: str) -> None:
        """P12 retention, judged on one backup call: ``listing`` is ``db.backups()`` just before it, ``new`` the
        backup it made.

        Documented (``BackupManager.rotate``): rotation deletes verified backups beyond ``backup_keep``, oldest
        first, the newest is never deleted, and unverified files are left for a human. So after the call the
        verified backups are exactly ``new`` and the ``keep - 1`` newest verified ones listed before (whatever
        the runtime took of its own earlier, before migrating for one), and every unverified file listed before
        is still listed. A file damaged on disk (no longer verified) counts towards neither: a rotation that
        counted it towards ``keep`` would delete a sound backup and leave fewer than ``keep`` good ones."""
        keep = self.config.backup_keep
        verified_before = [str(b.path) for b in listing if b.verified and str(b.path) != new]
        expected = {new, *verified_before[:max(keep - 1, 0)]}
        after = list(self.db.backups())
        verified_after = {str(b.path) for b in after if b.verified}
        self.check(12, verified_after == expected, lambda: (
            f"backup_keep={keep}: after a backup the verified backups are {sorted(verified_after)}, expected the new "
            f"one and the {keep - 1} newest verified before it ({sorted(expected)}); unverified before: "
            f"{[str(b.path) for b in listing if not b.verified]}"))
        gone = [str(b.path) for b in listing if not b.verified and str(b.path) not in {str(a.path) for a in after}]
        self.check(12, not gone, f"rotation deleted unverified backup file(s) {gone} (they are left for a human)")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_backups(self) and not self.faults)
    @rule()
    def backup_from_the_command_line(self) -> None:
        """P12: ``reliability backup``, run by an operator beside the running application, writes a verified
        backup of the state the application acknowledged, listed by the running runtime too.

        The command starts a manager of its own (its own redo journal slot) and leaves the application's journal
        as it was: a later recovery from this backup replays the application's records past the sequence the
        backup holds, and only those (none twice)."""
        before = {str(b.path) for b in self.db.backups()}
        ran = self.run_command_line(["backup"], 12, None, changes=True)
        if ran is None:
            return
        code, doc = ran
        self.check(12, code == 0, lambda: f"`reliability backup` of a healthy database exited {code}: {doc}")
        if code != 0:
            return
        new = [b for b in self.db.backups() if str(b.path) not in before and b.verified]
        path = os.path.abspath(str((doc.get("value") or {}).get("path", "")))
        self.check(12, path in {os.path.abspath(str(b.path)) for b in new},
                   lambda: f"`reliability backup` wrote {path!r}, which the runtime does not list as a new verified "
                           f"backup ({sorted(str(b.path) for b in new)})")
        if self.writes_queued():
            return  # (acknowledged writes waiting in the queue are not in the file the command copied)
        for info in new:  # (its manager's start may have taken an anchoring backup too: the same state)
            self.remember(info)
            self.taken.append(str(info.path))

    @precondition(lambda self: has_backups(self) and not self.faults)
    @invariant()
    def p12_automatic_backup(self) -> None:
        """Every listed verified backup holds exactly the state recorded when it was taken."""
        for info in self.db.backups():
            want = self.snapshots.get(str(info.path))
            if want is None or not info.verified:
                continue
            try:
                got: Any = read_file_state(str(info.path))
            except sqlite3.Error as exc:
                got = f"unreadable: {exc}"
            self.check(12, got == want, f"backup {info.path} restores to a state other than the one recorded "
                                        f"({'differs' if not isinstance(got, str) else got})")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_backups(self) and callable(getattr(self.db, "restore", None)) and not self.faults
                  and bool(self.snapshots))
    @rule(data=st.data())
    def restore_backup(self, data: st.DataObject) -> None:
        """P12: restoring a chosen backup puts exactly its recorded state back."""
        # A second manager of the database wrote since that backup (journaled in its own slot): the restore drops
        # its writes as well, and the numbers they took must never be handed out again (judged below). (Opened
        # before the backup is chosen: its start takes an anchoring backup, whose rotation may prune the oldest.)
        peer = None
        if self.config.redo_journal and data.draw(st.sampled_from((False, True)),
                                                  label="a second manager wrote since the backup"):
            before = {str(b.path) for b in self.db.backups()}
            peer = self.open_runtime(self.config)
            for info in self.db.backups():  # (the peer's anchoring copy, if it took one: of the state modelled now)
                if str(info.path) not in before:
                    self.remember(info)
        try:
            listed = {str(b.path) for b in self.db.backups() if b.verified}
            choices = sorted(p for p in self.snapshots if p in listed)
            if not choices:
                return
            path = data.draw(st.sampled_from(choices), label="backup")
            self.ambiguous_name_refused(path)
            if peer is not None:
                for n in (13, 14):
                    self.absorb(peer.execute, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                (f"peer-{n}", "dropped"))
            if self.restore_judged(path) and peer is not None and self.db is not None:
                self.recover_after_a_restore_over_a_peer(path)
        finally:
            if peer is not None:
                self.absorb(peer.close)

    def restore_judged(self, path: str) -> bool:
        """``db.restore(path)``, judged: exactly the state recorded at that backup is back (returned: it is)."""
        mark = self.installs_seen()
        out = self.call(None, self.absorb, self.db.restore, path)
        self.check(12, out.ok, lambda: f"restoring {path} failed: {out.error!r}")
        kv, pairs = self.snapshots[path]
        versions = self.version_snapshots.get(path)
        shown = path
        try:
            same = self.stored_kv() == kv and self.stored_pairs() == pairs
            if versions is not None and hasattr(self, "stored_versions"):
                same = same and self.stored_versions() in (None, versions)
        except sqlite3.Error as exc:
            same = False
            shown = f"{path} (the restored file is unreadable: {exc})"
        self.check(12, same, f"after restoring {shown} the database is not the recorded state")
        self.model_restored(path)
        if same:
            self.check_install_durable(12, f"restoring {path}", mark)
        return out.ok and same

    def recover_after_a_restore_over_a_peer(self, path: str) -> None:
        """P13 after ``restore_backup`` dropped a second manager's journaled writes: two writes acknowledged after
        the restore, then damage and ``db.recover()``, which must report ok with every acknowledged write. A restore
        that kept the backup's sequence handed the peer's numbers out again: two records of one sequence, which a
        recovery cannot tell apart (not ok, the writes after the restore lost)."""
        if self.writes_queued():
            return
        for n in (0, 1):
            if not self.upsert(n).ok:
                return  # (not acknowledged: nothing to judge)
        fault = make_fault("corrupt", self.db_path, part="header", seed=1, backup_before=True, counted_in=STATS)
        fault.inject()
        self.fault_history.append("corrupt")
        got = self.call(None, self.absorb, self.db.recover, faults=["corrupt"])
        self.last_healed = "corrupt"
        report = got.value if got.ok else None
        ok = report is not None and bool(getattr(report, "ok", False))
        self.check(13, ok, lambda: (
            f"recovery after a restore of {path} (which dropped a second manager's journaled writes) and two writes "
            f"acknowledged since was not ok: {getattr(report, 'problems', got.error)!r}"), faults=["corrupt"])
        if not ok:
            self.put_back_undamaged(fault)
            return
        stored = self.stored_kv()
        self.check(13, stored == self.model.kv, lambda: (
            f"recovery after a restore of {path} over a second manager's writes reported ok ({report}), yet kv "
            f"differs: {sorted(set(self.model.kv.items()) ^ set(stored.items()))[:4]}"), faults=["corrupt"])

    def ambiguous_name_refused(self, path: str) -> None:
        """P12 before :meth:`restore_backup` restores ``path``: ``db.restore(name)`` with the backup's bare name, run
        where the working directory holds another file of that name (a stray copy), names two different files; it is
        refused naming both, the database untouched (README: a relative name two different files answer to is
        refused, as ``reliability restore NAME`` does): which backup a restore puts back never depends on where the
        application happens to run."""
        name = os.path.basename(path)
        here = os.path.join(self.dir, "scratch", f"cwd-{len(self.fault_history)}")
        os.makedirs(here, exist_ok=True)
        stray = os.path.join(here, name)
        with open(stray, "wb") as fh:
            fh.write(b"not this backup\n")
        from reliability import DatabaseError

        def state() -> Any:
            try:
                return self.stored_kv(), self.stored_pairs()
            except sqlite3.Error as exc:
                return f"unreadable: {exc}"

        before, cwd = state(), os.getcwd()
        os.chdir(here)
        try:
            said = f"restored {self.absorb(self.db.restore, name).path}"
            refused = False
        except DatabaseError as err:
            said, refused = f"refused: {err.detail}", True
        finally:
            os.chdir(cwd)
            os.remove(stray)
        after = state()
        if not refused:  # (the model follows what was put in place)
            self.model.kv, self.model.pairs = self.stored_kv(), self.stored_pairs()
        both = [os.path.join(os.path.basename(os.path.dirname(p)), name) for p in (stray, path)]
        self.check(12, refused and all(b in said for b in both) and after == before, lambda: (
            f"db.restore({name!r}) run in {here}, which holds another file of that name, while the backup folder "
            f"holds the backup: {said}; two different files answer to the name, so it must be refused naming both "
            f"({both}), the database untouched ({'unchanged' if after == before else 'changed'})"))

    def model_restored(self, path: str) -> None:
        """The model after the runtime restored the backup at ``path`` (whose state :meth:`remember` recorded)."""
        kv, pairs = self.snapshots[path]
        versions = self.version_snapshots.get(path)
        self.model.kv, self.model.pairs = dict(kv), {k: list(v) for k, v in pairs.items()}
        if versions is not None:
            self.model.applied_versions = list(versions)  # the schema went back with the data
        # The log goes back with the file, except entries waiting in the fallback file (outside it). When
        # the restore took the anchored head away, the runtime re-anchors the chain with one entry
        # ("audit.reanchored", naming the restore) appended to the restored log: nothing else may appear.
        waiting = set(self.fallback_ids()) if hasattr(self, "fallback_ids") else set()
        kept = list(self.audit_snapshots[path])
        added = [e for e in self.stored_audit_entries() if e[0] not in kept]
        rewound = any(i not in kept and i not in waiting for i in self.model.audit_ids)
        if hasattr(self, "fallback_ids"):
            self.check(15, [a for _i, a in added] == (["audit.reanchored"] if rewound else []), lambda: (
                f"after restoring {path} the audit log {'was rewound' if rewound else 'lost nothing'}, and the "
                f"runtime appended {[a for _i, a in added]} (one audit.reanchored entry naming the restore "
                f"is expected exactly when anchored entries went back with the file)"))
        self.model.audit_ids = kept + [i for i, _a in added] + [
            i for i in self.model.audit_ids if i in waiting and i not in kept]

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and not self.faults)
    @rule(part=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**16),
          savepoint_first=st.one_of(st.none(), st.tuples(st.integers(0, 12), st.integers(13, 20))))
    def corrupt_and_recover(self, part: str, seed: int, savepoint_first: tuple[int, int] | None = None) -> None:
        """P13: after real damage to the file, recovery brings back every acknowledged write.

        With the redo journal on, recovery must succeed; with it off it may report failure, but it
        never reports ok while an acknowledged write is missing. ``savepoint_first``: just before the damage, a
        committed transaction whose inner savepoint rolled back (the redo journal replays the transaction, never
        the savepoint's write); drawn here because the sequence "savepoint rolled back, then damage" was too rare
        among the swarm's rules to be met in a run.
        """
        if savepoint_first is not None:
            self.nested_transaction(*savepoint_first, inner_fails=True, outer_fails=False)
        kwargs: dict[str, Any] = {"seed": seed}
        if part == "btree_root":
            kwargs.update(part="btree", table="kv")
        else:
            kwargs.update(part=part)
        # A copy of the undamaged files is kept: when recovery honestly reports that it could not
        # bring everything back (no redo journal, no backup), the machine puts it back itself.
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS, **kwargs)
        fault.inject()
        self.fault_history.append("corrupt")
        mark = self.installs_seen()
        out = self.call(None, self.absorb, self.db.recover, faults=["corrupt"])
        report_ok = out.ok and bool(getattr(out.value, "ok", False))
        if self.config.redo_journal:
            self.check(13, report_ok,
                       lambda: f"recovery after {part} damage failed: {out.value if out.ok else out.error!r}",
                       faults=["corrupt"])
        else:
            # Without the journal a failure is allowed, a silent one is not: it names its problems.
            problems = getattr(out.value, "problems", None) if out.ok else [str(out.error)]
            self.check(13, report_ok or bool(problems),
                       lambda: f"recovery after {part} damage failed without saying why: {out.value!r}",
                       faults=["corrupt"])
        if not report_ok:
            # Without a redo journal, writes after the last backup cannot come back and recovery
            # must say so (checked below when it claims ok). Restore the undamaged copy and go on.
            self.put_back_undamaged(fault)
            self.last_healed = "corrupt"
            return
        self.last_healed = "corrupt"  # what follows judges the recovered file: "after:corrupt"
        try:
            stored_kv, stored_pairs = self.stored_kv(), self.stored_pairs()
        except sqlite3.Error as exc:
            self.check(13, False, f"after recovery from {part} damage the file is unreadable: {exc}")
            return
        self.check(13, stored_kv == self.model.kv and stored_pairs == self.model.pairs,
                   lambda: f"after recovery from {part} damage acknowledged writes are missing or changed: kv "
                           f"{sorted(set(self.model.kv.items()) ^ set(stored_kv.items()))[:4]}, groups "
                           f"{sorted(set(self.model.pairs) ^ set(stored_pairs))[:4]}")
        self.check_install_durable(13, f"recovery from {part} damage", mark)
        after = self.call("fetch_one", self.db.fetch_one, "SELECT count(*) FROM kv")
        self.check(13, after.ok, lambda: f"the runtime is unusable after recovery: {after.error!r}")


class BackupMachine(BackupMixin):
    """Backups and recovery interleaved with the workload and its faults."""

    #: nested transactions and transfers always on: recovery replays what they committed from the redo journal,
    #: and a savepoint rolled back inside a committed transaction must not come back with the replay
    core_groups = frozenset(("backup", "recover", "nested", "transfer"))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_backups(self) and not self.faults)
    @rule(data=st.data(), how=st.sampled_from(("truncate", "extend")))
    def damage_a_backup(self, data: st.DataObject, how: str) -> None:
        """P12: a verified backup damaged on disk (cut short, or grown by stray bytes), then a backup.

        ``db.backups()`` documents a file whose size no longer matches its manifest as not verified: the damaged
        one must be listed so (else restore or recovery could pick it). The backup that follows judges rotation
        (:meth:`check_rotation`): ``backup_keep`` *verified* backups stay, and the damaged file is left for a
        human, never counted among them nor deleted. Drawn as one rule because "a kept backup damaged, then
        a backup" is the sequence rotation must get right, and the backup right after also keeps a fresh
        verified backup newest, so a later recovery never has to start from an older one."""
        listed = [str(b.path) for b in self.db.backups() if b.verified]
        if not listed:
            return
        path = data.draw(st.sampled_from(listed), label="damaged backup")
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            if how == "truncate":
                fh.truncate(size // 2)
            else:
                fh.seek(0, os.SEEK_END)
                fh.write(b"\0" * 512)
            fh.flush()
            os.fsync(fh.fileno())  # (durable like the runtime's files: a power loss must not undo the damage)
        still = [str(b.path) for b in self.db.backups() if b.verified]
        self.check(12, path not in still, f"backup {path} {how}d on disk is still listed as verified")
        self.take_backup(False)

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and not self.faults and not self.writes_queued()
                  and bool(getattr(self.config, "auto_recover", False))
                  and str(self.config.journal_mode).upper() != "WAL")
    @rule(seed=st.integers(0, 2**16), keys=st.lists(st.integers(0, 12), max_size=3),
          form=st.sampled_from(("context", "run_in_transaction")))
    def damage_met_in_transaction(self, seed: int, keys: list[int], form: str) -> None:
        """P13 with ``auto_recover`` (on by default: "recover automatically when corruption is detected"): a
        backup, maybe writes (replayed from the redo journal), the ``kv`` table's root page damaged, then a read
        of it inside ``db.transaction()`` or ``db.run_in_transaction``. Recovery cannot run inside a transaction
        (``recover()`` refuses there), so the runtime must recover once the transaction has ended: the next read
        returns every acknowledged row, at once (no cooldown to wait out, no manual ``recover()``).

        Without the redo journal no write follows the backup: the backup alone then holds every acknowledged
        row, and the same is owed. Rollback-journal modes only: there the damage bumps the file change counter and
        the runtime's open connection drops its page cache, so its read meets the damage; in WAL mode an open
        connection may keep serving the undamaged pages from its cache (see the corrupt fault), and the read
        would not be "damage met" at all."""
        self.take_backup(False)
        if self.config.redo_journal:
            for n in keys:
                self.upsert(n)
        # The root page: every access to kv reads it, so the read below must meet the damage.
        fault = make_fault("corrupt", self.db_path, part="btree", table="kv", page="root", seed=seed,
                           backup_before=True, counted_in=STATS)
        fault.inject()
        self.fault_history.append("corrupt")
        recoveries = (self.db.health().extra or {}).get("recoveries")

        def read() -> Any:  # (booked like any call: one error, however many callers it passes through)
            inner = self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv", faults=["corrupt"])
            if not inner.ok:
                raise inner.error
            return inner.value

        def in_context() -> Any:
            with self.db.transaction():
                return read()

        def in_run() -> Any:
            return self.db.run_in_transaction(read)

        # The runtime counts the transaction and the read in it (a recovery it runs once the transaction has ended
        # counts no operation of its own): call() books both, and the one error once. (Damage is not rerun.)
        out = self.call("transaction", in_context if form == "context" else in_run, faults=["corrupt"])
        self.last_healed = "corrupt"  # what follows judges what the runtime made of the damage: "after:corrupt"
        after = (self.db.health().extra or {}).get("recoveries")
        first = self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv")
        got = dict(first.value) if first.ok else None
        self.check(13, got == self.model.kv, lambda: (
            f"damage met inside {form} ({'ok' if out.ok else out.error.kind}) with auto_recover on and a backup: "
            f"the next read {'returned other rows' if first.ok else f'failed ({first.error.kind})'} "
            f"(recoveries {recoveries} -> {after}); the runtime must recover once the transaction has ended"))
        if got != self.model.kv:
            self.put_back_undamaged(fault)  # (P13 not enforced here: go on from the acknowledged state)

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and not self.faults)
    @rule(how=st.sampled_from(("manifest_lost", "marked_unverified", "extended")),
          part=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**16),
          keys=st.lists(st.integers(0, 12), max_size=3))
    def recover_past_an_unverified_backup(self, how: str, part: str, seed: int, keys: list[int]) -> None:
        """P13: recovery restores only a backup that is verified (module doc: "pick the newest backup that was
        verified when made *and* still passes integrity_check"), never one that is not, even when it is the
        newest and its pages read back whole. A verified backup, maybe writes, a second backup, which then stops
        being verified: ``manifest_lost`` (its manifest deleted, as a copy made by hand without it),
        ``marked_unverified`` (its manifest says its verification failed), ``extended`` (stray bytes after it,
        so its size no longer matches its manifest); ``db.backups()`` must list it unverified. Then real damage
        to the database and ``db.recover()``: the backup its report names is one listed verified just before
        (or none), and when it reports ok every acknowledged write is there. Drawn as one rule: no other rule
        leaves an unverified backup newest when recovery runs (``damage_a_backup`` takes a fresh one at once)."""
        self.take_backup(False)
        for n in keys:
            self.upsert(n)
        out = self.call(None, self.absorb, self.db.backup)
        self.check(12, out.ok, lambda: f"a backup failed on a healthy database: {out.error!r}")
        if not out.ok:
            return
        path = str(out.value.path)
        manifest = path + ".json"  # (documented: "manifest (<backup>.json), written first")
        if how == "manifest_lost":
            os.remove(manifest)
        elif how == "marked_unverified":
            with open(manifest, encoding="utf-8") as fh:
                doc = json.load(fh)
            doc["verified"] = False
            with open(manifest, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
        else:
            with open(path, "ab") as fh:
                fh.write(b"\0" * 512)
        listing = list(self.db.backups())
        verified = {str(b.path) for b in listing if b.verified}
        self.check(12, path not in verified, f"backup {path} ({how}) is still listed as verified")
        # ... and listed all the same ("every backup in the directory": an operator choosing one by hand, and
        # the retention count, must see a copy whose manifest is gone, not lose sight of it).
        self.check(12, path in {str(b.path) for b in listing},
                   lambda: f"backup {path} ({how}) is not in db.backups() at all: {[str(b.path) for b in listing]}")
        kwargs: dict[str, Any] = {"seed": seed, "part": part}
        if part == "btree_root":
            kwargs.update(part="btree", table="kv")
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS, **kwargs)
        fault.inject()
        self.fault_history.append("corrupt")
        self.before_install = self.install_traces()
        got = self.call(None, self.absorb, self.db.recover, faults=["corrupt"])
        self.last_healed = "corrupt"
        report = got.value if got.ok else None
        used = getattr(report, "backup", None)
        used = None if used is None else str(used)
        self.check(13, used is None or (used != path and used in verified), lambda: (
            f"recovery after {part} damage restored {used}, which was not verified (newest backup {path}, "
            f"{how}; verified: {sorted(verified)})"), faults=["corrupt"])
        if not (report is not None and bool(getattr(report, "ok", False))):
            self.put_back_undamaged(fault)  # (an honest failure: go on from the acknowledged state)
            # A verified backup newest again (rotation may have left none besides the one made unverified): the
            # other rules' recoveries start from one, as after damage_a_backup.
            self.take_backup(False)
            return
        try:
            stored = (self.stored_kv(), self.stored_pairs())
        except sqlite3.Error as exc:
            self.check(13, False, f"after recovery from {part} damage the file is unreadable: {exc}",
                       faults=["corrupt"])
            return
        self.check(13, stored == (self.model.kv, self.model.pairs), lambda: (
            f"recovery after {part} damage, restored from {used} (a newer backup {how}), reported ok, yet "
            f"acknowledged writes are missing or changed: kv "
            f"{sorted(set(self.model.kv.items()) ^ set(stored[0].items()))[:4]}"), faults=["corrupt"])
        self.take_backup(False)

    judge_backup_fields = True

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and callable(getattr(self.db, "restore", None))
                  and not self.faults and not self.writes_queued())
    @rule(data=st.data(), keys=st.lists(st.integers(0, 12), max_size=3))
    def damage_backups_then_recover(self, data: st.DataObject, keys: list[int]) -> None:
        """:meth:`damage_backups_then_repair`, then ``db.recover()`` (a rule of its own: the three repairs are each
        drawn as often as the other rules)."""
        self.damage_backups_then_repair(data, keys, "recover")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_recovery(self) and callable(getattr(self.db, "restore", None))
                  and not self.faults and not self.writes_queued())
    @rule(data=st.data(), keys=st.lists(st.integers(0, 12), max_size=3))
    def damage_backups_then_restore(self, data: st.DataObject, keys: list[int]) -> None:
        """:meth:`damage_backups_then_repair`, then ``db.restore()`` (the newest verified backup)."""
        self.damage_backups_then_repair(data, keys, "restore_newest")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_recovery(self) and callable(getattr(self.db, "restore", None))
                  and not self.faults and not self.writes_queued())
    @rule(data=st.data(), keys=st.lists(st.integers(0, 12), max_size=3))
    def damage_backups_then_restore_one(self, data: st.DataObject, keys: list[int]) -> None:
        """:meth:`damage_backups_then_repair`, then ``db.restore(name)`` of a chosen backup."""
        self.damage_backups_then_repair(data, keys, "restore_named")

    def damage_backups_then_repair(self, data: st.DataObject, keys: list[int], then: str) -> None:
        """P12/P13 with backups damaged on disk, each way a file goes bad: ``bytes`` (pages overwritten in place,
        the size unchanged, so only a check of its content tells), ``truncate`` (cut short), ``delete`` (the
        file gone, its manifest maybe left). Then a repair, judged against a model of every backup (sound or not,
        by its own ``integrity_check``):

        * ``recover`` (the database damaged too): recovery restores the newest backup that is listed verified
          *and* still passes ``integrity_check`` (or none: the journals alone), never a damaged one; every damaged
          one it passed over is marked so (listed, not verified: "never chosen as the latest again", and left
          for a human, not rotated away); the files it set aside exist; an ok report has every acknowledged
          write, and a damaged backup passed over or none to restore is never an ok report.
        * ``restore_newest`` (``db.restore()``): the newest verified backup; a damaged one is refused (an error,
          the database as it was) and marked unverified, and the next call takes the next; with none left, an
          error naming it.
        * ``restore_named`` (``db.restore(name)``, by file name or path): a sound one is restored, a damaged one
          refused and marked, a deleted one refused; the database untouched by a refusal.

        Every listing afterwards: deleted ones gone, cut ones and refused ones unverified, the others as before."""
        self.take_backup(False)
        for n in keys:
            self.upsert(n)
        if self.writes_queued():
            return
        self.take_backup(False)
        listing = list(self.db.backups())
        damaged: dict[str, str] = {}  # path -> how
        undo: list[Any] = []
        try:
            for info in listing:
                if not info.verified:
                    continue
                path = str(info.path)
                how = data.draw(st.sampled_from(("keep", "bytes", "truncate", "delete")), label=f"damage {path}")
                if how == "keep":
                    continue
                seed = data.draw(st.integers(0, 2**16), label="seed")
                if how == "delete":
                    os.remove(path)
                    if data.draw(st.booleans(), label="manifest deleted too"):
                        os.remove(path + ".json")
                elif how == "truncate":
                    make_fault("corrupt", path, part="truncate", checkpoint=False, fraction=data.draw(
                        st.sampled_from((0.25, 0.5, 0.75)), label="kept"), seed=seed).inject()
                else:
                    part = data.draw(st.sampled_from(("btree", "header", "page_size")), label="part")
                    fault = make_fault("corrupt", path, part=part, table="kv", seed=seed, backup_before=True,
                                       checkpoint=False)
                    fault.inject()
                    undo.append(fault)
                    if sound_file(path):  # the damage left it whole: nothing for the runtime to find
                        fault.heal()
                        undo.remove(fault)
                        continue
                damaged[path] = how
            self.judge_damaged_backups(listing, damaged, data, then)
        finally:
            for fault in undo:  # (a backup never examined is whole again: the other rules restore from it)
                fault.heal()
            for path in damaged:
                self.snapshots.pop(path, None)
            self.taken = [p for p in self.taken if p not in damaged]
        if self.db is not None and not self.faults:
            self.take_backup(False)  # a sound verified backup newest again, as after damage_a_backup

    def judge_damaged_backups(self, listing: list[Any], damaged: dict[str, str], data: st.DataObject,
                              then: str) -> None:
        """The checks of :meth:`damage_backups_then_repair` once the backups in ``damaged`` were damaged."""
        verified = [str(b.path) for b in listing if b.verified]
        now = {str(b.path): b for b in self.db.backups()}
        cut = [p for p, how in damaged.items() if how == "truncate" and now.get(p) is not None and now[p].verified]
        gone = [p for p, how in damaged.items() if how == "delete" and p in now]
        self.check(12, not cut and not gone, lambda: f"after damage on disk db.backups() still lists as verified "
                                                     f"the cut backup(s) {cut}, and lists the deleted {gone}")
        # What the runtime may use: listed verified now (a same-size damage is not seen by the listing).
        candidates = [p for p in verified if damaged.get(p) in (None, "bytes")]
        bad = [p for p in candidates if damaged.get(p) == "bytes"]
        marked: list[str] = []  # the damaged backups the runtime must have examined and marked
        if then == "recover":
            sound = next((p for p in candidates if p not in damaged), None)
            marked = [p for p in bad if sound is None or candidates.index(p) < candidates.index(sound)]
            self.recover_past_damaged(sound, damaged, data)
        elif then == "restore_newest":
            for path in candidates:
                before = self.state_now()
                out = self.restore_call((), "corrupt" if path in bad else "ok")
                what = f"restored {out.value.path}" if out.ok else f"refused: {out.error!r}"
                if path in bad:
                    marked.append(path)
                    self.check(12, not out.ok and self.state_now() == before,
                               f"db.restore() with the newest verified backup {path} damaged on disk ({what}): it "
                               f"must refuse it and leave the database as it was", faults=["corrupt"])
                    if out.ok:
                        return
                    continue
                self.check(12, out.ok and str(out.value.path) == path,
                           f"db.restore() after the newer backup(s) {marked} were refused as damaged ({what}): "
                           f"expected the next newest verified one, {path}", faults=["corrupt"] if marked else None)
                if out.ok:
                    self.judge_restored(str(out.value.path))
                return
            before = self.state_now()
            out = self.restore_call((), "cantopen")
            self.check(12, not out.ok and str(out.error.kind) == "cantopen" and self.state_now() == before,
                       lambda: f"db.restore() with every verified backup damaged or gone (those refused before: "
                               f"{marked}): {f'restored {out.value.path}' if out.ok else f'refused: {out.error!r}'}"
                               f"; it must say there is no verified backup (cantopen) and leave the database as it "
                               f"was", faults=["corrupt"] if damaged else None)
        else:
            choices = sorted(p for p in self.snapshots if p in verified and damaged.get(p) != "truncate")
            if not choices:
                return
            path = data.draw(st.sampled_from(choices), label="restore")
            name = data.draw(st.sampled_from((path, os.path.basename(path))), label="named as")
            before = self.state_now()
            out = self.restore_call((name,), {"bytes": "corrupt", "delete": "cantopen"}.get(damaged.get(path), "ok"))
            if path in damaged:
                if damaged[path] == "bytes":
                    marked.append(path)
                want = "cantopen" if damaged[path] == "delete" else "corrupt"
                self.check(12, not out.ok and str(out.error.kind) == want and self.state_now() == before, lambda: (
                    f"db.restore({name!r}) of a backup {'deleted' if want == 'cantopen' else 'damaged on disk'}"
                    f" ({'restored' if out.ok else f'refused: {out.error!r}'}): it must refuse it ({want}) and leave "
                    f"the database as it was"), faults=["corrupt"])
            else:
                self.check(12, out.ok and os.path.abspath(str(out.value.path)) == os.path.abspath(path), lambda: (
                    f"db.restore({name!r}) of a sound backup: "
                    f"{'restored ' + str(out.value.path) if out.ok else repr(out.error)}"))
                if out.ok:
                    self.judge_restored(path)
        after = {str(b.path): b for b in self.db.backups()}
        left = [p for p in marked if p not in after or after[p].verified]
        self.check(13 if then == "recover" else 12, not left, lambda: (
            f"after {then} the backup(s) {left}, damaged on disk and examined by it, are "
            f"{['not listed' if p not in after else 'still listed verified' for p in left]}: a backup that failed "
            f"its check is marked unverified (never chosen again) and left for a human"), faults=["corrupt"])

    @precondition(swarm("backup"))
    @precondition(lambda self: has_recovery(self) and callable(getattr(self.db, "restore", None))
                  and not self.faults and not self.writes_queued())
    @rule(what=st.sampled_from(("backup", "restore", "recover")), n=st.integers(0, 12))
    def maintenance_inside_a_transaction(self, what: str, n: int) -> None:
        """P12/P13: ``backup()``, ``restore()`` and ``recover()`` refuse to run inside a transaction (documented:
        "cannot run inside a transaction", a ``misuse`` error: the copy would hold uncommitted changes, a file
        installed under an open transaction would lose or tear it). The refusal changes nothing: no backup is
        added or removed, and the transaction, which caught the error, commits its write."""
        from reliability import DatabaseError

        key, value = f"user-{n}", self.text()
        listed = sorted(str(b.path) for b in self.db.backups())
        refused: list[Any] = []

        def body() -> None:
            with self.db.transaction() as tx:
                tx.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
                try:
                    getattr(self.db, what)()
                    refused.append(None)
                except DatabaseError as err:
                    refused.append(err)

        try:
            self.absorb(body)
        except DatabaseError as err:
            self.check(12 if what != "recover" else 13, False,
                       f"a transaction that caught the refusal of {what}() inside it failed: {err!r}")
            return
        self.model.kv[key] = value
        err = refused[0] if refused else None
        self.check(12 if what != "recover" else 13, err is not None and str(err.kind) == "misuse", lambda: (
            f"db.{what}() inside a transaction "
            + ("ran" if err is None else f"failed as {err.kind} ({err.detail}), not as misuse")))
        after = sorted(str(b.path) for b in self.db.backups())
        self.check(12, after == listed, f"db.{what}() refused inside a transaction changed the backups: "
                                        f"{listed} -> {after}")
        got = self.state_now()
        self.check(12 if what != "recover" else 13, not isinstance(got, str) and got[0].get(key) == value,
                   lambda: f"the write of a transaction in which db.{what}() was refused is not in the database "
                           f"({got if isinstance(got, str) else got[0].get(key)!r})")

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and not self.faults and not self.writes_queued()
                  and self.powerloss is None and bool(self.config.redo_journal))
    @rule(keys=st.lists(st.integers(0, 12), min_size=2, max_size=3), auto=st.booleans())
    def older_copy_put_in_place(self, keys: list[int], auto: bool) -> None:
        """P13: the application stopped, an operator installs a copy of the newest backup over the database by
        hand (``mv``, not ``db.restore()``), and starts it again. The writes acknowledged since that backup (two or
        three) are in the redo journal only (lost_commits: "an older copy was put in its place"). The runtime never
        serves the older state as if nothing were missing: with ``auto_recover`` it recovers at start and the first
        read has every acknowledged write; without, it refuses the database (``unavailable``), saying how many
        transactions are missing (exactly the writes since the backup) and which (sequences that agree with the
        count), until ``db.recover()``, whose report is ok and brings every acknowledged write back."""
        self.take_backup(False)
        newest = self.taken[-1] if self.taken else None
        acked = sum(bool(self.upsert(n).ok) for n in keys)
        if newest is None or self.writes_queued() or not os.path.exists(newest):
            return
        config = self.config
        self.db.close()  # (the application stopped)
        fault = make_fault("disconnect", self.db_path, mode="replace_for_good", replacement=newest,
                           counted_in=STATS)
        fault.inject()
        self.fault_history.append("disconnect_replace")
        labels = ["disconnect_replace"]
        self.db = self.open_runtime(config if auto else self.make_config(auto_recover=False))
        self.after_reopen()
        self.last_healed = "disconnect_replace"
        try:
            # (The refusal has a message of its own, saying what is missing and what to run: judged below.)
            first = self.call("fetch_all", self.db.fetch_all, "SELECT k, v FROM kv", faults=labels,
                              expected_message=False)
            if auto:
                self.check(13, first.ok and dict(first.value) == self.model.kv, lambda: (
                    f"the newest backup installed over the database by hand, with {len(keys)} acknowledged write(s) "
                    f"since it in the redo journal, auto_recover on: the first read after the start "
                    + (f"returned other rows (missing or changed: "
                       f"{sorted(set(self.model.kv.items()) ^ set(dict(first.value).items()))[:4]})"
                       if first.ok else f"failed ({first.error!r})")), faults=labels)
                return
            self.check(13, not first.ok and str(first.error.kind) == "unavailable", lambda: (
                f"the newest backup installed over the database by hand, {len(keys)} acknowledged write(s) since it "
                f"in the redo journal, auto_recover off: the first read after the start "
                + ("was served from the older copy" if first.ok else f"failed as {first.error.kind}, not unavailable")
                + " (the runtime must refuse a database missing committed transactions)"), faults=labels)
            if not first.ok:
                # It says how many and which: every write acknowledged since the backup was one journaled
                # transaction, so the count is known here exactly, and the sequences listed must agree with it.
                said = f"{first.error.detail}"
                stated = loss_statements(said)
                self.check(13, bool(stated) and sum(c for c, _r in stated) == acked and not disagreements(said),
                           lambda: f"the newest backup installed over the database by hand, {acked} acknowledged "
                                   f"write(s) since it in the redo journal: the refusal says "
                                   + (f"{sum(c for c, _r in stated)} committed transaction(s) are missing"
                                      if stated else "no count of what is missing")
                                   + (f" ({'; '.join(disagreements(said))})" if disagreements(said) else "")
                                   + f": {said!r}", faults=labels)
            got = self.call(None, self.absorb, self.db.recover, faults=labels)
            report = got.value if got.ok else None
            whole = self.state_now() == (self.model.kv, self.model.pairs)
            self.check(13, report is not None and bool(report.ok) and whole,
                       lambda: f"db.recover() of a database missing the committed transactions the redo journal "
                               f"holds: {report if report is not None else got.error!r}; "
                               f"{'every acknowledged write is back' if whole else 'acknowledged writes are missing'}",
                       faults=labels)
        finally:
            if not auto:
                self.db.close()
                self.db = self.open_runtime(config)
                self.after_reopen()

    #: Drawn three times as often as one rule (a targeted weight: once per default run left the refusal's count and
    #: sequences, which need two writes since the backup and auto_recover off, unjudged in most runs).
    older_copy_put_in_place_again = older_copy_put_in_place
    older_copy_put_in_place_thrice = older_copy_put_in_place

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and not self.faults and self.powerloss is None)
    @rule(before=st.integers(0, 2), seed=st.integers(0, 2**16))
    def unjournaled_writer_after_the_backup(self, before: int, seed: int) -> None:
        """P13 with a manager that writes without a redo journal (``redo_journal=false``) beside one that
        journals, on a database of their own (a side file: the machine's own has long left sequence 0): a backup,
        ``before`` journaled writes (none: the database is still at sequence 0 and its table is made without a
        journal), then the manager without a journal opens and writes, and does not close; the file is damaged
        where its write lies and the journaled manager recovers. The write cannot be replayed from any journal, so
        the recovery either brings it back or says it is not ok (the recovery module: its report "lists anything
        that could not be brought back ... and then ``ok`` is False"); never ok with an acknowledged write
        missing (session 29 survivor ``redo.py:387``, such a writer left unnamed when it started at sequence 0),
        and never saying a journaled transaction is missing from the journals (each is there)."""
        self.unjournaled_runs = getattr(self, "unjournaled_runs", 0) + 1
        side_dir = os.path.join(self.dir, f"unjournaled-{self.unjournaled_runs}")
        os.makedirs(side_dir, exist_ok=True)
        cfg = self.make_config(redo_journal=True, auto_recover=False).replace(
            db_path=os.path.join(side_dir, "side.db"), backup_dir="", audit_fallback_path="", write_queue_path="",
            operation_log=False)
        journaled = self.open_side(cfg)
        plain = None
        try:
            journaled.backup()
            for i in range(before):
                journaled.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
                journaled.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (f"journaled-{i}", "j"))
            plain = self.open_side(cfg.replace(redo_journal=False))
            plain.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            plain.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("unjournaled", "u"))  # acknowledged
            plain.connections.close()  # (its file handles: the process did not close the manager)
            journaled.connections.close()
            make_fault("corrupt", cfg.db_path, part="btree", table="kv", page="root", seed=seed,
                       counted_in=STATS).inject()
            self.fault_history.append("corrupt")
            self.gate_holds_the_audit_fallback(journaled)
            report = journaled.recover()
            try:
                rows = dict(journaled.fetch_all("SELECT k, v FROM kv"))
            except Exception as exc:  # noqa: BLE001  (judged: a file recovery left unreadable)
                rows = {"unreadable": str(exc)}
            want = {**{f"journaled-{i}": "j" for i in range(before)}, "unjournaled": "u"}
            self.check(13, rows == want or not report.ok, lambda: (
                f"a manager without a redo journal wrote after the backup ({before} journaled write(s) between) and "
                f"did not close; the file damaged, db.recover() said ok ({report}) with the database holding "
                f"{sorted(rows.items())[:4]}, not {sorted(want.items())}"), faults=["corrupt"])
            # Every journaled write is in the journal: none is missing from it (session 29 survivor ``redo.py:519``,
            # a journal opened fresh taking sequence 1 for seen: before its first commit a recovery named it lost).
            said = "; ".join(report.problems)
            self.check(13, not loss_statements(said), lambda: (
                f"{before} journaled write(s), all in the redo journal, then a manager without a journal wrote and "
                f"the file was damaged: db.recover() says committed transactions are missing from the journals: "
                f"{said!r}"), faults=["corrupt"])
        finally:
            for side in (plain, journaled):
                if side is not None:
                    side.close()

    def gate_holds_the_audit_fallback(self, db: Any) -> None:
        """A read met the damage (``auto_recover`` off: nothing recovers yet), so the write gate refuses: an audit
        entry recorded now waits in the fallback file, and ``db.audit.reconcile()`` called meanwhile raises and
        leaves it there (the audit module: "while the write gate refuses ... reconcile leaves it in place; entries
        leave the fallback only once they are committed into a database known sound"; session 29 survivor
        ``audit.py:690``, the gate not asked by reconcile, which moved the entry into the damaged file)."""
        from reliability import DatabaseError

        with contextlib.suppress(DatabaseError):
            db.fetch_all("SELECT k, v FROM kv")
        gate = getattr(db, "write_gate", None)
        if gate is None or gate.refusal() is None:
            return
        entry = db.audit.record("ops-admin", "note.damaged", "kv")
        raised = None
        try:
            db.audit.reconcile()
        except DatabaseError as err:
            raised = err
        left = [e.entry_id for e in db.audit.pending()]
        self.check(13, entry.pending and raised is not None and entry.entry_id in left, lambda: (
            f"the write gate refuses (the database was seen damaged): an audit entry recorded then "
            f"{'waits' if entry.pending else 'did not wait'} in the fallback file, and db.audit.reconcile() "
            f"{f'raised {raised.kind}' if raised is not None else 'returned'} leaving "
            f"{'it' if entry.entry_id in left else 'it not'} there (it must wait for a database known sound)"),
                   faults=["corrupt"])

    def open_side(self, cfg: Any) -> Any:
        """A runtime on a side file, its retry sleeps on the fake clock (no fault there: they do not wait)."""
        from .base import default_runtime_factory

        db = (type(self).runtime_factory or default_runtime_factory())(cfg)
        policy = getattr(db, "policy", None)
        if policy is not None:
            policy.sleep, policy.clock = self.time.sleep, self.time.clock
        return db

    @precondition(swarm("recover"))
    @precondition(lambda self: has_recovery(self) and not self.faults and not self.writes_queued()
                  and self.powerloss is None and bool(self.config.redo_journal))
    @rule(n=st.integers(0, 12), then=st.integers(0, 12), seed=st.integers(0, 2**16))
    def failed_write_stays_failed(self, n: int, then: int, seed: int) -> None:
        """P13: a write the application was told failed never comes back at a recovery. Here it fails after its
        statement ran, at its commit: the runtime's sequence table (the redo journal's global sequence, in the
        database) is damaged on disk, so the write gets no sequence and is rolled back (CORRUPT). ``db.recover()``
        repairs the file; a later write is acknowledged; a second ``db.recover()`` replays the journal again. The
        database after each holds exactly the acknowledged writes: the failed one neither then nor later (a
        statement captured for the journal by the failed write and left to ride with the next record would be
        replayed by the second recovery)."""
        from reliability.redo import WRITERS_TABLE

        self.take_backup(False)
        if self.writes_queued() or not self.taken:
            return
        fault = make_fault("corrupt", self.db_path, part="btree", table=WRITERS_TABLE, page="root", seed=seed,
                           backup_before=True, counted_in=STATS)
        fault.inject()
        self.fault_history.append("corrupt")
        labels = ["corrupt"]
        key, value = f"user-{n}", self.text()
        before = self.model.kv.get(key)
        out = self.call("execute", self.db.execute, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value),
                        faults=labels)
        if out.ok:
            self.model.kv[key] = value  # (served from pages read before the damage: an acknowledged write)
        self.last_healed = "corrupt"
        told = "acknowledged" if out.ok else f"told it failed ({out.error.kind})"
        got = self.call(None, self.absorb, self.db.recover, faults=labels)
        self.check(13, got.ok and bool(got.value.ok) and self.state_now() == (self.model.kv, self.model.pairs),
                   lambda: f"db.recover() after the redo sequence table was damaged and a write of {key!r} was "
                           f"{told}: {got.value if got.ok else got.error!r}; the database holds "
                           f"{self.stored_kv().get(key)!r} for it, expected {self.model.kv.get(key)!r}",
                   faults=labels)
        if not (got.ok and got.value.ok):
            self.put_back_undamaged(fault)
            return
        later = self.upsert(then)
        again = self.call(None, self.absorb, self.db.recover)
        state = self.state_now()
        held = "unreadable" if isinstance(state, str) else repr(state[0].get(key))
        self.check(13, again.ok and bool(again.value.ok) and state == (self.model.kv, self.model.pairs), lambda: (
            f"a write of {key!r} was {told} (its commit met the damaged redo sequence table; the key held {before!r} "
            f"before), the file was recovered, then a write of user-{then} was "
            f"{'acknowledged' if later.ok else 'refused'}; after a second db.recover() "
            f"({again.value.ok if again.ok else again.error.kind}) the database holds {held} for {key!r} where "
            f"{self.model.kv.get(key)!r} is owed: a write the application was told failed must never come back at "
            "recovery"))

    def restore_call(self, args: tuple[Any, ...], expect: str) -> Any:
        """``db.restore(*args)``; ``expect``: ``ok``, ``corrupt`` (a damaged backup: the call is judged as one met
        under the corrupt fault) or ``cantopen`` (none there: the caller judges the refusal's kind itself)."""
        from reliability import DatabaseError

        from .workload import CallOutcome

        self.before_install = self.install_traces()
        if expect != "cantopen":
            return self.call(None, self.absorb, self.db.restore, *args,
                             faults=["corrupt"] if expect == "corrupt" else None)
        try:
            return CallOutcome(True, self.absorb(self.db.restore, *args))
        except DatabaseError as err:
            return CallOutcome(False, error=err)

    def install_traces(self) -> tuple[set[str], set[str]]:
        """The backups listed now and the files set aside beside the database (``<db>.replaced-*``,
        ``<db>.quarantine-*``): what a restore or a recovery is judged against."""
        folder = os.path.dirname(self.db_path)
        base = os.path.basename(self.db_path)
        aside = {os.path.join(folder, n) for n in os.listdir(folder)
                 if n.startswith((base + ".replaced-", base + ".quarantine-"))}
        return {str(b.path) for b in self.db.backups()}, aside

    def check_installed(self, what: str, kind: str, state: Any) -> None:
        """After ``what`` (a restore or a recovery) put a file in place: the files it replaced were set aside
        (``<db>.<kind>-<time>``, never deleted: every earlier one is still there and one more is), and with the
        redo journal on the journal was re-anchored on a fresh verified backup holding ``state`` (the module
        docs: "reopen, then take a fresh backup so the journal starts over from it")."""
        listed_before, aside_before = self.before_install
        listed_now, aside_now = self.install_traces()
        base = os.path.basename(self.db_path) + f".{kind}-"
        new_aside = [p for p in aside_now - aside_before if os.path.basename(p).startswith(base)]
        self.check(13 if kind == "quarantine" else 12, aside_before <= aside_now and bool(new_aside), lambda: (
            f"after {what} the replaced database is not set aside as {base}<time> (new there: "
            f"{sorted(aside_now - aside_before)}; gone: {sorted(aside_before - aside_now)})"))
        if not self.config.redo_journal:
            return
        fresh = [b for b in self.db.backups() if b.verified and str(b.path) not in listed_before]
        got: Any = None
        if fresh:
            try:
                got = read_file_state(str(fresh[0].path))
            except sqlite3.Error as exc:
                got = f"unreadable: {exc}"
        self.check(13 if kind == "quarantine" else 12, got == state, lambda: (
            f"after {what} with the redo journal on, "
            + (f"the fresh backup {fresh[0].path} re-anchoring the journal holds another state "
               f"({got if isinstance(got, str) else 'differs'})" if fresh else
               "no fresh verified backup re-anchors the journal")))

    def state_now(self) -> Any:
        """The rows in the database file now (an error's text when unreadable)."""
        try:
            return self.stored_kv(), self.stored_pairs()
        except sqlite3.Error as exc:
            return f"unreadable: {exc}"

    def judge_restored(self, path: str) -> None:
        """After ``path`` was restored: the database holds its recorded state, and the model follows it."""
        if path not in self.snapshots:
            self.model.kv, self.model.pairs = self.stored_kv(), self.stored_pairs()  # (not taken by this machine)
            return
        kv, pairs = self.snapshots[path]
        got = self.state_now()
        self.check(12, got == (kv, pairs), f"after restoring {path} the database is not the recorded state "
                                           f"({got if isinstance(got, str) else 'differs'})")
        self.check_installed(f"restoring {path}", "replaced", (kv, pairs))
        self.model_restored(path)

    def recover_past_damaged(self, sound: str | None, damaged: dict[str, str], data: st.DataObject) -> None:
        """``recover`` of :meth:`damage_backups_then_repair`: the database damaged, ``db.recover()``."""
        part = data.draw(st.sampled_from(CORRUPTIONS), label="database damage")
        kwargs: dict[str, Any] = {"part": "btree", "table": "kv"} if part == "btree_root" else {"part": part}
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS,
                           seed=data.draw(st.integers(0, 2**16), label="seed"), **kwargs)
        fault.inject()
        self.fault_history.append("corrupt")
        self.before_install = self.install_traces()
        got = self.call(None, self.absorb, self.db.recover, faults=["corrupt"])
        self.last_healed = "corrupt"
        report = got.value if got.ok else None
        used = getattr(report, "backup", None)
        used = None if used is None else str(used)
        ok = report is not None and bool(getattr(report, "ok", False))
        self.check(13, used is None or used == sound, lambda: (
            f"recovery restored {used}; the newest backup listed verified that still passes integrity_check is "
            f"{sound} (damaged on disk: {damaged})"), faults=["corrupt"])
        quarantined = [str(q) for q in getattr(report, "quarantined", None) or []]
        missing = [q for q in quarantined if not os.path.exists(q)]
        self.check(13, not missing, f"recovery says it set the damaged files aside as {missing}: not there",
                   faults=["corrupt"])
        if ok:
            got_state = self.state_now()
            self.check(13, got_state == (self.model.kv, self.model.pairs), lambda: (
                f"recovery (from {used}, backups damaged on disk: {damaged}) reported ok, yet acknowledged writes "
                f"are missing or changed ({got_state if isinstance(got_state, str) else 'differs'})"),
                faults=["corrupt"])
            self.check_installed(f"recovery from {used}", "quarantine", (self.model.kv, self.model.pairs))
        else:
            self.check(13, report is None or bool(getattr(report, "problems", None)),
                       f"recovery failed without saying why: {report!r}", faults=["corrupt"])
            self.put_back_undamaged(fault)  # (an honest failure: go on from the acknowledged state)
