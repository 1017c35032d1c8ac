"""Scaling: how the runtime's overhead over raw sqlite3 grows with database size and writer threads.

Run::

    python benchmarks/scaling.py            # 1, 10, 100 MB; 1, 2, 4 threads (about a minute)
    python benchmarks/scaling.py --quick    # 1 and 10 MB; 1, 2, 4 threads, short

Database size: the mixed workload of ``runtime_overhead.py`` (metrics on, operation log
off, synchronous=NORMAL) on databases of ~1, 10 and 100 MB (rows of ~1 KB).

Writer threads: N threads each doing the same autocommit inserts and small transactions.
The runtime side shares one ``DatabaseManager`` (one connection, the manager's lock) across
the threads, as an application would. Two raw baselines: one shared ``sqlite3`` connection
behind a ``threading.Lock`` (the same architecture, so the ratio is the runtime's own
overhead) and one connection per thread (what raw code often does: SQLite's file lock
and busy handler arbitrate instead).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime_overhead import (  # noqa: E402
    INSERT,
    OPS,
    Workload,
    _row,
    copy_database,
    create_database,
    measure,
    workdir,
)

from reliability import DatabaseManager, ReliabilityConfig  # noqa: E402

ROW_BYTES = 1000


# -- database size ---------------------------------------------------------------------------------
def size_curve(wd: Path, sizes_mb: list[int], rounds: int, workload: Workload) -> list[str]:
    lines = [f"{'db size':>8}{'rows':>9}{'total':>9}" + "".join(f"{op:>13}" for op in OPS)]
    lines.append("-" * len(lines[0]))
    for mb in sizes_mb:
        rows = mb * 1024 * 1024 // (ROW_BYTES + 60)
        base = str(wd / f"size-{mb}.db")
        create_database(base, rows, payload_bytes=ROW_BYTES)
        res = measure(f"size{mb}", wd, "NORMAL", workload, rounds, base_db=base, payload_bytes=ROW_BYTES)
        lines.append(f"{mb:>6}MB{rows:>9}{res.median_ratio():>8.3f}x"
                     + "".join(f"{res.median_ratio(op):>12.3f}x" for op in OPS))
        for suffix in ("", "-wal", "-shm"):
            for name in (base, str(wd / f"size{mb}-raw.db"), str(wd / f"size{mb}-rt.db")):
                Path(name + suffix).unlink(missing_ok=True)
    return lines


# -- writer threads --------------------------------------------------------------------------------
def _writer_work(rng: random.Random, inserts: int) -> list[Any]:
    """A thread's work: autocommit inserts, with a transaction of 10 inserts after every 10th."""
    work: list[Any] = []
    for i in range(inserts):
        work.append(_row(rng, 100))
        if i % 10 == 9:
            work.append([_row(rng, 100) for _ in range(10)])
    return work


Runner = Callable[[int, list[Any]], None]


#: synchronous for the thread curve (set by main: NORMAL without the journal, FULL with it).
SYNC = {"mode": "NORMAL", "redo": False}


def _raw_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    for pragma in ("busy_timeout = 5000", "journal_mode = WAL", f"synchronous = {SYNC['mode']}",
                   "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}").fetchall()
    return conn


def _raw_work(conn: sqlite3.Connection, item: Any) -> None:
    if isinstance(item, list):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, item)
        conn.execute("COMMIT")
    else:
        conn.execute(INSERT, item)


def _raw_shared(path: str, threads: int) -> tuple[Runner, Callable[[], None]]:
    conn = _raw_connection(path)
    lock = threading.Lock()

    def run(index: int, work: list[Any]) -> None:
        for item in work:
            with lock:
                _raw_work(conn, item)

    return run, conn.close


def _raw_per_thread(path: str, threads: int) -> tuple[Runner, Callable[[], None]]:
    # Opened up front so the timing covers the work, not connecting.
    conns = [_raw_connection(path) for _ in range(threads)]

    def run(index: int, work: list[Any]) -> None:
        conn = conns[index]
        for item in work:
            _raw_work(conn, item)

    def close() -> None:
        for conn in conns:
            conn.close()

    return run, close


def _runtime(path: str, threads: int) -> tuple[Runner, Callable[[], None]]:
    db = DatabaseManager(ReliabilityConfig(db_path=path, synchronous=SYNC["mode"], backup_interval=0.0,
                                           redo_journal=bool(SYNC["redo"])))
    db.connection  # noqa: B018

    def run(index: int, work: list[Any]) -> None:
        for item in work:
            if isinstance(item, list):
                with db.transaction():
                    db.executemany(INSERT, item)
            else:
                db.execute(INSERT, item)

    return run, db.close


def _peewee(path: str, threads: int) -> tuple[Runner, Callable[[], None]]:
    # The peer: peewee's SqliteDatabase shared by the threads as an application would (it keeps one
    # connection per thread; SQLite's lock and busy handler arbitrate), same pragmas.
    import peewee

    db = peewee.SqliteDatabase(path, timeout=5.0, pragmas={
        "journal_mode": "wal", "synchronous": SYNC["mode"].lower(), "foreign_keys": 1, "busy_timeout": 5000})

    def run(index: int, work: list[Any]) -> None:
        with db.connection_context():
            for item in work:
                if isinstance(item, list):
                    with db.atomic("IMMEDIATE"):
                        db.cursor().executemany(INSERT, item)
                else:
                    db.execute_sql(INSERT, item)

    return run, db.close


SIDES = {"raw-shared": _raw_shared, "raw-per-thread": _raw_per_thread, "runtime": _runtime}


def _run_threads(run: Runner, works: list[list[Any]]) -> float:
    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(works)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def thread_times(wd: Path, n: int, rounds: int, inserts: int, *, peer: bool = False) -> dict[str, list[float]]:
    """Seconds per round of each side with ``n`` writer threads (the same work, rotating who goes first)."""
    base = str(wd / "threads-base.db")
    if not Path(base).exists():
        create_database(base, 2000)
    rng = random.Random(3)
    makers = dict(SIDES, **({"peewee": _peewee} if peer else {}))
    sides = {}
    for name, make in makers.items():
        path = str(wd / f"threads-{name}-{n}.db")
        copy_database(base, path)
        sides[name] = make(path, n)
    times: dict[str, list[float]] = {name: [] for name in makers}
    try:
        for r in range(rounds):
            works = [_writer_work(rng, inserts) for _ in range(n)]
            names = list(makers)
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for name in order:
                times[name].append(_run_threads(sides[name][0], works))
    finally:
        for run_close in sides.values():
            run_close[1]()
    return times


def thread_curve(wd: Path, counts: list[int], rounds: int, inserts: int) -> list[str]:
    lines = [f"{'threads':>8}{'vs raw-shared':>15}{'vs raw-per-thread':>19}"]
    lines.append("-" * len(lines[0]))
    for n in counts:
        times = thread_times(wd, n, rounds, inserts)
        vs_shared = statistics.median(a / b for a, b in zip(times["runtime"], times["raw-shared"], strict=True))
        vs_each = statistics.median(a / b for a, b in zip(times["runtime"], times["raw-per-thread"], strict=True))
        lines.append(f"{n:>8}{vs_shared:>14.3f}x{vs_each:>18.3f}x")
    return lines


# -- writer processes: bank transfers ----------------------------------------------------------------
ACCOUNTS = 20


def _bank_db(path: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        conn.execute("CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)")
        conn.executemany("INSERT INTO accounts VALUES (?, 1000)", [(i,) for i in range(1, ACCOUNTS + 1)])


def _bank_worker(side: str, path: str, seed: int, count: int, barrier: Any, out: Any) -> None:
    """One process: ``count`` transfers (read two balances, write both, insert the transfer)."""
    rng = random.Random(seed)
    plan = [(*rng.sample(range(1, ACCOUNTS + 1), 2), rng.randint(1, 20)) for _ in range(count)]
    if side == "raw":
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 30000", "foreign_keys = ON"):
            conn.execute(f"PRAGMA {pragma}").fetchall()

        def one(a: int, b: int, amount: int) -> None:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    (ba,) = conn.execute("SELECT balance FROM accounts WHERE id = ?", (a,)).fetchone()
                    (bb,) = conn.execute("SELECT balance FROM accounts WHERE id = ?", (b,)).fetchone()
                    conn.execute("UPDATE accounts SET balance = ? WHERE id = ?", (ba - amount, a))
                    conn.execute("UPDATE accounts SET balance = ? WHERE id = ?", (bb + amount, b))
                    conn.execute("INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)", (a, b, amount))
                    conn.execute("COMMIT")
                    return
                except sqlite3.OperationalError:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
        close = conn.close
    elif side == "peewee":
        import peewee

        pdb = peewee.SqliteDatabase(path, timeout=30.0, pragmas={
            "journal_mode": "wal", "synchronous": "full", "foreign_keys": 1, "busy_timeout": 30000})
        pdb.connect()

        def one(a: int, b: int, amount: int) -> None:
            sql = pdb.execute_sql
            while True:  # like raw: rerun the transfer when SQLite says busy
                try:
                    with pdb.atomic("IMMEDIATE"):
                        (ba,) = sql("SELECT balance FROM accounts WHERE id = ?", (a,)).fetchone()
                        (bb,) = sql("SELECT balance FROM accounts WHERE id = ?", (b,)).fetchone()
                        sql("UPDATE accounts SET balance = ? WHERE id = ?", (ba - amount, a))
                        sql("UPDATE accounts SET balance = ? WHERE id = ?", (bb + amount, b))
                        sql("INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)", (a, b, amount))
                    return
                except peewee.OperationalError:
                    continue
        close = pdb.close
    else:
        db = DatabaseManager(ReliabilityConfig(db_path=path, synchronous="FULL", redo_journal=True,
                                               backup_interval=0.0, health_check_interval=0.0,
                                               quick_check_interval=0.0, integrity_check_interval=0.0,
                                               busy_timeout_ms=30000, retry_attempts=50, retry_budget=300.0))

        def work(a: int, b: int, amount: int) -> None:
            (ba,) = db.fetch_one("SELECT balance FROM accounts WHERE id = ?", (a,))
            (bb,) = db.fetch_one("SELECT balance FROM accounts WHERE id = ?", (b,))
            db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (ba - amount, a))
            db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (bb + amount, b))
            db.execute("INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)", (a, b, amount))

        def one(a: int, b: int, amount: int) -> None:
            db.run_in_transaction(work, a, b, amount)
        close = db.close
    barrier.wait()
    t0 = time.perf_counter()
    for a, b, amount in plan:
        one(a, b, amount)
    out.put((t0, time.perf_counter()))
    close()


def _bank_round(side: str, path: str, processes: int, count: int, seed: int) -> float:
    """Acknowledged transfers per second of ``processes`` writer processes (first start to last end)."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_bank_worker, args=(side, path, seed * 100 + i, count, barrier, out))
             for i in range(processes)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a {side} bank worker failed (exit {p.exitcode})")
    return processes * count / (max(e for _, e in spans) - min(s for s, _ in spans))


def process_rates(wd: Path, n: int, rounds: int, transfers: int, sides: tuple[str, ...] = ("raw", "runtime")
                  ) -> dict[str, list[float]]:
    """Acknowledged transfers/s of each side with ``n`` writer processes, per round (rotating who goes first)."""
    rates: dict[str, list[float]] = {side: [] for side in sides}
    for r in range(rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side in order:
            path = str(wd / f"bank-{side}-{n}-{r}.db")
            _bank_db(path)
            rates[side].append(_bank_round(side, path, n, transfers, r))
    return rates


def process_curve(wd: Path, counts: list[int], rounds: int, transfers: int) -> list[str]:
    """Runtime (FULL + journal, run_in_transaction) vs raw BEGIN IMMEDIATE, acked transfers/s, by processes."""
    lines = [f"{'processes':>10}{'runtime/raw':>13}{'raw tx/s':>10}{'runtime tx/s':>14}"]
    lines.append("-" * len(lines[0]))
    for n in counts:
        ratios, raw_rates, rt_rates = [], [], []
        for r in range(rounds):
            rates = {}
            for side in (("raw", "runtime") if r % 2 == 0 else ("runtime", "raw")):
                path = str(wd / f"bank-{side}-{n}-{r}.db")
                _bank_db(path)
                rates[side] = _bank_round(side, path, n, transfers, r)
            ratios.append(rates["runtime"] / rates["raw"])
            raw_rates.append(rates["raw"])
            rt_rates.append(rates["runtime"])
        lines.append(f"{n:>10}{statistics.median(ratios):>12.3f}x{statistics.median(raw_rates):>10.0f}"
                     f"{statistics.median(rt_rates):>14.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds (CI: checks it runs)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per point (default 11, quick 3)")
    parser.add_argument("--workdir", help="keep the databases here instead of a temporary directory")
    parser.add_argument("--part", action="append", choices=("sizes", "threads", "durable-threads", "processes"),
                        help="only these curves (repeatable; default all)")
    args = parser.parse_args(argv)
    parts = set(args.part or ("sizes", "threads", "durable-threads", "processes"))
    rounds = args.rounds or (3 if args.quick else 11)
    sizes = [1, 10] if args.quick else [1, 10, 100]
    workload = Workload(point_read=2000, range_read=400, insert=60, batch_write=12, update=60)
    if args.quick:
        workload = workload.scaled(0.25)
    started = time.perf_counter()
    with workdir(args.workdir) as wd:
        if "sizes" in parts:
            print("scaling: runtime / raw sqlite3 by database size (mixed workload, metrics on, "
                  f"synchronous=NORMAL), median of {rounds} alternating rounds")
            print("\n".join(size_curve(wd, sizes, rounds, workload)))
            print()
        if "threads" in parts:
            print(f"scaling: runtime / raw by concurrent writer threads (autocommit inserts + 10-row transactions, "
                  f"synchronous=NORMAL), median of {rounds} rounds")
            print("\n".join(thread_curve(wd, [1, 2, 4], rounds, 100 if args.quick else 600)))
            print()
        if "durable-threads" in parts:
            SYNC.update(mode="FULL", redo=True)
            print(f"scaling: runtime (FULL + redo journal) / raw (FULL) by concurrent writer threads, "
                  f"median of {rounds} rounds")
            print("\n".join(thread_curve(wd, [1, 2, 4], rounds, 20 if args.quick else 100)))
            SYNC.update(mode="NORMAL", redo=False)
            print()
        if "processes" in parts:
            print("scaling: writer processes doing bank transfers (read-modify-write), runtime run_in_transaction "
                  "(FULL + redo journal) / raw BEGIN IMMEDIATE (FULL), acknowledged transfers/s, median of "
                  f"{max(1, rounds // 3)} rounds")
            print("\n".join(process_curve(wd, [1, 4, 8], max(1, rounds // 3), 10 if args.quick else 60)))
    print(f"({time.perf_counter() - started:.1f}s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
