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


def _raw_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    for pragma in ("busy_timeout = 5000", "journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
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
    db = DatabaseManager(ReliabilityConfig(db_path=path, synchronous="NORMAL", backup_interval=0.0,
                                           redo_journal=False))
    db.connection  # noqa: B018

    def run(index: int, work: list[Any]) -> None:
        for item in work:
            if isinstance(item, list):
                with db.transaction():
                    db.executemany(INSERT, item)
            else:
                db.execute(INSERT, item)

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


def thread_curve(wd: Path, counts: list[int], rounds: int, inserts: int) -> list[str]:
    base = str(wd / "threads-base.db")
    create_database(base, 2000)
    lines = [f"{'threads':>8}{'vs raw-shared':>15}{'vs raw-per-thread':>19}"]
    lines.append("-" * len(lines[0]))
    rng = random.Random(3)
    for n in counts:
        sides = {}
        for name, make in SIDES.items():
            path = str(wd / f"threads-{name}.db")
            copy_database(base, path)
            sides[name] = make(path, n)
        times: dict[str, list[float]] = {name: [] for name in SIDES}
        try:
            for r in range(rounds):
                works = [_writer_work(rng, inserts) for _ in range(n)]
                names = list(SIDES)
                order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
                for name in order:
                    times[name].append(_run_threads(sides[name][0], works))
        finally:
            for run_close in sides.values():
                run_close[1]()
        vs_shared = statistics.median(a / b for a, b in zip(times["runtime"], times["raw-shared"], strict=True))
        vs_each = statistics.median(a / b for a, b in zip(times["runtime"], times["raw-per-thread"], strict=True))
        lines.append(f"{n:>8}{vs_shared:>14.3f}x{vs_each:>18.3f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds (CI: checks it runs)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per point (default 11, quick 3)")
    parser.add_argument("--workdir", help="keep the databases here instead of a temporary directory")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 11)
    sizes = [1, 10] if args.quick else [1, 10, 100]
    workload = Workload(point_read=2000, range_read=400, insert=60, batch_write=12, update=60)
    if args.quick:
        workload = workload.scaled(0.25)
    started = time.perf_counter()
    with workdir(args.workdir) as wd:
        print("scaling: runtime / raw sqlite3 by database size (mixed workload, metrics on, synchronous=NORMAL), "
              f"median of {rounds} alternating rounds")
        print("\n".join(size_curve(wd, sizes, rounds, workload)))
        print()
        print(f"scaling: runtime / raw by concurrent writer threads (autocommit inserts + 10-row transactions, "
              f"synchronous=NORMAL), median of {rounds} rounds")
        print("\n".join(thread_curve(wd, [1, 2, 4], rounds, 100 if args.quick else 600)))
    print(f"({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
