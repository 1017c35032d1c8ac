"""Backup and recovery benchmark: prints measurements and ratios from one run (no pass/fail).

Usage::

    python benchmarks/backup_recovery.py            # ~100 MB backup, 10 MB recovery
    python benchmarks/backup_recovery.py --quick    # small sizes, a few seconds

Goals from the issue: backup throughput >= 0.5x a plain file copy; a backup while a writer
commits every 5 ms finishes; recovery of a 10 MB database after corruption <= 1 s; replay
throughput of the redo journal and of the write queue (measured, no goal).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from reliability import DatabaseManager, ReliabilityConfig


def config(folder: Path, **changes: object) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(folder / "bench.db"), backup_interval=0, quick_check_interval=0,
                             integrity_check_interval=0, auto_recover=False).replace(**changes)


def fill(db: DatabaseManager, megabytes: float) -> None:
    # A text key with its UNIQUE index, as most tables have one: the backup's integrity_check compares it with the rows.
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)")
    rows = int(megabytes * 1024 * 1024 / 1000)
    blobs = [os.urandom(1000) for _ in range(1000)]
    for b in range(max(1, rows // 1000)):
        db.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [(f"user-{b}-{i}", v) for i, v in enumerate(blobs)])
    db.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def bench_backup_vs_copy(folder: Path, megabytes: float) -> None:
    with DatabaseManager(config(folder, redo_journal=False)) as db:
        fill(db, megabytes)
        size = os.path.getsize(db.path)
        t0 = time.perf_counter()
        shutil.copyfile(db.path, folder / "plain-copy.db")
        fd = os.open(folder / "plain-copy.db", os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        info = db.backup()
        backup_s = time.perf_counter() - t0
    mb = size / 1e6
    print(f"backup of {mb:.1f} MB: copy+fsync {copy_s:.3f}s ({mb / copy_s:.0f} MB/s), "
          f"verified backup {backup_s:.3f}s ({mb / backup_s:.0f} MB/s, includes integrity_check + fsync)")
    print(f"  backup throughput / copy throughput = {copy_s / backup_s:.2f}x (goal >= 0.5x); verified={info.verified}")
    checks = {}
    for pragma in ("quick_check", "integrity_check"):  # what verifying the copy costs, the two checks side by side
        conn = sqlite3.connect(f"file:{info.path}?mode=ro", uri=True)
        conn.execute(f"PRAGMA mmap_size = {1 << 30}")
        t0 = time.perf_counter()
        conn.execute(f"PRAGMA {pragma}").fetchall()
        checks[pragma] = time.perf_counter() - t0
        conn.close()
    print(f"  verifying the copy: integrity_check {checks['integrity_check']:.3f}s, quick_check "
          f"{checks['quick_check']:.3f}s ({checks['integrity_check'] / checks['quick_check']:.2f}x)")


def bench_backup_under_writes(folder: Path, megabytes: float) -> None:
    with DatabaseManager(config(folder, redo_journal=False)) as db:
        fill(db, megabytes)
        stop = threading.Event()
        commits = [0]

        def writer() -> None:
            conn = sqlite3.connect(db.path, timeout=10, isolation_level=None)
            while not stop.is_set():
                conn.execute("INSERT INTO t (v) VALUES (zeroblob(100))")
                commits[0] += 1
                time.sleep(0.005)
            conn.close()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(0.05)
        before = commits[0]
        t0 = time.perf_counter()
        info = db.backup()
        took = time.perf_counter() - t0
        during = commits[0] - before
        stop.set()
        thread.join()
    print(f"backup while a writer commits every 5 ms: finished in {took:.3f}s, verified={info.verified}, "
          f"{during} concurrent commits during it")


def bench_recovery(folder: Path, megabytes: float, writes: int) -> None:
    db = DatabaseManager(config(folder))
    fill(db, megabytes)
    db.backup()
    for i in range(writes):
        db.execute("INSERT INTO t (v) VALUES (?)", (f"after backup {i}".encode(),))
    expected = db.fetch_one("SELECT count(*), sum(length(v)) FROM t")
    db.connections.close()
    with open(db.path, "r+b") as f:
        f.write(b"\x00" * 16)
    size = os.path.getsize(db.path) / 1e6
    t0 = time.perf_counter()
    report = db.recover()
    took = time.perf_counter() - t0
    same = db.fetch_one("SELECT count(*), sum(length(v)) FROM t") == expected
    db.close()
    print(f"recovery of a {size:.1f} MB database after header corruption: {took:.3f}s (goal <= 1 s), "
          f"replayed {report.replayed} write(s), ok={report.ok}, every acknowledged write back={same}")


def bench_redo_overhead(folder: Path, n: int) -> None:
    def run(redo: bool | None, sync: str) -> float:
        sub = Path(tempfile.mkdtemp(dir=folder))
        if redo is None:
            conn = sqlite3.connect(sub / "bench.db", isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            t0 = time.perf_counter()
            for i in range(n):
                conn.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
            took = time.perf_counter() - t0
            conn.close()
            return took
        with DatabaseManager(config(sub, redo_journal=redo, synchronous=sync)) as db:
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            t0 = time.perf_counter()
            for i in range(n):
                db.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
            return time.perf_counter() - t0

    for sync in ("NORMAL", "FULL"):
        raw, off, on = run(None, sync), run(False, sync), run(True, sync)
        print(f"{n} autocommit inserts, synchronous={sync}: raw sqlite3 {raw:.3f}s, manager without journal "
              f"{off:.3f}s ({off / raw:.2f}x), with redo journal {on:.3f}s ({on / raw:.2f}x)")


def bench_replay_throughput(folder: Path, n: int) -> None:
    """How fast the two things replayed after an outage go back in: the redo journal, the write queue."""
    from reliability.durability.recovery import replay_journal
    from reliability.redo import read_journal

    db = DatabaseManager(config(folder))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    backup = db.backup()
    for i in range(n):
        db.execute("INSERT INTO t (v) VALUES (?)", (f"journaled {i}",))
    journal = db.durability.redo.path  # type: ignore[union-attr]
    db.close()
    t0 = time.perf_counter()
    state = read_journal(journal)
    read_s = time.perf_counter() - t0
    target = folder / "replayed.db"
    shutil.copyfile(backup.path, target)
    t0 = time.perf_counter()
    replayed, problems = replay_journal(target, state.entries)
    replay_s = time.perf_counter() - t0
    print(f"redo journal of {n} transactions ({os.path.getsize(journal) / 1e3:.0f} kB): read {read_s:.3f}s "
          f"({n / read_s:,.0f}/s), replayed into the backup {replay_s:.3f}s ({replayed / replay_s:,.0f} "
          f"transactions/s), problems={len(problems)}")

    (folder / "queue").mkdir()
    db = DatabaseManager(config(folder / "queue"))
    db.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, v TEXT)")
    db.commands.register("add", "write", lambda d, v: d.execute("INSERT INTO q (v) VALUES (?)", (v,)))
    t0 = time.perf_counter()
    for i in range(n):  # what a degraded run accepts: each put is fsynced before it is acknowledged
        db.queue.put("add", [f"queued {i}"])
    put_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = db.commands.replay()
    replay_s = time.perf_counter() - t0
    rows = db.fetch_one("SELECT count(*) FROM q")[0]
    db.close()
    print(f"write queue of {n} writes: accepted {put_s:.3f}s ({n / put_s:,.0f}/s, fsynced), replayed "
          f"{replay_s:.3f}s ({report.applied / replay_s:,.0f} writes/s, exactly once each), rows={rows}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; runs in a few seconds")
    args = parser.parse_args(argv)
    big, small, writes, inserts = (8, 2, 500, 300) if args.quick else (100, 10, 2000, 2000)
    with tempfile.TemporaryDirectory(prefix="dbfault-bench-") as tmp:
        root = Path(tmp)
        for name, fn in [("a", lambda d: bench_backup_vs_copy(d, big)),
                         ("b", lambda d: bench_backup_under_writes(d, small * 2)),
                         ("c", lambda d: bench_recovery(d, small, writes)),
                         ("d", lambda d: bench_redo_overhead(d, inserts)),
                         ("e", lambda d: bench_replay_throughput(d, writes))]:
            folder = root / name
            folder.mkdir()
            fn(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
