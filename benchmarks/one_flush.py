"""What one flush per commit would buy: plain sqlite3 commit shapes side by side (issue #17's design question).

Not the runtime: each side is a plain ``sqlite3`` connection (WAL, its own copy of one seeded file) committing
single-row inserts as ``BEGIN IMMEDIATE`` … ``COMMIT``, plus, where the shape has one, a ~100-byte record
appended to a separate journal file:

* ``raw FULL``        — SQLite flushes the WAL at each COMMIT (the baseline of issue #17's table);
* ``FULL + journal``  — what the runtime's defaults do today: the record flushed, then SQLite's flush;
* ``FULL + journal overlapped`` — the same with the record's flush on a new thread while SQLite commits;
* ``FULL + journal on a writer thread`` — overlapped through one long-lived thread, as the runtime's
  ``reliability.redo._Syncer`` does;
* ``FULL + journal + header on a writer thread`` — the same, and each record also rewrites a 20-byte high-water
  mark in the file's first block (what the runtime's journal does so a cut file is detected);
* ``FULL + journal + sequence row`` — the record flushed first, and the transaction also upserts one row of a
  bookkeeping table (what the runtime's sequence costs: a second WAL page per commit);
* ``NORMAL + journal`` — one flush: the record flushed before COMMIT, SQLite not flushing its WAL. The record
  alone would then carry the acknowledged write across a power loss (replayed at an unclean start);
* ``raw NORMAL``      — no flush at all, for reference.

Printed: the median over rounds of each side's time per commit and its ratio to ``raw FULL`` (sides alternate
in a shuffled order each round, in one process). ``--quick`` runs 3 rounds of 20 commits.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _seed(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row-{i}",) for i in range(5000)])
    conn.close()


class Side:
    """One commit shape on its own copy of the seeded database (and its own journal file)."""

    def __init__(self, name: str, seed: Path, tmp: Path, sync: str, journal: str | None) -> None:
        self.name = name
        path = tmp / f"{name.replace(' ', '_')}.db"
        shutil.copy(seed, path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={sync}")
        self.journal = journal
        self.fd = os.open(tmp / f"{path.name}.journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.record = os.urandom(100)
        if journal == "seq":
            self.conn.execute("CREATE TABLE IF NOT EXISTS seqs (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
        self._todo: list[threading.Semaphore] = []
        self._cv = threading.Condition()
        # (O_APPEND ignores pwrite's offset on Linux: the header goes through a second descriptor.)
        self.hfd = os.open(tmp / f"{path.name}.journal", os.O_WRONLY)
        if journal in ("writer", "header"):
            threading.Thread(target=self._writer, daemon=True).start()

    def _writer(self) -> None:
        while True:
            with self._cv:
                while not self._todo:
                    self._cv.wait()
                batch, self._todo = self._todo, []
            os.fdatasync(self.fd)
            for done in batch:
                done.release()

    def commit(self, n: int) -> None:
        """One single-row insert committed in this side's shape."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO t (v) VALUES (?)", (f"new-{n}",))
        if self.journal == "before":
            os.write(self.fd, self.record)
            os.fdatasync(self.fd)
            self.conn.execute("COMMIT")
        elif self.journal == "seq":
            self.conn.execute("INSERT OR REPLACE INTO seqs (slot, seq) VALUES (0, ?)", (n,))
            os.write(self.fd, self.record)
            os.fdatasync(self.fd)
            self.conn.execute("COMMIT")
        elif self.journal in ("writer", "header"):
            os.write(self.fd, self.record)
            if self.journal == "header":
                os.pwrite(self.hfd, self.record[:20], 8)
            done = threading.Semaphore(0)
            with self._cv:
                self._todo.append(done)
                self._cv.notify()
            self.conn.execute("COMMIT")
            done.acquire()
        elif self.journal == "overlapped":
            os.write(self.fd, self.record)
            flush = threading.Thread(target=os.fdatasync, args=(self.fd,))
            flush.start()
            self.conn.execute("COMMIT")
            flush.join()
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
        os.close(self.fd)
        os.close(self.hfd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--commits", type=int, default=60, help="commits per side per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 20 commits")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rounds, commits = (3, 20) if args.quick else (args.rounds, args.commits)
    shapes: list[tuple[str, str, str | None]] = [
        ("raw FULL", "FULL", None), ("FULL + journal", "FULL", "before"),
        ("FULL + journal overlapped", "FULL", "overlapped"), ("FULL + journal on a writer thread", "FULL", "writer"),
        ("FULL + journal + header on a writer thread", "FULL", "header"),
        ("FULL + journal + sequence row", "FULL", "seq"), ("NORMAL + journal", "NORMAL", "before"),
        ("raw NORMAL", "NORMAL", None)]
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="one-flush-", dir=os.environ.get("BENCH_DIR")) as d:
        tmp = Path(d)
        seed = tmp / "seed.db"
        _seed(seed)
        sides = [Side(name, seed, tmp, sync, journal) for name, sync, journal in shapes]
        times: dict[str, list[float]] = {s.name: [] for s in sides}
        counter = 0
        for _ in range(rounds):
            order = sides[:]
            rng.shuffle(order)
            for side in order:
                commit: Callable[[int], None] = side.commit
                t0 = time.perf_counter()
                for _ in range(commits):
                    counter += 1
                    commit(counter)
                times[side.name].append((time.perf_counter() - t0) / commits)
        for side in sides:
            side.close()
    load = os.getloadavg()[0]
    print(f"one flush per commit: {rounds} rounds x {commits} commits per side, load {load:.1f}")
    base = statistics.median(times["raw FULL"])
    print(f"{'side':44} {'ms/commit':>10} {'vs raw FULL':>12}")
    for name, _sync, _journal in shapes:
        med = statistics.median(times[name])
        print(f"{name:44} {med * 1000:10.3f} {med / base:11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
