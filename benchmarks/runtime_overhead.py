"""Runtime overhead: the same mixed SQL through ``DatabaseManager`` and through raw ``sqlite3``.

Run::

    python benchmarks/runtime_overhead.py            # full (about a minute)
    python benchmarks/runtime_overhead.py --quick    # a few seconds, for CI

Both sides work on their own on-disk WAL database in one process, with identical pragmas
(journal_mode=WAL, the same ``synchronous``, busy_timeout, foreign_keys) and the same
transaction control (``isolation_level=None``, ``BEGIN IMMEDIATE`` … ``COMMIT`` around
batches, autocommit otherwise). Every round runs each operation type as a block on one
side then the other, alternating which side goes first, so drift on this shared machine
hits both equally. Absolute times are noise here; the figures are the median over rounds
of the ratio runtime / raw, in total and per operation type.

Configurations measured (each against its own raw baseline):

* ``metrics``: operation logging off; metrics, retries and health tracking on (always on);
* ``metrics+redo``: the same with the redo journal (only when the runtime installs one);
* ``oplog``: every operation logged to a file (``operation_log=True``, ``operation_log_path``);

each with ``synchronous=NORMAL`` and ``synchronous=FULL``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reliability import DatabaseManager, ReliabilityConfig  # noqa: E402

SCHEMA = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL, payload TEXT)",
    "CREATE INDEX items_v ON items (v)",
)
POINT = "SELECT id, k, v, payload FROM items WHERE id = ?"
RANGE = "SELECT id, k, v FROM items WHERE id BETWEEN ? AND ?"
INSERT = "INSERT INTO items (k, v, payload) VALUES (?, ?, ?)"
UPDATE = "UPDATE items SET v = v + 1 WHERE id = ?"

#: Operation types in the order they run within a round.
OPS = ("point_read", "range_read", "insert", "batch_write", "update")
BATCH_ROWS = 50
RANGE_ROWS = 25


@dataclass(frozen=True)
class Workload:
    """How many operations of each type one round runs (a batch is one transaction of BATCH_ROWS inserts)."""

    point_read: int = 2000
    range_read: int = 400
    insert: int = 60
    batch_write: int = 12
    update: int = 60
    seed_rows: int = 5000

    def scaled(self, factor: float) -> Workload:
        """The same mix with every count multiplied by ``factor`` (at least 1 each)."""
        return Workload(*(max(1, int(getattr(self, name) * factor)) for name in OPS), seed_rows=self.seed_rows)


# -- the two sides ---------------------------------------------------------------------------------
class RawSide:
    """The workload through a plain ``sqlite3`` connection configured like the runtime's."""

    label = "raw"

    def __init__(self, path: str, synchronous: str, busy_timeout_ms: int = 5000) -> None:
        self.conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000.0, isolation_level=None,
                                    check_same_thread=False)
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")

    def point_read(self, ids: list[int]) -> None:
        execute = self.conn.execute
        for i in ids:
            execute(POINT, (i,)).fetchone()

    def range_read(self, ids: list[int]) -> None:
        execute = self.conn.execute
        for i in ids:
            execute(RANGE, (i, i + RANGE_ROWS - 1)).fetchall()

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        execute = self.conn.execute
        for row in rows:
            execute(INSERT, row)

    def batch_write(self, batches: list[list[tuple[Any, ...]]]) -> None:
        conn = self.conn
        for batch in batches:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(INSERT, batch)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def update(self, ids: list[int]) -> None:
        execute = self.conn.execute
        for i in ids:
            execute(UPDATE, (i,))

    def close(self) -> None:
        self.conn.close()


class RuntimeSide:
    """The same workload through ``DatabaseManager``'s public API."""

    label = "runtime"

    def __init__(self, config: ReliabilityConfig, *, row_per_commit: bool = False) -> None:
        self.db = DatabaseManager(config)
        self.db.connection  # open now, not inside the first timed block  # noqa: B018
        redo = self.db._redo
        if row_per_commit:
            # The ablation (issue #17): the journal without the claim to commit alone, i.e. the sequence
            # row written by every commit, as before the only writer skipped it. Same code otherwise.
            self.label = "seq-row"
            claim = getattr(redo, "claim", None)
            if claim is not None:
                claim.close()
                redo.claim = None

    def point_read(self, ids: list[int]) -> None:
        fetch_one = self.db.fetch_one
        for i in ids:
            fetch_one(POINT, (i,))

    def range_read(self, ids: list[int]) -> None:
        fetch_all = self.db.fetch_all
        for i in ids:
            fetch_all(RANGE, (i, i + RANGE_ROWS - 1))

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        execute = self.db.execute
        for row in rows:
            execute(INSERT, row)

    def batch_write(self, batches: list[list[tuple[Any, ...]]]) -> None:
        db = self.db
        for batch in batches:
            with db.transaction():
                db.executemany(INSERT, batch)

    def update(self, ids: list[int]) -> None:
        execute = self.db.execute
        for i in ids:
            execute(UPDATE, (i,))

    def close(self) -> None:
        self.db.close()


class PeeweeSide:
    """The same workload through peewee's ``SqliteDatabase`` (a peer ORM layer), same pragmas.

    Raw SQL through ``execute_sql`` and ``atomic()``-style transactions: what peewee adds per
    statement (its connection state, cursor wrapping, context managers), not its query builder.
    """

    label = "peewee"

    def __init__(self, path: str, synchronous: str, busy_timeout_ms: int = 5000) -> None:
        import peewee

        self.db = peewee.SqliteDatabase(path, timeout=busy_timeout_ms / 1000.0, pragmas={
            "journal_mode": "wal", "synchronous": synchronous.lower(), "foreign_keys": 1,
            "busy_timeout": busy_timeout_ms})
        self.db.connect()

    def point_read(self, ids: list[int]) -> None:
        execute = self.db.execute_sql
        for i in ids:
            execute(POINT, (i,)).fetchone()

    def range_read(self, ids: list[int]) -> None:
        execute = self.db.execute_sql
        for i in ids:
            execute(RANGE, (i, i + RANGE_ROWS - 1)).fetchall()

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        execute = self.db.execute_sql
        for row in rows:
            execute(INSERT, row)

    def batch_write(self, batches: list[list[tuple[Any, ...]]]) -> None:
        db = self.db
        for batch in batches:
            with db.atomic("IMMEDIATE"):
                db.cursor().executemany(INSERT, batch)

    def update(self, ids: list[int]) -> None:
        execute = self.db.execute_sql
        for i in ids:
            execute(UPDATE, (i,))

    def close(self) -> None:
        self.db.close()


def peewee_available() -> bool:
    """True when peewee is installed (``pip install -e '.[bench]'``)."""
    try:
        import peewee  # noqa: F401
    except ImportError:
        return False
    return True


# -- databases -------------------------------------------------------------------------------------
def _row(rng: random.Random, payload_bytes: int) -> tuple[Any, ...]:
    return (f"k{rng.randrange(10**9)}", rng.randrange(1000), "x" * payload_bytes)


def create_database(path: str, rows: int, payload_bytes: int = 100, seed: int = 1) -> None:
    """A fresh WAL database at ``path`` with ``rows`` rows (checkpointed, so it is all in the main file)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    conn.execute("PRAGMA synchronous = OFF")
    for stmt in SCHEMA:
        conn.execute(stmt)
    conn.execute("BEGIN")
    chunk = 10_000
    for start in range(0, rows, chunk):
        conn.executemany(INSERT, [_row(rng, payload_bytes) for _ in range(min(chunk, rows - start))])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()


def copy_database(src: str, dst: str) -> None:
    """Copy a checkpointed database file (no -wal to carry)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(dst + suffix)
    shutil.copyfile(src, dst)


# -- measuring -------------------------------------------------------------------------------------
@dataclass
class Result:
    """Per-round timings of one configuration: ``times[side][op]`` is a list of seconds, one per round."""

    name: str
    synchronous: str
    workload: Workload
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    note: str = ""

    def ratios(self, op: str | None = None, side: str = "runtime") -> list[float]:
        """``side`` (runtime or peewee) / raw per round, for one op type or the whole round."""
        raw, rt = self.times["raw"], self.times[side]
        ops = [op] if op else list(OPS)
        return [sum(rt[o][r] for o in ops) / sum(raw[o][r] for o in ops) for r in range(len(raw[OPS[0]]))]

    def median_ratio(self, op: str | None = None, side: str = "runtime") -> float:
        """The median over rounds of :meth:`ratios`."""
        return statistics.median(self.ratios(op, side))

    def overhead_us(self, op: str) -> float:
        """Median extra microseconds per operation (runtime - raw) for ``op``."""
        n = getattr(self.workload, op)
        raw, rt = self.times["raw"][op], self.times["runtime"][op]
        return statistics.median((b - a) / n * 1e6 for a, b in zip(raw, rt, strict=True))

    def per_op_us(self, side: str, op: str) -> float:
        n = getattr(self.workload, op)
        return statistics.median(self.times[side][op]) / n * 1e6


def _inputs(rng: random.Random, w: Workload, max_id: int, payload_bytes: int) -> dict[str, Any]:
    return {
        "point_read": [rng.randint(1, max_id) for _ in range(w.point_read)],
        "range_read": [rng.randint(1, max(1, max_id - RANGE_ROWS)) for _ in range(w.range_read)],
        "insert": [_row(rng, payload_bytes) for _ in range(w.insert)],
        "batch_write": [[_row(rng, payload_bytes) for _ in range(BATCH_ROWS)] for _ in range(w.batch_write)],
        "update": [rng.randint(1, max_id) for _ in range(w.update)],
    }


#: The clock of the blocks: wall time (``perf_counter``), or with ``--clock cpu`` the CPU time of this
#: process (``process_time``: what the work itself costs, which other jobs on a loaded machine do not
#: inflate; it leaves out waiting for the disk, so it means something at synchronous NORMAL only).
CLOCK = {"now": time.perf_counter}


def _timed(fn: Callable[[Any], None], arg: Any) -> float:
    now = CLOCK["now"]
    t0 = now()
    fn(arg)
    return now() - t0


def measure(
    name: str,
    workdir: Path,
    synchronous: str,
    workload: Workload,
    rounds: int,
    *,
    runtime_overrides: dict[str, Any] | None = None,
    base_db: str | None = None,
    payload_bytes: int = 100,
    seed: int = 7,
    peer: bool = False,
    ablation: bool = False,
) -> Result:
    """Run ``rounds`` alternating rounds of ``workload`` on raw sqlite3 and on the runtime."""
    raw_path, rt_path = str(workdir / f"{name}-raw.db"), str(workdir / f"{name}-rt.db")
    if base_db is None:
        base_db = str(workdir / "base.db")
        create_database(base_db, workload.seed_rows, payload_bytes)
    copy_database(base_db, raw_path)
    copy_database(base_db, rt_path)
    with sqlite3.connect(base_db) as probe:
        max_id = probe.execute("SELECT max(id) FROM items").fetchone()[0]
    probe.close()

    overrides: dict[str, Any] = dict(backup_interval=0.0, redo_journal=False)
    overrides.update(runtime_overrides or {})
    config = ReliabilityConfig(db_path=rt_path, synchronous=synchronous, **overrides)
    raw, runtime = RawSide(raw_path, synchronous, config.busy_timeout_ms), RuntimeSide(config)
    sides: list[Any] = [raw, runtime]
    if peer and peewee_available():
        peer_path = str(workdir / f"{name}-peewee.db")
        copy_database(base_db, peer_path)
        sides.append(PeeweeSide(peer_path, synchronous, config.busy_timeout_ms))
    if ablation and overrides.get("redo_journal"):
        row_path = str(workdir / f"{name}-row.db")
        copy_database(base_db, row_path)
        sides.append(RuntimeSide(config.replace(db_path=row_path), row_per_commit=True))
    result = Result(name, synchronous, workload, {side.label: {op: [] for op in OPS} for side in sides})
    if overrides.get("redo_journal") and runtime.db._redo is None:
        result.note = "redo journal requested but not installed by this runtime version"
    rng = random.Random(seed)
    try:
        # One untimed warm-up round on each side (statement caches, page cache, branch predictors).
        warm = _inputs(rng, workload.scaled(0.2), max_id, payload_bytes)
        for side in sides:
            for op in OPS:
                getattr(side, op)(warm[op])
        for r in range(rounds):
            inputs = _inputs(rng, workload, max_id, payload_bytes)
            order = sides[r % len(sides):] + sides[:r % len(sides)]  # rotate who goes first
            gc.collect()
            for op in OPS:
                for side in order:
                    result.times[side.label][op].append(_timed(getattr(side, op), inputs[op]))
    finally:
        for side in sides:
            side.close()
    return result


# -- reporting -------------------------------------------------------------------------------------
GOALS = {"metrics": 1.15, "metrics+redo": 1.15, "oplog": 2.0, "oplog-json": 2.0}


def format_table(results: list[Result]) -> str:
    """The summary table: total ratio per configuration, then per operation type."""
    lines = []
    head = f"{'config':<14}{'sync':<8}{'total':>8}{'goal':>7}  " + "".join(f"{op:>13}" for op in OPS)
    lines.append(head)
    lines.append("-" * len(head))
    for res in results:
        goal = GOALS.get(res.name, 0)
        total = res.median_ratio()
        mark = "ok" if total <= goal else "OVER"
        lines.append(f"{res.name:<14}{res.synchronous:<8}{total:>7.3f}x{goal:>5.2f}x {mark:<4}"
                     + "".join(f"{res.median_ratio(op):>12.3f}x" for op in OPS)
                     + (f"   ({res.note})" if res.note else ""))
        for extra in ("peewee", "seq-row"):  # the peer / the ablation: same rounds, same raw baseline
            if extra in res.times:
                lines.append(f"{'  ' + extra:<14}{res.synchronous:<8}{res.median_ratio(side=extra):>7.3f}x"
                             f"{'':>13}" + "".join(f"{res.median_ratio(op, extra):>12.3f}x" for op in OPS))
    lines.append("")
    lines.append("per operation, median microseconds (raw -> runtime, +overhead):")
    for res in results:
        cells = [f"{op} {res.per_op_us('raw', op):.1f}->{res.per_op_us('runtime', op):.1f} "
                 f"(+{res.overhead_us(op):.1f})" for op in OPS]
        lines.append(f"  {res.name:<13}{res.synchronous:<7}" + "; ".join(cells))
    return "\n".join(lines)


def configurations(quick: bool, oplog_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, runtime overrides) for every configuration to measure."""
    configs: list[tuple[str, dict[str, Any]]] = [("metrics", {})]
    if _redo_available():
        configs.append(("metrics+redo", {"redo_journal": True}))
    configs.append(("oplog", {"operation_log": True, "operation_log_path": str(oplog_path)}))
    if not quick:
        configs.append(("oplog-json", {"operation_log": True, "operation_log_path": str(oplog_path),
                                       "log_json": True}))
    return configs


def _redo_available() -> bool:
    """True when this runtime version installs a redo journal for ``redo_journal=True``."""
    with tempfile.TemporaryDirectory() as tmp:
        db = DatabaseManager(ReliabilityConfig(db_path=os.path.join(tmp, "probe.db"), redo_journal=True,
                                               backup_interval=0.0))
        try:
            db.connection  # noqa: B018
            return db._redo is not None
        finally:
            db.close()


@contextlib.contextmanager
def workdir(keep: str | None = None) -> Iterator[Path]:
    """A scratch directory on disk (not tmpfs: the point is on-disk WAL)."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dbfault-bench-", dir=os.environ.get("BENCH_TMPDIR")) as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few short rounds (CI: checks it runs)")
    parser.add_argument("--rounds", type=int, help="rounds per configuration (default 15, quick 3)")
    parser.add_argument("--sync", choices=("NORMAL", "FULL", "both"), default="both")
    parser.add_argument("--config", action="append", help="only these configurations (repeatable)")
    parser.add_argument("--workdir", help="keep the databases here instead of a temporary directory")
    parser.add_argument("--peer", action="store_true",
                        help="also measure peewee's SqliteDatabase in the same rounds (pip install -e '.[bench]')")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time the blocks by wall clock (default) or by this process's CPU time (meaningful at "
                             "NORMAL only: it leaves out fsync waits; robust on a machine loaded by other jobs)")
    parser.add_argument("--ablation", action="store_true",
                        help="with the redo journal: also measure it with a sequence row per commit (the claim "
                             "to commit alone dropped: the code before issue #17's NORMAL fix) in the same rounds")
    args = parser.parse_args(argv)

    rounds = args.rounds or (3 if args.quick else 15)
    CLOCK["now"] = time.process_time if args.clock == "cpu" else time.perf_counter
    base = Workload()
    syncs = ("NORMAL", "FULL") if args.sync == "both" else (args.sync,)
    results: list[Result] = []
    started = time.perf_counter()
    with workdir(args.workdir) as wd:
        seed_rows = 2000 if args.quick else base.seed_rows
        base_db = str(wd / "base.db")
        create_database(base_db, seed_rows)
        for sync in syncs:
            # FULL fsyncs every commit (milliseconds each here): fewer writes keep the run short.
            w = base if sync == "NORMAL" else Workload(base.point_read, base.range_read, 20, 4, 20)
            if args.quick:
                w = w.scaled(0.25)
            for name, overrides in configurations(args.quick, wd / "ops.log"):
                if args.config and name not in args.config:
                    continue
                results.append(measure(name, wd, sync, w, rounds, runtime_overrides=overrides,
                                       base_db=base_db, peer=args.peer, ablation=args.ablation))
    print(f"runtime overhead: DatabaseManager / raw sqlite3, median of {rounds} alternating rounds, "
          f"{'CPU time of this process' if args.clock == 'cpu' else 'wall time'} "
          f"(on-disk WAL, {sys.platform}, python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if args.peer and not peewee_available():
        print("(peewee is not installed: the peer was not measured)")
    print(format_table(results))
    print(f"({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
