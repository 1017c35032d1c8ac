"""Rules for corners of the runtime's public surface no other rule reaches (issue #14 item 3).

Each rule is a short sequence a deployment meets and the other machines never draw together:

* a ``with db.transaction()`` block right after the connection was closed under the runtime (P1: it
  reopens and begins, whatever ``retry_attempts`` says, because nothing had begun);
* a transaction that fails — the application gives up, the file is moved away before COMMIT, or the
  body swallows a disk-full error after SQLite rolled back — then a committed write, then damage and
  recovery (P6: the failed one is not in the file; P13: recovery replays the committed write and
  nothing of the failed one, so the redo journal must have dropped it);
* a backup taken while the database's pages are damaged (P12: never marked verified) and a backup
  truncated after it was taken (P12: no longer listed as verified, never restored);
* a restart with ``auto_migrate`` and a pending migration (P4: applied before the first call);
* ``reliability recover`` run by an operator on the stopped application's damaged file (P13: exit 0 only with
  every acknowledged write back);
* ``reliability backups`` (P12: every backup file, its verified state, newest first, nothing written) and
  ``reliability restore`` on the stopped application (P12: exactly the backup's rows, the previous file kept aside;
  a damaged backup refused, the file untouched).
"""

from __future__ import annotations

import enum
import glob
import os
import sqlite3
from collections.abc import Iterable
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ..faults import make_fault
from ..stats import STATS
from .backup import CORRUPTIONS, BackupMixin, has_backups, has_recovery
from .base import KV_INDEX, swarm
from .workload import AppError

#: A writer of the application's database (``argv``: its path, the SQLite module, how many rows) that inserts into
#: ``kv`` in one transaction with a one-page cache (its pages spill into the file) and is killed before committing.
HOT_JOURNAL_WRITER = """import importlib, sys
from pytest_dbfault.faults.crash import signal_point
sqlite = importlib.import_module(sys.argv[2])
c = sqlite.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA cache_size = 1"); c.execute("BEGIN IMMEDIATE")
for i in range(int(sys.argv[3])):
    c.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (f"hot-journal-{i}", "x" * 500))
signal_point("mid_transaction")
"""
#: How a transaction fails in :meth:`SurfaceMixin.failed_transaction_then_damage`.
FAILURES = ("app_error", "moved_before_commit", "swallowed_disk_full")
#: The commands that need the database file, as :meth:`SurfaceMachine.command_line_on_a_missing_file` runs them.
MISSING_FILE_COMMANDS = (("health",), ("check",), ("check", "--full"), ("schema",), ("backup",))


class Status(enum.IntEnum):
    """An application's enum: an ``int`` subclass the application stores by name through a registered adapter."""

    ACTIVE = 1
    SUSPENDED = 2


class Email(str):
    """A ``str`` subclass the application stores normalized (lower-case) through a registered adapter."""


class Sku:
    """A value object sqlite3 binds through its ``__conform__`` (no adapter registered)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __conform__(self, protocol: Any) -> str:
        return f"SKU-{self.code:05d}"


#: Flag names and values :meth:`SurfaceMachine.flags_from_the_command_line` sets (JSON values of each type, unicode).
FLAG_NAMES = ("beta", "checkout.v2", "größe", "ops:maintenance")
FLAG_VALUES = (True, False, 0, 7, -3, "on", "off", "日本語 ✓", 2.5, None)
#: A flag setting every entry point must refuse as bad input (README: "bad flag name", exit 2; ``reliability.names``:
#: text, not empty, at most 200 characters, no NUL, valid Unicode; a value: a finite JSON scalar of at most 10,000
#: characters as JSON, valid Unicode): ``(name, value, --type, VALUE as typed)``; name None: a flag that is set.
BAD_FLAGS: tuple[tuple[str | None, Any, str, str], ...] = (
    ("", "on", "str", "on"),
    ("   ", True, "json", "true"),
    ("x" * 201, 1, "json", "1"),
    ("a\x00b", "on", "str", "on"),
    ("bad\udcffname", "on", "str", "on"),
    (None, [1, 2], "json", "[1, 2]"),
    (None, {"a": 1}, "json", '{"a": 1}'),
    (None, float("nan"), "json", "NaN"),
    (None, float("inf"), "json", "Infinity"),
    (None, "x" * 10_001, "str", "x" * 10_001),
    (None, "bad\udcffvalue", "str", "bad\udcffvalue"),
)

#: Parameter values sqlite3 binds through an adapter or ``__conform__``, and the text SQLite stores for each.
ADAPTED: dict[str, tuple[Any, str]] = {
    "enum": (Status.SUSPENDED, "suspended"),
    "str_subclass": (Email("Ada.Lovelace@Example.ORG"), "ada.lovelace@example.org"),
    "conform": (Sku(42), "SKU-00042"),
}


def read_rows(cur: Any, read: str, size: int, expected: int) -> tuple[list[Any], list[Any]]:
    """Read a cursor's rows the way ``read`` says (``fetchall``, ``iterate``, ``fetchone``, ``fetchmany`` of
    ``size``), then every way of reading once more: (the rows read, what the second reads still found: it must be
    nothing). The one-by-one reads are bounded by ``expected`` + 2: a cursor that never runs dry is judged, not
    waited for."""
    got: list[Any] = []
    if read == "fetchall":
        got = list(cur.fetchall())
    elif read == "iterate":
        got = list(cur)
    else:
        for _ in range(expected + 2):
            batch = [cur.fetchone()] if read == "fetchone" else cur.fetchmany(size)
            batch = [r for r in batch if r is not None]
            if not batch:
                break
            got.extend(batch)
    rest = [r for r in (cur.fetchone(),) if r is not None] + list(cur.fetchmany(2)) + list(cur) + cur.fetchall()
    return got, rest


def register_adapters(module: Any) -> None:
    """The adapters of :data:`ADAPTED` in ``module`` (sqlite3 or the runtime's build); idempotent."""
    module.register_adapter(Status, lambda s: s.name.lower())
    module.register_adapter(Email, lambda e: str.lower(e))


class SurfaceMixin(BackupMixin):
    """Rare but ordinary sequences on the runtime's public surface (see the module docstring)."""

    migrations_at_start = 0

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(n=st.integers(0, 12))
    def transaction_on_closed_handle(self, n: int) -> None:
        """P1: the connection is closed under the runtime; the next ``with db.transaction()`` still commits."""
        if not self.inject("disconnect_close", 0):
            return
        key, value = f"user-{n}", self.text()

        def run() -> None:
            with self.db.transaction():
                self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

        out = self.call("transaction", run, faults=["disconnect_close"])
        self.model.ledger.ok["execute"] += int(out.ok)
        self.model.ledger.oplog[("execute", "ok")] += int(out.ok)
        self.heal("disconnect_close")
        self.check(1, out.ok, lambda: f"a transaction begun on a handle closed since the last call failed: "
                                      f"{out.error!r} (nothing had begun: the runtime reopens)",
                   faults=["disconnect_close"])
        if out.ok:
            self.model.kv[key] = value

    @precondition(lambda self: has_recovery(self) and not self.faults and not self.writes_queued())
    @rule(failures=st.permutations(FAILURES), n=st.integers(0, 12), later=st.integers(0, 12),
          part=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**16))
    def failed_transaction_then_damage(self, failures: list[str], n: int, later: int, part: str, seed: int) -> None:
        """P6 then P13: failed transactions (each way, in a drawn order) leave nothing, not in the file and not
        in the redo journal: a committed write and damage later, recovery replays only what committed."""
        for failure in failures:
            self.failed_transaction(failure, n)
        self.commit_then_damage(later, part, seed)

    def failed_transaction(self, failure: str, n: int) -> None:
        """One ``with db.transaction()`` that fails by ``failure``; P6 on the file right after."""
        from reliability import DatabaseError

        key, value = f"user-{n}", self.text()
        later = f"later-{n}"  # (written after a swallowed error: see swallowed_disk_full)
        struck = {"moved_before_commit": "disconnect_rename", "swallowed_disk_full": "disk_full"}.get(failure)

        def body() -> None:
            self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
            if failure == "app_error":
                raise AppError("the application gave up")
            if not self.inject(struck or "none", 0):
                raise AppError("the fault could not be injected")  # (nothing to judge: counted as a give-up)
            if failure == "swallowed_disk_full":
                try:
                    self.db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (f"big-{n}", "x" * 400_000))
                except DatabaseError:
                    pass  # a careless caller carries on: SQLite may have rolled the transaction back
                # ... and writes on once space is back: that write belongs to the block, never saved on its own
                self.heal("disk_full")
                self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (later, value))

        def run() -> None:
            with self.db.transaction():
                body()

        # (After a swallowed disk-full error the runtime raises kind "rolled_back": it cannot know the cause the
        # caller swallowed, so P2's "a kind the fault can cause" is not judged for that case.)
        judged = [struck] if struck and failure != "swallowed_disk_full" else []
        try:
            out = self.call("transaction", run, faults=judged)
            failed = not out.ok
        except AppError:
            failed = True
            self.model.ledger.app_aborts += 1
        self.model.ledger.ok["execute"] += 1
        self.model.ledger.oplog[("execute", "ok")] += 1
        if struck:
            self.heal(struck)
        if not failed:  # the runtime says it committed (SQLite kept the transaction): then it is in the file
            self.model.kv[key] = value
            if failure == "swallowed_disk_full":
                self.model.kv[later] = value
        stored = self.stored_kv()
        self.check(6, stored.get(key) == self.model.kv.get(key),
                   lambda: f"after a transaction that {'failed' if failed else 'committed'} ({failure}) the file "
                           f"holds {key!r} = {stored.get(key)!r}, acknowledged {self.model.kv.get(key)!r}",
                   faults=[struck] if struck else None)
        # A write after the swallowed error is the block's too: all or nothing (it once ran in autocommit mode once
        # SQLite had rolled the transaction back, saved on its own while the block said nothing was saved).
        self.check(6, stored.get(later) == self.model.kv.get(later),
                   lambda: f"after a transaction that {'failed' if failed else 'committed'} ({failure}: a write "
                           f"after the swallowed error) the file holds {later!r} = {stored.get(later)!r}, "
                           f"acknowledged {self.model.kv.get(later)!r}", faults=[struck] if struck else None)

    def commit_then_damage(self, later: int, part: str, seed: int) -> None:
        """A committed write, then damage and recovery (P13)."""
        value2 = self.text()
        out2 = self.call("execute", self.db.execute, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                         (f"user-{later}", value2))
        if out2.ok:
            self.model.kv[f"user-{later}"] = value2
        self.corrupt_and_recover(part, seed)

    @precondition(lambda self: has_backups(self) and not self.faults and not self.writes_queued())
    @rule(seed=st.integers(0, 2**16))
    def backup_of_damaged_file(self, seed: int) -> None:
        """P12 under corruption: a backup of a database whose pages are damaged is never marked verified, and a copy
        refused as damaged leaves the source judged damaged by the full check (integrity_ok False, the damage mark,
        health not healthy). The damage is the kv table's root page, or (an odd ``seed``, rows there) one key of its
        index changed in place, which passes ``quick_check`` and only the full check finds: a backup copying it would
        bring it back at a restore."""
        from reliability import DatabaseError

        damage = ({"part": "index_entry", "index": KV_INDEX} if seed % 2 and self.model.kv
                  else {"part": "btree", "table": "kv", "page": "root"})
        self.reopen()  # flush the WAL into the file so the damage hits committed pages
        before = {str(b.path) for b in self.db.backups()}
        self.db.close()
        fault = make_fault("corrupt", self.db_path, seed=seed, backup_before=True, counted_in=STATS, **damage)
        fault.inject()  # (counted by the registry)
        self.fault_history.append("corrupt")
        self.faults["corrupt"] = fault  # in force: the checks below are labelled with it
        config = self.config
        leftovers: list[str] = []
        try:
            # auto_recover off: a recovery at startup would repair the file before the backup is taken
            self.db = self.open_runtime(self.make_config(auto_recover=False))
            self.after_reopen()
            try:
                info: Any = self.absorb(self.db.backup)
            except DatabaseError as err:
                info = err
            leftovers = [str(b.path) for b in self.db.backups() if str(b.path) not in before]
            verified = [b.path for b in self.db.backups() if b.verified and str(b.path) not in before]
            self.check(12, isinstance(info, DatabaseError) or not getattr(info, "verified", False),
                       f"a backup of a database with a damaged {damage['part']} was marked verified: {info}")
            self.check(12, not verified, f"backups of the damaged database are listed as verified: {verified}")
            if isinstance(info, DatabaseError) and str(info.kind) in ("corrupt", "notadb"):
                # P12 (what db.backup() promises about a refused copy): a copy refused as damaged sends the source to
                # the full integrity check, whose verdict stands (Upkeep.backup: "a bad copy may mean a bad source,
                # and that check is the verdict"; README: index damage "passes quick_check [...] and is found only by
                # the full check"), or health calls a file sound that no backup can be taken of. auto_recover is off.
                status = str(self.db.health().status)
                marked = os.path.lexists(f"{self.db_path}.damaged")
                self.check(12, self.db.monitor.integrity_ok is False and marked and status != "healthy", lambda: (
                    f"db.backup() refused its copy of a database with a damaged {damage['part']} ({info.kind}: "
                    f"{info.detail}), and the file is not judged damaged: integrity_ok={self.db.monitor.integrity_ok}, "
                    f"damage mark {'written' if marked else 'absent'}, health {status}"))
        finally:
            self.faults.pop("corrupt", None)
            self.db.close()
            fault.heal()
            for path in leftovers:  # what the damaged file left behind is not part of the example's state
                for p in (path, path + ".json"):
                    if os.path.exists(p):
                        os.remove(p)
            self.last_healed = "corrupt"
            self.db = self.open_runtime(config)
            self.after_reopen()

    @precondition(lambda self: has_backups(self) and not self.faults and not self.writes_queued())
    @rule(data=st.data(), keep=st.integers(0, 100))
    def truncate_a_backup(self, data: st.DataObject, keep: int) -> None:
        """P12: a backup file cut short after it was taken is no longer listed as verified nor restored."""
        listed = {str(b.path): b for b in self.db.backups() if b.verified}
        if not any(p in listed for p in self.snapshots):
            self.take_backup(False)  # none of this example's yet: take one to damage
            listed = {str(b.path): b for b in self.db.backups() if b.verified}
        choices = sorted(p for p in self.snapshots if p in listed)
        if not choices:
            return
        path = data.draw(st.sampled_from(choices), label="backup")
        size = os.path.getsize(path)
        os.truncate(path, size * keep // 100 if keep < 100 else size - 1)
        self.snapshots.pop(path)  # its recorded state is gone with it, and it no longer counts as kept
        self.taken = [p for p in self.taken if p != path]
        again = {str(b.path): b for b in self.db.backups()}
        self.check(12, path not in again or not again[path].verified,
                   f"backup {path} truncated from {size} to {os.path.getsize(path)} bytes is still listed as verified")
        # An operator who finds a damaged backup takes a new one (the redo journal may be anchored to it).
        self.take_backup(False)

    @precondition(lambda self: has_recovery(self) and not self.faults and not self.writes_queued())
    @rule(part=st.sampled_from((*CORRUPTIONS, "index_entry")), seed=st.integers(0, 2**16))
    def recover_from_the_command_line(self, part: str, seed: int) -> None:
        """P13 through the operator's entry point: the application stops, its file is damaged, an operator runs
        ``reliability recover``. Exit 0 means every acknowledged write is back (the application's restart finds
        each one); a failure says so (exit 1 or an error) and names its problems, and with the redo journal on
        it may not fail at all. A damaged file is never "left alone": ``index_entry`` (an index key that no longer
        matches its row) passes quick_check, and the command used to judge with quick_check only and leave it
        (benchmarks/recovery_fuzz.py: writes through that index lost acknowledged rows later).

        No other rule reached the CLI's recover (``tests/machines/test_public_reach.py``): its own path (the
        read-only look first, a manager of its own, the exit code from the report) was judged by unit tests only.
        """
        config = self.config
        self.heal_all()
        if part == "index_entry" and not self.model.kv:
            self.put(0)  # an index with no entry has no entry to change
        self.db.close()  # an operator stops the application before repairing its file
        if seed % 3 != 0 and not self.hot_missing_judged:
            # (Two draws in three, once per example (each costs a writer process and a recovery, ~0.2 s): the operator
            # first meets a rollback-journal file that misses the application's
            # last committed write and a writer killed mid-transaction, and runs `reliability recover` for that
            # (:meth:`hot_journal_rolled_back`; nothing in WAL mode or with the redo journal off). Since session 28:
            # only the restore rule's rarer draw met it, and default runs missed s27_b_recover_refused_after_rollback.)
            self.hot_journal_rolled_back(seed, missing=True)
        self.inspection_leaves_no_sidecars(("check", "health", ("check", "--full"))[seed % 3])  # (a look first)
        kwargs: dict[str, Any] = ({"part": "btree", "table": "kv"} if part == "btree_root" else
                                  {"part": part, "index": KV_INDEX} if part == "index_entry" else {"part": part})
        fault = make_fault("corrupt", self.db_path, backup_before=True, counted_in=STATS, seed=seed, **kwargs)
        fault.inject()
        self.fault_history.append("corrupt")
        self.faults["corrupt"] = fault  # in force while the command runs: its checks are labelled with it
        try:
            ran = self.run_command_line(["recover"], 13, ["corrupt"], changes=True)
        finally:
            self.faults.pop("corrupt", None)
            self.last_healed = "corrupt"
        code, doc = ran if ran is not None else (None, {})
        value = doc.get("value") or {}
        if code == 0:
            self.check(13, value.get("recovered") is True,
                       f"`reliability recover` left a file with a damaged {part} alone: {doc.get('message')!r}",
                       faults=["corrupt"])
        else:
            self.check(13, ran is None or bool(value.get("problems") or doc.get("error")),
                       f"`reliability recover` failed (exit {code}) without saying why: {doc!r}", faults=["corrupt"])
            self.check(13, ran is None or not config.redo_journal,
                       lambda: f"`reliability recover` after {part} damage failed with the redo journal on "
                               f"(exit {code}): {doc.get('message')!r} {value.get('problems')}", faults=["corrupt"])
            # The command said it could not: put the undamaged copy back as the operator's next step would.
            self.put_back_undamaged(fault)
            return
        self.db = self.open_runtime(config)
        self.after_reopen()
        stored_kv, stored_pairs = self.stored_kv(), self.stored_pairs()
        self.check(13, stored_kv == self.model.kv and stored_pairs == self.model.pairs,
                   lambda: f"`reliability recover` exited 0 after {part} damage, but acknowledged writes are missing "
                           f"or changed: kv {sorted(set(self.model.kv.items()) ^ set(stored_kv.items()))[:4]}, "
                           f"groups {sorted(set(self.model.pairs) ^ set(stored_pairs))[:4]}")

    @precondition(lambda self: self.db is not None and not self.faults and not self.writes_queued()
                  and self.migrations_at_start < 2)
    @rule(word=st.sampled_from(["orders", "invoices", "tags"]))
    def restart_with_auto_migrate(self, word: str) -> None:
        """P4: a runtime started with ``auto_migrate`` and a pending migration applies it before the first call."""
        from reliability.schema import Migration

        self.migrations_at_start += 1
        table = f"am{self.migrations_at_start}_{word}"
        # The list grows by one each time: the earlier ones are applied, the new one is pending.
        self.auto_migrations: list[Any] = [*getattr(self, "auto_migrations", []), Migration(
            self.migrations_at_start, f"create_{table}", f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")]
        migrations = list(self.auto_migrations)
        self.db.close()
        self.inspection_leaves_no_sidecars(("check", "health", ("check", "--full"))[len(self.fault_history) % 3])
        config = self.config
        try:
            self.db = self.open_runtime(self.make_config(auto_migrate=True), migrations=migrations)
        except TypeError:  # a runtime without startup migrations: nothing to judge
            self.db = self.open_runtime(config)
            self.after_reopen()
            return
        self.after_reopen()
        with self.raw() as conn:
            present = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone() is not None
        self.check(4, present, f"started with auto_migrate and pending migration {migrations[-1].name!r}: "
                               f"table {table} is not there")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_backups(self) and not self.faults)
    @rule(data=st.data(), damage=st.booleans(), keep=st.integers(0, 99))
    def list_backups_from_the_command_line(self, data: st.DataObject, damage: bool, keep: int) -> None:
        """P12 at the operator's entry point: ``reliability backups`` ("list the backups, read-only") lists exactly
        the backup files in the backup folder, each with its size and whether it is verified (a backup this example
        took and left intact: yes; one it cut short, drawn here when ``damage``: no), newest first by the creation
        times it shows (``db.backups()``: "newest first"), and writes nothing: the database file (checked by
        ``run_command_line``) and the backup folder stay as they were. No rule ran the command before."""
        damaged: set[str] = getattr(self, "damaged_backups", set())
        self.damaged_backups = damaged
        if damage:
            intact = set(self.snapshots)
            self.truncate_a_backup(data, keep)  # (P12 on the runtime's own listing; then a fresh backup)
            damaged |= intact - set(self.snapshots)
        folder = str(self.config.backup_directory)

        def contents() -> dict[str, tuple[int, int]] | None:
            if not os.path.isdir(folder):
                return None  # (no backup yet: the first one makes the folder)
            with os.scandir(folder) as entries:
                return {e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in entries}

        before = contents()
        ran = self.run_command_line(["backups"], 12, None)
        if ran is None:
            return
        code, doc = ran
        after = contents()
        self.check(12, after == before,
                   lambda: f"`reliability backups` (read-only) changed the backup folder: "
                           f"{sorted(set((before or {}).items()) ^ set((after or {}).items()))[:4]}"
                           f"{' (made the folder)' if before is None else ''}")
        listed = doc.get("value") if isinstance(doc.get("value"), list) else []
        shown = {os.path.abspath(str(b.get("path"))): b for b in listed}
        files = {os.path.join(os.path.abspath(folder), name): size for name, (size, _) in (before or {}).items()
                 if name.startswith("backup-") and name.endswith(".sqlite")}
        sizes = {p: b.get("size") for p, b in shown.items()}
        self.check(12, code == 0 and len(shown) == len(listed) and sizes == files,
                   lambda: f"`reliability backups` exited {code} listing {sorted(shown)}; the folder holds "
                           f"{sorted(files)} (every backup file, each once, with its size)")
        intact = {os.path.abspath(p) for p in self.snapshots}
        cut = {os.path.abspath(p) for p in damaged}
        wrong = [f"{p}: verified {shown[p].get('verified')}" for p in shown
                 if (p in intact and shown[p].get("verified") is not True)
                 or (p in cut and shown[p].get("verified") is not False)]
        self.check(12, not wrong, lambda: f"`reliability backups` lists {wrong}: a backup this example took and left "
                                          f"intact is verified, one cut short ({sorted(cut & set(shown))}) is not")
        # (ISO 8601 times of one format and zone: their text sorts as the times do)
        times = [(str(b.get("created_at")), os.path.basename(str(b.get("path")))) for b in listed]
        self.check(12, times == sorted(times, key=lambda t: t[0], reverse=True),
                   lambda: f"`reliability backups` is not newest first: {times}")

    @precondition(swarm("backup"))
    @precondition(lambda self: has_backups(self) and not self.faults and not self.writes_queued())
    @rule(data=st.data(), how=st.sampled_from(("newest", "path", "name", "damaged")), n=st.integers(0, 12))
    def restore_from_the_command_line(self, data: st.DataObject, how: str, n: int) -> None:
        """P12 at the operator's entry point: with the application stopped, ``reliability restore [BACKUP]`` puts back
        the newest verified backup (``how`` = ``newest``: one this example takes just before) or the one named by its
        path or by its name in the backup folder, after a write that the restore drops: exit 0 naming that backup,
        the file holds exactly the backup's rows, and the previous file is kept aside (``<db>.replaced-*``) holding
        the rows it had. A damaged backup (a copy of one cut short) is refused: exit 2 or 3 naming it, and the database
        file is not touched (README: "a file that is not a SQLite database is refused"; CLI: "the current files are
        kept aside"). No rule ran the command before.

        The path is typed absolute or relative to the folder the command runs in. A name given where that folder holds
        another file of that name (the operator's copy of the database) while the backup folder still holds the backup
        is ambiguous: refused (exit 2) naming both files, the database file untouched (README: "refused, naming both,
        when two different files answer to it, as ``db.restore(name)`` does"); a name one file answers to restores that
        file (the copy, when the recovery just before pruned the backup). Before the command, with the application
        stopped, the operator's other commands: a read-only
        ``reliability check`` / ``health`` (:meth:`inspection_leaves_no_sidecars`) and, after a writer was killed
        mid-transaction, ``reliability recover`` (:meth:`hot_journal_rolled_back`)."""
        if how == "newest" or not self.snapshots:
            self.take_backup(False)
        listed = {str(b.path) for b in self.db.backups() if b.verified}
        choices = sorted(p for p in self.snapshots if p in listed)
        if not choices:
            return
        chosen = self.taken[-1] if how == "newest" else data.draw(st.sampled_from(choices), label="backup")
        if how == "newest" and chosen not in choices:
            return
        # A path as the operator types it: absolute, or relative to the folder the command runs in (odd ``n``).
        typed = chosen if n % 2 == 0 else os.path.relpath(chosen)
        arg = {"newest": None, "path": typed, "name": os.path.basename(chosen)}.get(how)
        restored_from, workdir = chosen, None
        key, value = f"user-{n}", self.text()  # acknowledged after the backup: the restore drops it
        out = self.call("execute", self.db.execute, "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
        if out.ok:
            self.model.kv[key] = value
        expected = self.snapshots[chosen]
        shadowed = how == "name" and n % 2 == 1 or how == "path" and n % 4 == 3
        if shadowed:
            # The folder the command runs in holds a file of the name given (the operator's own copy of the database
            # as it is now, saved under ``chosen``'s name): two different files answer to the name, so it is refused
            # while the backup is there; once the backup is pruned, the copy is the one file and the one restored.
            workdir = os.path.join(self.dir, "scratch", f"ops-{len(self.fault_history)}-{n}")
            os.makedirs(workdir, exist_ok=True)
            arg = os.path.basename(chosen)
            restored_from = os.path.join(workdir, arg)
            copy = self.sqlite_module().connect(restored_from)
            try:
                with self.raw() as conn:
                    conn.backup(copy)
            finally:
                copy.close()
            expected = self.rows_of(restored_from)
        if how == "damaged":
            arg = os.path.join(self.dir, "scratch", f"damaged-{len(self.fault_history)}.sqlite")
            with open(chosen, "rb") as src, open(arg, "wb") as dst:
                dst.write(src.read(os.path.getsize(chosen) // 2))  # a copy cut short
            if not self.fails_quick_check(arg):
                return  # (the cut kept every page in use: not damaged, nothing to judge)
        kept = set(glob.glob(glob.escape(self.db_path) + ".replaced-*"))
        seen: dict[str, Any] = {}

        def stopped() -> None:  # (what the file holds with the application stopped, before the command)
            # (the operator's commands first: a rollback of a hot journal writes the file)
            self.inspection_leaves_no_sidecars(("check", "health", ("check", "--full"))[n % 3])
            # (the file missing a write first, for a named backup only: the recovery's own backup is the newest)
            # (two draws in three since session 28: at one in three, with the journal mode and the redo journal
            # drawn too, a default run often met no such file: planted bug s27_b_recover_refused_after_rollback)
            self.hot_journal_rolled_back(n, missing=n % 3 != 0 and how != "newest")
            # (that recovery takes a backup of its own, and with few kept the chosen one may be pruned: then the
            # command must refuse it, see below)
            seen.update(rows=self.stored_rows(), fingerprint=self.file_fingerprint(),
                        pruned=restored_from == chosen and not os.path.exists(chosen),
                        ambiguous=restored_from != chosen and os.path.exists(chosen))
            if workdir is not None:
                os.chdir(workdir)

        def done() -> None:  # (what the command left, before the application starts again and maybe writes)
            os.chdir(cwd)
            seen.update(after=self.file_fingerprint(),
                        aside=set(glob.glob(glob.escape(self.db_path) + ".replaced-*")) - kept)

        argv = ["restore", *([arg] if arg else [])]
        cwd = os.getcwd()
        try:
            ran = self.run_with_the_application_stopped(argv, 12, stopped, done)
        finally:
            os.chdir(cwd)
        rows_before, untouched = seen.get("rows"), seen.get("fingerprint")
        if ran is None:
            return
        code, doc = ran
        said = f"`reliability restore{f' {arg}' if arg else ''}`"
        if how == "damaged":
            # (Judged as the command left the files: the application's start after it may write, and did: main-job
            # seed 111, the surface machine, three frames in a new -wal, the database file itself untouched.)
            self.check(12, code in (2, 3) and os.path.basename(arg) in str(doc.get("message"))
                       and seen.get("after") == untouched and not seen.get("aside"),
                       lambda: f"{said} of a damaged backup exited {code} ({doc.get('message')!r}): it must be refused "
                               f"naming the backup, the database file untouched (before {untouched}, after "
                               f"{seen.get('after')}; kept aside {sorted(seen.get('aside') or ())})")
            return
        if seen.get("ambiguous"):
            # Two different files answer to the name given: refused naming both (each by its folder and name), the
            # database file untouched. Which backup a restore puts back never depends on where it happens to run.
            message = str(doc.get("message"))
            both = [os.path.join(os.path.basename(os.path.dirname(p)), arg) for p in (restored_from, chosen)]
            self.check(12, code == 2 and all(b in message for b in both)
                       and seen.get("after") == untouched and not seen.get("aside"),
                       lambda: f"{said} run in {workdir}, which holds a copy of the database under that name while the "
                               f"backup folder holds the backup, exited {code} ({doc.get('message')!r}): two different "
                               f"files answer to the name, so it must be refused naming both ({both}), the database "
                               f"file untouched (before {untouched}, after {seen.get('after')}; kept aside "
                               f"{sorted(seen.get('aside') or ())})")
            return
        if seen.get("pruned"):
            # The backup named was pruned by the recovery just before (``backup_keep``): refused, nothing restored.
            self.check(12, code == 2 and "does not exist" in str(doc.get("message"))
                       and seen.get("after") == untouched and not seen.get("aside"),
                       lambda: f"{said} of a backup pruned since exited {code} ({doc.get('message')!r}): it must be "
                               f"refused as missing, the database file untouched (before {untouched}, after "
                               f"{seen.get('after')}; kept aside {sorted(seen.get('aside') or ())})")
            return
        # (a path the command names relative to the folder it ran in)
        restored = os.path.normpath(os.path.join(workdir or cwd, str((doc.get("value") or {}).get("path", ""))))
        try:
            rows: Any = self.stored_rows()
        except sqlite3.Error as exc:
            rows = f"unreadable: {exc}"
        self.check(12, code == 0 and restored == os.path.abspath(restored_from) and rows == expected,
                   lambda: f"{said} ({how}{f', run in {workdir}' if workdir else ''}) exited {code} "
                           f"({doc.get('message')!r}), restoring {restored}: expected {restored_from} and exactly its "
                           f"rows ({'they differ' if not isinstance(rows, str) else rows})")
        aside = sorted(p for p in set(glob.glob(glob.escape(self.db_path) + ".replaced-*")) - kept
                       if not p.endswith(("-wal", "-shm", "-journal")))
        try:
            held: Any = [self.rows_of(p) for p in aside]
        except (sqlite3.Error, self.sqlite_module().Error) as exc:
            held = f"unreadable: {exc}"
        self.check(12, held == [rows_before],
                   lambda: f"after {said} the previous database is not kept aside as one {self.db_path}.replaced-* "
                           f"file holding its rows: {aside} ({'rows differ' if not isinstance(held, str) else held})")
        kv, pairs = expected
        self.model.kv, self.model.pairs = dict(kv), {k: list(v) for k, v in pairs.items()}
        if workdir is None:  # (the operator's copy holds the migrations applied now)
            self.model.applied_versions = list(self.version_snapshots.get(chosen, self.model.applied_versions))

    def inspection_leaves_no_sidecars(self, command: str | tuple[str, ...]) -> None:
        """P11 on the read-only inspection (``reliability check`` / ``health``, the ``Inspector``) of the stopped
        application's WAL database at rest (no ``-wal``/``-shm`` beside it): any reader makes both files and a
        read-only connection cannot remove them, so the inspection must (``reliability.inspection``: "it lets SQLite
        itself remove them"): it reports the intact file healthy and leaves the folder as it found it, no
        ``-wal``/``-shm`` behind for the next process to meet."""
        argv = [command] if isinstance(command, str) else list(command)
        sidecars = [self.db_path + "-wal", self.db_path + "-shm"]
        if any(os.path.exists(p) for p in sidecars) or not self.wal_header():
            return  # (not a WAL database at rest: nothing of this to judge)
        ran = self.run_command_line(argv, 11, None)
        if ran is None:
            return
        code, doc = ran
        left = [os.path.basename(p) for p in sidecars if os.path.exists(p)]
        # (``health`` may say degraded for reasons of its own, a backup's age: its exit code is not judged here)
        self.check(11, (code == 0 or argv == ["health"]) and not left,
                   lambda: f"`reliability {' '.join(argv)}` on the stopped application's intact WAL database at rest "
                           f"exited {code} ({doc.get('message')!r}) and left {left or 'nothing'} beside it: a "
                           "read-only inspection of an intact file passes and leaves no -wal/-shm behind")

    def hot_journal_rolled_back(self, n: int, missing: bool = False) -> None:
        """P13 on ``reliability recover`` after another writer of the stopped application's rollback-journal database
        (DELETE or TRUNCATE mode) was killed in the middle of a transaction whose pages reached the file (its cache
        spilled): its ``-journal`` is hot. The command's smallest repair is SQLite's own rollback: exit 0, its report
        says the interrupted transaction was rolled back (``rolled_back``; no recovery from a backup), the file then
        holds exactly the acknowledged rows, none of the killed transaction's, and no hot journal is left.

        With ``missing`` (and the redo journal on), the application's last committed write is missing from
        the file first: an older copy of it was put back after that write (README: the runtime refuses such a file
        and ``reliability recover`` restores the newest verified backup and replays every journal). The rollback is
        then not all the command does: exit 0, a recovery (``recovered``), the file holds exactly the acknowledged
        rows, that write included; never "run `reliability recover`" from ``recover`` itself, nor a recovery the
        report calls a mere rollback."""
        import json
        import shutil

        from reliability import DatabaseError

        if self.wal_header():
            return  # (a WAL database keeps no rollback journal)
        missing = missing and bool(getattr(self.config, "redo_journal", False))
        if missing:
            older = os.path.join(self.dir, "scratch", f"older-{len(self.fault_history)}-{n}.db")
            os.makedirs(os.path.dirname(older), exist_ok=True)
            shutil.copyfile(self.db_path, older)
            key, value = f"missing-{n}", self.text()
            app = self.open_runtime(self.config)  # (the application, started for one write and stopped again)
            try:
                app.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
            except DatabaseError:
                missing = False
            finally:
                app.close()
            if not missing:
                return  # (the write was not acknowledged: nothing of this to judge)
            self.model.kv[key] = value
            shutil.copyfile(older, self.db_path)  # (the older copy put back: that write is missing from the file)
        worker = os.path.join(self.dir, "scratch", "hot_journal_writer.py")
        if not os.path.exists(worker):
            os.makedirs(os.path.dirname(worker), exist_ok=True)
            with open(worker, "w", encoding="utf-8") as fh:
                fh.write(HOT_JOURNAL_WRITER)
        rows = 150 + 40 * (n % 5)  # (pages enough to spill a one-page cache into the file: the journal is hot)
        crash = make_fault("crash", self.db_path, worker=worker, kill_at="mid_transaction",
                           script_args=[self.sqlite_module().__name__, str(rows)])
        crash.inject()
        self.fault_history.append("crash")
        journal = self.db_path + "-journal"
        if not (crash.result is not None and crash.result.killed and os.path.exists(journal)
                and os.path.getsize(journal) > 0):
            return  # (nothing hot to roll back: nothing of this to judge)
        ran = self.run_command_line(["recover"], 13, ["crash"], changes=True)
        if ran is None:
            return
        code, doc = ran
        value = doc.get("value") or {}
        # (the journal first: the machine's own read of the file would roll a hot one back)
        hot = os.path.exists(journal) and os.path.getsize(journal) > 0 and self.journal_is_hot(journal)
        stored = self.stored_kv()
        killed = sorted(k for k in stored if k.startswith("hot-journal-"))
        acked = "as acknowledged" if {k: v for k, v in stored.items() if k not in killed} == self.model.kv \
            else "changed"
        if missing:
            self.hot_missing_judged = True
            self.check(13, code == 0 and value.get("recovered") is True and stored == self.model.kv and not hot,
                       lambda: f"`reliability recover` on a file missing the application's last committed write (an "
                               f"older copy put back), after a writer was killed mid-transaction (hot journal of "
                               f"{rows} rows' pages), exited {code}: {json.dumps(doc.get('message'))}, rolled_back="
                               f"{value.get('rolled_back')}, recovered={value.get('recovered')}; the file holds "
                               f"{len(killed)} of the killed transaction's rows, acknowledged rows {acked}; hot "
                               f"journal left: {hot} (expected: exit 0, a recovery said so, exactly the acknowledged "
                               "rows)",
                       faults=["crash"])
            return
        self.check(13, code == 0 and value.get("rolled_back") is True and value.get("recovered") is False
                   and "rolled back" in str(doc.get("message")) and stored == self.model.kv and not hot,
                   lambda: f"`reliability recover` after a writer was killed mid-transaction (hot journal of {rows} "
                           f"rows' pages) exited {code}: {json.dumps(doc.get('message'))}, rolled_back="
                           f"{value.get('rolled_back')}, recovered={value.get('recovered')}; the file holds "
                           f"{len(killed)} of the killed transaction's rows, acknowledged rows {acked}; hot journal "
                           f"left: {hot} (expected: exit 0, the interrupted transaction said rolled back, no recovery, "
                           "exactly the acknowledged rows)", faults=["crash"])

    #: The case of :meth:`hot_journal_rolled_back` with ``missing`` was judged in this example (set per instance).
    hot_missing_judged = False

    @staticmethod
    def journal_is_hot(path: str) -> bool:
        """Whether a rollback journal's header is live (a zeroed header, TRUNCATE/PERSIST's "committed", is not)."""
        with open(path, "rb") as fh:
            return fh.read(8) == bytes.fromhex("d9d505f920a163d7")

    def wal_header(self) -> bool:
        """Whether the database file's header says WAL (bytes 18 and 19 are 2), read with ``os.pread`` on a descriptor
        kept open by the machine (no runtime is running here: the caller stopped it)."""
        fd = os.open(self.db_path, os.O_RDONLY)
        try:
            head = os.pread(fd, 20, 0)
        finally:
            os.close(fd)
        return len(head) == 20 and head[18] == 2 and head[19] == 2

    def fails_quick_check(self, path: str) -> bool:
        """Whether SQLite's own ``PRAGMA quick_check`` finds a database file damaged (opened read-only)."""
        module = self.sqlite_module()
        try:
            conn = module.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            try:
                return [r[0] for r in conn.execute("PRAGMA quick_check")] != ["ok"]
            finally:
                conn.close()
        except module.Error:
            return True

    def rows_of(self, path: str) -> tuple[dict[str, str], dict[int, list[tuple[int, int]]]]:
        """``stored_rows()`` of another database file (with its own ``-wal``), opened read-only."""
        conn = self.sqlite_module().connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            return dict(conn.execute("SELECT k, v FROM kv").fetchall()), self._pairs(conn)
        finally:
            conn.close()


class SurfaceMachine(SurfaceMixin):
    """The rare sequences above, interleaved with the workload, backups and recovery.

    The redo journal is on: a failed transaction's writes must not reach it (judged after damage).
    """

    core_groups = frozenset(("backup", "recover"))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close")
    #: the administrator :meth:`flags_from_the_command_line` sets flags as (the runtime's admin API)
    settings_overrides: ClassVar[dict[str, Any]] = {**SurfaceMixin.settings_overrides, "admin_actors": "ops-admin"}

    def make_config(self, **overrides: Any) -> Any:
        return super().make_config(**{"redo_journal": True, **overrides})

    #: Drawn twice as often as one rule (a targeted weight: the verdict a refused copy leaves needs an odd seed and
    #: rows in kv, and the main job met it in about half its runs; session 25, survivor ``upkeep.py:157``).
    backup_of_damaged_file_again = SurfaceMixin.backup_of_damaged_file

    @precondition(lambda self: has_backups(self) and not self.faults and not self.writes_queued())
    @rule(where=st.sampled_from(("deleted", "mistyped")), command=st.sampled_from(MISSING_FILE_COMMANDS),
          backup=st.booleans())
    def command_line_on_a_missing_file(self, where: str, command: tuple[str, ...], backup: bool) -> None:
        """P8 at the operator's entry point: ``reliability health`` (or ``check``, ``schema``, ``backup``) on a
        database file that does not exist: the application's file deleted while it was stopped (``deleted``; a
        backup taken just before when ``backup``), or a path the operator mistyped (``mistyped``: a file never
        created, whose default backup folder ``<db>.backups`` does not exist either). The command fails (exit 3),
        names the file, creates nothing at the path (SQLite's ``connect`` would make an empty database there),
        and its hint is true: when verified backups for that path exist (``db.backups()``) it says so and names
        ``reliability recover`` (README: "a message saying a backup exists and to run `reliability recover`"),
        and when none exist it speaks of no backup (an operator told to recover from backups that are not there
        looks for them instead of for the file)."""
        if backup:
            self.take_backup(False)
        verified = [b for b in self.db.backups() if b.verified]
        if where == "mistyped":
            path = os.path.join(self.dir, "scratch", f"mistyped-{len(self.fault_history)}.db")
            # (Its backups are the application's only when the folder is configured, not the default beside it.)
            self.missing_file_command(path, command, bool(verified) and bool(self.config.backup_dir), None)
            return
        config = self.config
        self.db.close()  # the application stopped; its file is deleted meanwhile (the fault keeps a copy)
        try:
            self.inspection_leaves_no_sidecars(("check", "health", ("check", "--full"))[len(verified) % 3])
            if self.inject("disconnect_delete"):
                self.missing_file_command(self.db_path, command, bool(verified), ["disconnect_delete"])
        finally:
            self.heal("disconnect_delete")
            self.db = self.open_runtime(config)
            self.after_reopen()

    def missing_file_command(self, path: str, command: tuple[str, ...], backups: bool,
                             faults: list[str] | None) -> None:
        """``reliability --db <path> <command>`` on a ``path`` that does not exist, verified ``backups`` for it or
        none: P8 on what it answers (see :meth:`command_line_on_a_missing_file`)."""
        import contextlib
        import io
        import json

        from reliability import ReliabilityConfig
        from reliability.cli import main

        if not isinstance(self.config, ReliabilityConfig) or os.path.exists(path):
            return
        folder = self.config.backup_dir or path + ".backups"
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith("RELIABILITY_") or k == "RELIABILITY_SQLITE_MODULE"}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--db", path, "--env", self.cli_env_file(), "--json", *command], environ=environ)
        doc = json.loads(out.getvalue())
        message = str(doc.get("message") or "")
        said = f"`reliability --db {os.path.basename(path)} {' '.join(command)}` with the file missing"
        self.check(8, code == 3 == doc.get("exit_code") and path in message and not os.path.exists(path),
                   lambda: f"{said} exited {code} (JSON: {doc.get('exit_code')}), {message!r}; the file "
                           f"{'was created' if os.path.exists(path) else 'stays absent'}: it must fail (exit 3) "
                           f"naming the file and create nothing", faults=faults)
        # (Judged without the paths it names: a folder's name may hold any word.)
        words = message
        for name in (path, folder):
            words = words.replace(repr(name), "").replace(name, "")
        words = words.lower()
        if backups:
            self.check(8, "backup" in words and "reliability" in words and "recover" in words,
                       lambda: f"{said} (verified backups exist in {folder}) does not say so and name the remedy "
                               f"`reliability recover`: {message!r}", faults=faults)
        else:
            self.check(8, "backup" not in words,
                       lambda: f"{said} (no verified backup for it: {folder} "
                               f"{'holds none' if os.path.isdir(folder) else 'does not exist'}) speaks of backups: "
                               f"{message!r}", faults=faults)

    # -- the public surface the rest of the main job never executes (benchmarks/surface_reach.py) ---------
    @precondition(lambda self: has_recovery(self) and not self.writes_queued())
    @rule(kinds=st.lists(st.sampled_from(sorted(ADAPTED)), min_size=1, max_size=3), n=st.integers(0, 12),
          how=st.sampled_from(("execute", "named", "executemany")), part=st.sampled_from(CORRUPTIONS),
          seed=st.integers(0, 2**16))
    def adapted_parameters_then_damage(self, kinds: list[str], n: int, how: str, part: str, seed: int) -> None:
        """P6 then P13: writes whose parameters sqlite3 binds through a registered adapter (an ``IntEnum`` stored by
        name, a ``str`` subclass stored normalized) or ``__conform__`` (a value object) are stored as sqlite3 binds
        them, and after damage the recovery that replays the redo journal brings each back exactly as acknowledged
        (the journal must record what SQLite stored, not the value's ``int``/``str`` base or its ``repr``)."""
        self.heal_all()  # (the faults this rule judges under are its own)
        import sqlite3 as stdlib

        register_adapters(stdlib)
        if self.sqlite_module() is not stdlib:
            register_adapters(self.sqlite_module())
        rows = {f"user-{(n + i) % 13}": ADAPTED[kind] for i, kind in enumerate(kinds)}
        sql = ("INSERT OR REPLACE INTO kv (k, v) VALUES (:k, :v)" if how == "named"
               else "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)")
        params = [{"k": k, "v": v} if how == "named" else (k, v) for k, (v, _text) in rows.items()]
        acked: dict[str, str] = {}
        if how == "executemany":
            out = self.call(None, self.absorb, self.db.executemany, sql, params)
            if out.ok:
                acked = {k: text for k, (_v, text) in rows.items()}
            else:
                self.model.ledger.errors[str(out.error.kind)] -= 1  # (absorb counted it; call() again)
        else:
            for p in params:
                key = p["k"] if isinstance(p, dict) else p[0]
                out = self.call("execute", self.db.execute, sql, p)
                if out.ok:
                    acked[key] = rows[key][1]
        self.model.kv.update(acked)
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == t for k, t in acked.items()),
                   lambda: f"writes of adapted parameters ({how}: {kinds}) acknowledged {acked}, the file holds "
                           f"{ {k: stored.get(k) for k in acked} }")
        # P13: the recovery replays these from the redo journal (written after the newest backup).
        self.corrupt_and_recover(part, seed)

    @rule(n=st.integers(0, 12), width=st.integers(1, 3), stmt=st.sampled_from(("insert", "update", "delete")),
          read=st.sampled_from(("fetchall", "fetchone", "fetchmany", "iterate")), size=st.integers(1, 3))
    def write_returning(self, n: int, width: int, stmt: str, read: str, size: int) -> None:
        """P6: ``INSERT``/``UPDATE``/``DELETE … RETURNING`` through ``db.execute`` outside a transaction (the
        journaled autocommit path, which reads the rows before COMMIT) gives what sqlite3's cursor gives: each
        changed row once, by ``fetchone``/``fetchmany``/``fetchall``/iteration alike, then nothing; its
        ``description`` names the returned columns, its ``rowcount`` counts the changed rows and an INSERT's
        ``lastrowid`` is its last row's; and the file holds exactly the write. Under a fault the call may fail;
        then nothing of it is in the file (judged once the faults heal, by the model)."""
        keys = [f"user-{(n + i) % 13}" for i in range(width)]
        texts = [self.text() for _ in keys]
        marks = ", ".join("?" * len(keys))
        if stmt == "insert":
            sql = f"INSERT OR REPLACE INTO kv (k, v) VALUES {', '.join(['(?, ?)'] * len(keys))} RETURNING k, v"
            params: tuple[Any, ...] = tuple(x for pair in zip(keys, texts, strict=True) for x in pair)
            after = dict(zip(keys, texts, strict=True))
            expected = sorted(after.items())
        elif stmt == "update":
            sql = f"UPDATE kv SET v = ? WHERE k IN ({marks}) RETURNING k, v"
            params = (texts[0], *keys)
            after = {k: texts[0] for k in keys if k in self.model.kv}
            expected = sorted(after.items())
        else:
            sql = f"DELETE FROM kv WHERE k IN ({marks}) RETURNING k, v"
            params = tuple(keys)
            after = {}
            expected = sorted((k, self.model.kv[k]) for k in keys if k in self.model.kv)
        out = self.call("execute", self.db.execute, sql, params)
        if not out.ok:
            return  # (nothing changed: the model stays; the invariants compare the file once the faults heal)
        cur = out.value
        got, rest = read_rows(cur, read, size, len(expected))
        names = [d[0] for d in cur.description or ()]
        if stmt == "delete":
            for k in keys:
                self.model.kv.pop(k, None)
        self.model.kv.update(after)
        said = f"{stmt} … RETURNING of {keys} read by {read}"
        self.check(6, sorted(tuple(r) for r in got) == expected and not rest,
                   lambda: f"{said} gave {got} then {rest}, expected each changed row once: {expected}")
        self.check(6, names == ["k", "v"] and cur.rowcount == len(expected),
                   lambda: f"{said}: description names {names}, rowcount {cur.rowcount}; expected ['k', 'v'] and "
                           f"{len(expected)} (the rows it changed)")
        if self.faults:
            return  # (the file may be out of reach: the invariants compare it once the faults heal)
        with self.raw() as conn:
            last = conn.execute("SELECT rowid FROM kv WHERE k = ?", (keys[-1],)).fetchone()
        if stmt == "insert":
            self.check(6, last is not None and cur.lastrowid == last[0],
                       lambda: f"{said}: lastrowid {cur.lastrowid}, the last row inserted has rowid {last}")
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in keys),
                   lambda: f"after {said} the file holds { {k: stored.get(k) for k in keys} }, expected "
                           f"{ {k: self.model.kv.get(k) for k in keys} }")

    @precondition(lambda self: has_recovery(self) and not self.writes_queued())
    @rule(n=st.integers(0, 12), width=st.integers(1, 3),
          how=st.sampled_from(("cursor_execute", "cursor_executemany", "conn_executemany")),
          read=st.sampled_from(("fetchall", "fetchone", "fetchmany", "iterate")), size=st.integers(1, 3),
          damage=st.sampled_from((None, *CORRUPTIONS)), seed=st.integers(0, 2**16))
    def transaction_cursor(self, n: int, width: int, how: str, read: str, size: int, damage: str | None,
                           seed: int) -> None:
        """P6 (and P13 with ``damage``): inside ``with db.transaction() as conn:``, ``conn.cursor()`` and
        ``conn.executemany`` behave as sqlite3's: a cursor's ``execute``/``executemany`` report the rows they
        changed (``rowcount``; an ``execute``'s ``lastrowid`` is the row's rowid), a ``SELECT`` on the cursor reads
        the transaction's own writes by ``fetchone``/``fetchmany``/``fetchall``/iteration with its ``description``,
        and ``close`` ends the cursor. After the block the file holds every write; after damage, the recovery
        replays them from the redo journal (the connection's statements go through the runtime, README)."""
        self.heal_all()  # (the faults this rule judges under are its own)
        rows = {f"user-{(n + i) % 13}": self.text() for i in range(width)}
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        seen: dict[str, Any] = {"counts": [], "ids": []}

        def body() -> None:
            with self.db.transaction() as conn:
                cur = conn.cursor()
                if how == "cursor_execute":
                    for k, v in rows.items():
                        cur.execute(sql, (k, v))
                        rowid = conn.execute("SELECT rowid FROM kv WHERE k = ?", (k,)).fetchone()
                        seen["counts"].append(cur.rowcount)
                        seen["ids"].append((cur.lastrowid, rowid[0] if rowid else None))
                elif how == "cursor_executemany":
                    cur.executemany(sql, list(rows.items()))
                    seen["counts"].append(cur.rowcount)
                else:
                    seen["counts"].append(conn.executemany(sql, list(rows.items())).rowcount)
                cur.execute(f"SELECT k, v FROM kv WHERE k IN ({', '.join('?' * len(rows))}) ORDER BY k",
                            tuple(rows))
                seen["names"] = [d[0] for d in cur.description or ()]
                seen["got"], seen["rest"] = read_rows(cur, read, size, len(rows))
                cur.close()

        out = self.call(None, self.absorb, body)
        if not out.ok:
            self.model.ledger.errors[str(out.error.kind)] -= 1  # (absorb counted it; call() again)
            return
        self.model.kv.update(rows)
        said = f"in db.transaction(), {how} of {sorted(rows)} then a SELECT read by {read}"
        counts = [1] * len(rows) if how == "cursor_execute" else [len(rows)]
        self.check(6, seen["counts"] == counts and all(a == b for a, b in seen["ids"]),
                   lambda: f"{said}: rowcount {seen['counts']} (expected {counts}), lastrowid/rowid {seen['ids']}")
        self.check(6, [tuple(r) for r in seen["got"]] == sorted(rows.items()) and not seen["rest"]
                   and seen["names"] == ["k", "v"],
                   lambda: f"{said}: read {seen['got']} then {seen['rest']} (columns {seen['names']}), expected the "
                           f"transaction's own writes {sorted(rows.items())} once")
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == v for k, v in rows.items()),
                   lambda: f"{said}: committed, the file holds { {k: stored.get(k) for k in rows} }, expected {rows}")
        if damage is not None:
            self.corrupt_and_recover(damage, seed)

    @precondition(lambda self: self.db is not None and not self.writes_queued())
    @rule(n=st.integers(0, 12), width=st.integers(2, 4), at_commit=st.booleans(), param=st.integers(0, 5),
          sleeps=st.integers(0, 4), lazily=st.booleans())
    def executemany_under_a_lock(self, n: int, width: int, at_commit: bool, param: int, sleeps: int,
                                 lazily: bool) -> None:
        """P6 under a real lock: ``db.executemany`` of a batch meets a lock held by another connection, released
        after ``sleeps`` of the runtime's retry waits: a writer's lock (``locked``: BEGIN fails) or, in a
        rollback-journal mode and ``at_commit``, a reader's (``busy_commit``: the rows are written, COMMIT fails and
        the runtime reruns the whole batch). The batch is retried or refused whole: acknowledged, every row is in
        the file; refused, none is. ``lazily``: the rows come from a generator, as an application streaming them
        passes (sqlite3 accepts any iterable): a rerun must not find it consumed by the attempt that failed."""
        self.heal_all()  # (the faults this rule judges under are its own)
        rows = [(f"user-{(n + i) % 13}", self.text()) for i in range(width)]
        before = {k: self.model.kv.get(k) for k, _v in rows}
        kind = "busy_commit" if at_commit and str(self.config.journal_mode).upper() != "WAL" else "locked"
        if not self.inject(kind, param):
            return
        struck = [kind] if sleeps else []
        if sleeps:
            self.heal_after_sleeps([kind], sleeps)
        else:
            self.heal(kind)  # (released before the call: the plain path, the same judgement)
        params: Iterable[tuple[str, str]] = (r for r in rows) if lazily else rows
        try:
            out = self.call(None, self.absorb, self.db.executemany,
                            "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", params, faults=struck)
        finally:
            self.clear_sleep_hooks()
            self.heal(kind)
        if out.ok:
            self.model.kv.update(rows)
        else:
            self.model.ledger.errors[str(out.error.kind)] -= 1  # (absorb counted it; call() again)
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k, _v in rows),
                   lambda: f"executemany of {[k for k, _v in rows]} ({'from a generator, ' if lazily else ''}{kind} "
                           f"released after {sleeps} retry waits) {'acknowledged' if out.ok else out.error.kind}: the "
                           f"file holds { {k: stored.get(k) for k, _v in rows} }, expected "
                           f"{ {k: self.model.kv.get(k) for k, _v in rows} } (before: {before}; all or nothing)",
                   faults=struck)

    @precondition(lambda self: self.db is not None and not self.writes_queued())
    @rule(values=st.dictionaries(st.sampled_from(FLAG_NAMES), st.sampled_from(FLAG_VALUES), min_size=1, max_size=3),
          lock=st.sampled_from((None, None, "write", "exclusive")), pick=st.integers(0, 3),
          bad=st.sampled_from(BAD_FLAGS))
    def flags_from_the_command_line(self, values: dict[str, Any], lock: str | None, pick: int,
                                    bad: tuple[str | None, Any, str, str] = BAD_FLAGS[0]) -> None:
        """P14 then P8: flags set by an administrator through the runtime (``admin.set_flag``) are what the admin
        API lists (``admin.list_flags``: every flag once, by name) and what the operator's read-only ``reliability
        flags list`` and ``flags get NAME`` show, each value exactly (a flag never set: "not set", exit 0). Under a
        lock held by another connection (``lock``) a read still answers exactly, or fails with the CLI's exit code
        and a message, never a traceback (README: inspection opens the database read-only, changes nothing).

        Then the admin reads as the first call on a fresh runtime (:meth:`flag_reads_on_a_fresh_runtime`, each of
        the two first on a runtime of its own) and a bad
        flag name or value (``bad``) through every entry point (:meth:`bad_flag_refused_everywhere`)."""
        self.heal_all()  # (the faults this rule judges under are its own)
        from reliability import admin

        actor = "ops-admin"
        for name, value in values.items():
            result = self.absorb(admin.set_flag, self.db, name, value, actor)
            self.check(14, result.status == "ok",
                       f"an administrator's admin.set_flag({name!r}, {value!r}) with no fault answered "
                       f"{result.status!r}: {result.message}")
            if result.status != "ok":
                return
        listed = self.absorb(admin.list_flags, self.db)
        shown = [(f.name, f.value) for f in (listed.value or [])] if listed.status == "ok" else None
        flags = dict(shown or ())
        self.check(14, shown is not None and len(flags) == len(shown) and all(
                       n in flags and flags[n] == v and type(flags[n]) is type(v) for n, v in values.items()),
                   lambda: f"admin.list_flags answered {listed.status!r} {shown} after {values} were set")
        if shown is None:
            return
        name = sorted(values)[pick % len(values)]
        for list_first in (False, True):
            self.flag_reads_on_a_fresh_runtime(flags, name, list_first)
        self.bad_flag_refused_everywhere(bad, name)
        faults = [] if lock is None or not self.inject("locked", int(lock == "exclusive")) else ["locked"]
        unset = "never-set"
        try:
            commands = ((["flags", "list"], sorted(flags.items())), (["flags", "get", name], flags[name]),
                        (["flags", "get", unset], None))
            # (Under a lock one of them: a read the lock keeps out waits through the CLI's retries in real time.)
            for argv, expected in (commands[pick % 3:pick % 3 + 1] if faults else commands):
                said = f"`reliability flags {' '.join(argv[1:])}`{' under a ' + lock + ' lock' if faults else ''}"
                try:
                    ran = self.run_command_line(argv, 8 if faults else 14, faults)
                except Exception as exc:  # the CLI's main() let an exception out: the operator sees a traceback
                    self.check(8, False, f"{said} raised {type(exc).__name__}: {exc}", faults=faults)
                    return
                if ran is None:
                    return
                code, doc = ran
                value = doc.get("value")
                if argv[1] == "list":
                    got: Any = (sorted((str(f.get("name")), f.get("value")) for f in value)
                                if isinstance(value, list) and all(isinstance(f, dict) for f in value) else value)
                else:
                    got = value.get("value") if isinstance(value, dict) else value
                if code == 0 or not faults:
                    self.check(8 if faults else 14, code == 0 and got == expected and type(got) is type(expected)
                               and (argv[-1] != unset or "not set" in str(doc.get("message"))),
                               f"{said} exited {code} showing {got!r} ({doc.get('message')!r}); the runtime "
                               f"has {expected!r}", faults=faults)
                else:
                    message = str(doc.get("message") or "")
                    self.check(8, code in (1, 3) and bool(message) and "Traceback" not in message,
                               f"{said} failed with exit {code} and message {message!r}: a read the lock kept "
                               f"out must say so (exit 1 or 3, a message)", faults=faults)
        finally:
            if faults:
                self.heal("locked")

    def flag_reads_on_a_fresh_runtime(self, flags: dict[str, Any], name: str, list_first: bool) -> None:
        """P14: ``admin.get_flag`` and ``admin.list_flags`` work as the very first call on a runtime just started
        (another process of the application: no admin call made there yet, nothing registered by hand): the flag's
        value exactly, "not set" for a flag never set, every flag listed once. ``list_first``: which comes first."""
        from reliability import admin

        fresh = self.absorb(self.open_runtime, self.config)
        try:
            for call in (("list", "get") if list_first else ("get", "list")):
                nth = "first" if (call == "list") == list_first else "second"
                if call == "get":
                    got = self.absorb(admin.get_flag, fresh, name)
                    value = getattr(got.value, "value", got.value)
                    self.check(14, got.status == "ok" and value == flags[name] and type(value) is type(flags[name]),
                               f"admin.get_flag({name!r}) as the {nth} call on a fresh runtime answered "
                               f"{got.status!r} {value!r} ({got.message}); the flag is {flags[name]!r}")
                    unset = self.absorb(admin.get_flag, fresh, "never-set")
                    self.check(14, unset.status == "ok" and unset.value is None and "not set" in str(unset.message),
                               f"admin.get_flag('never-set') on a fresh runtime answered {unset.status!r} "
                               f"{unset.value!r} ({unset.message}); expected ok, \"not set\"")
                else:
                    listed = self.absorb(admin.list_flags, fresh)
                    shown = ([(f.name, f.value) for f in listed.value]
                             if listed.status == "ok" and isinstance(listed.value, list) else None)
                    self.check(14, shown is not None and len(shown) == len(flags) and dict(shown) == flags,
                               f"admin.list_flags as the {nth} call on a fresh runtime answered {listed.status!r} "
                               f"{shown} ({listed.message}); the flags are {flags}")
        finally:
            self.absorb(fresh.close)

    def runtime_state(self) -> tuple[Any, ...]:
        """What a refused flag change must leave as it was: the flags, the audit log (its pending entries too), the
        write queue, and every file of the runtime beside the database (size and modification time; not the
        ``-shm``, which every reader writes)."""
        from reliability import admin

        listed = self.absorb(admin.list_flags, self.db)
        flags = [f.to_dict() for f in listed.value] if listed.status == "ok" else listed.status
        audit = [e.entry_id for e in self.absorb(self.db.audit.entries, 100)]
        queue = getattr(self.db.commands, "queue", None)
        files = []
        base = os.path.basename(self.db_path)
        for root, _dirs, names in os.walk(self.dir):
            for n in names:
                path = os.path.join(root, n)
                if (n.startswith(base) or root != self.dir) and not n.endswith("-shm"):
                    try:
                        info = os.stat(path)
                    except FileNotFoundError:
                        continue
                    files.append((path, info.st_size, info.st_mtime_ns))
        return flags, audit, None if queue is None else len(queue), sorted(files)

    def bad_flag_refused_everywhere(self, bad: tuple[str | None, Any, str, str], name: str) -> None:
        """P14: a bad flag name or value is refused the same way by every entry point of flag setting, and nothing
        is written: ``admin.set_flag`` and ``db.commands.run("flags.set", ...)`` answer ``rejected`` with a message
        naming what is wrong (the name or the value), the operator's ``reliability flags set NAME VALUE`` exits 2
        (``usage_error``: README's exit codes, "bad flag name") with that message. The flags, the audit log, the
        write queue and every file of the runtime stay as they were (README: a refused attempt changes nothing; the
        command line refuses before it opens the database). ``name``: a flag that is set, for a bad value."""
        from reliability import admin

        flag, value, kind, typed = bad
        flag = name if flag is None else flag
        what = "flag value" if bad[0] is None else "flag name"
        said = f"flags.set({flag[:30]!r}{'...' if len(flag) > 30 else ''}, {str(value)[:30]!r})"
        self.absorb(self.db.audit.try_reconcile)  # (entries waiting in the fallback go in first, as set_flag does)
        before = self.runtime_state()
        for entry in ("admin.set_flag", "db.commands.run", "reliability flags set"):
            if entry == "reliability flags set":
                ran = self.run_command_line(["flags", "set", "--type", kind, flag, typed], 14, [], admin=True)
                if ran is None:
                    return
                code, doc = ran
                status, message = f"exit {code} ({doc.get('status')})", str(doc.get("message") or "")
                # (A lone surrogate cannot come from a command line as text: refused as an argument that is not
                # valid UTF-8, which names it too.)
                refused = code == 2 and doc.get("status") == "usage_error" and (
                    what in message.lower() or "not valid utf-8" in message.lower())
                expected = "exit 2 (usage_error)"
            else:
                result = (self.absorb(admin.set_flag, self.db, flag, value, "ops-admin") if entry == "admin.set_flag"
                          else self.absorb(self.db.commands.run, "flags.set", flag, value, "ops-admin"))
                status, message = str(result.status), str(result.message or "")
                refused, expected = result.status == "rejected" and what in message.lower(), "rejected"
            self.check(14, refused,
                       f"{entry} {said}, a bad {what}, answered {status}: {message[:200]!r}; expected {expected} "
                       f"with a message naming the {what}")
            after = self.runtime_state()
            changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
            self.check(14, not changed, f"{entry} {said}, a bad {what}, changed the runtime's state "
                       f"(before, after): {changed}" if changed else "")
            before = after
