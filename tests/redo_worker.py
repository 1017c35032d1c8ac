"""A worker process for the multi-process redo journal tests (run as ``python tests/redo_worker.py``).

``bank DB WORKER N ACKS [KILL_POINT]``: N bank transfers through ``run_in_transaction`` (a read-modify-write
of two balances and one row in ``transfers``), the transfer id appended to ACKS after each acknowledgement.
With KILL_POINT, after N acknowledged transfers the next one kills this process with SIGKILL at that
point of the commit path: ``before_record``, ``between_flushes`` (record written, not yet fsynced),
``after_record`` (record durable, before COMMIT), ``before_mark`` (COMMIT done, its committed mark not yet
written) or ``after_commit`` (COMMIT done and marked, before the ack).
A manager committing alone (``REDO_WORKER_SYNC=NORMAL``, no other manager open) writes its record after
COMMIT: there ``before_commit`` kills it in its commit window before COMMIT, ``before_record`` after COMMIT
and before the record, ``after_record`` and ``after_commit`` after the record, before the ack.
With ``REDO_WORKER_GO=PATH`` the worker opens its manager (taking its journal slot), creates ``PATH.ready``
and waits for PATH to exist before its first transfer: a manager already running when another one dies.
With ``REDO_WORKER_MARKS=off`` the worker writes its journal as the runtime did before committed marks
existed (no mark after a COMMIT): the files an older version leaves.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from reliability import DatabaseManager, ReliabilityConfig  # noqa: E402
from reliability import redo as redo_module  # noqa: E402

ACCOUNTS = 10


def config(db: str) -> ReliabilityConfig:
    """The settings every worker and the tests use: real fsyncs, patient with locks."""
    return ReliabilityConfig(db_path=db, backup_interval=0, quick_check_interval=0, integrity_check_interval=0,
                             health_check_interval=0, busy_timeout_ms=20000, retry_attempts=20,
                             retry_base_delay=0.002, retry_max_delay=0.05, retry_budget=120.0, auto_recover=False)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    """Make the next journaled commit kill this process at ``point``."""
    journal = redo_module.RedoJournal
    if point == "before_record":
        journal.write_record = lambda self, seq, **kw: die()  # type: ignore[method-assign]
    elif point == "between_flushes":
        redo_module._datasync = lambda fd: die()  # type: ignore[assignment]
    elif point == "after_record":
        original = journal.write_record

        def write_then_die(self, seq, **kw):  # type: ignore[no-untyped-def]
            original(self, seq, **kw)
            die()
        journal.write_record = write_then_die  # type: ignore[method-assign]
    elif point == "before_mark":
        journal.mark_committed = lambda self, seq: die()  # type: ignore[method-assign]
    elif point == "after_commit":
        journal.committed = lambda self, seq: die()  # type: ignore[method-assign]
    elif point == "before_commit":
        redo_module._SoloClaim.enter = lambda self: die()  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def bank(db_path: str, worker: int, count: int, acks: str, kill_point: str | None = None) -> None:
    rng = random.Random(worker)
    cfg = config(db_path)
    if os.environ.get("REDO_WORKER_MARKS") == "off":
        redo_module.RedoJournal.mark_committed = lambda self, seq: None  # type: ignore[method-assign]
    if os.environ.get("REDO_WORKER_SYNC"):
        cfg = cfg.replace(synchronous=os.environ["REDO_WORKER_SYNC"])
    with DatabaseManager(cfg) as db, open(acks, "a", buffering=1) as out:
        go = os.environ.get("REDO_WORKER_GO")
        if go:
            open(go + ".ready", "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.01)
        def transfer(tid: str, a: int, b: int, amount: int) -> None:
            (ba,) = db.fetch_one("SELECT balance FROM accounts WHERE id = ?", (a,))
            (bb,) = db.fetch_one("SELECT balance FROM accounts WHERE id = ?", (b,))
            db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (ba - amount, a))
            db.execute("UPDATE accounts SET balance = ? WHERE id = ?", (bb + amount, b))
            db.execute("INSERT INTO transfers (id, src, dst, amount) VALUES (?, ?, ?, ?)", (tid, a, b, amount))

        for i in range(count + (1 if kill_point else 0)):
            if kill_point and i == count:
                arm(kill_point)
                out.write(f"armed {worker}-{i}\n")
            a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
            tid = f"{worker}-{i}"
            db.run_in_transaction(transfer, tid, a, b, rng.randint(1, 50))
            out.write(tid + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "bank":
        bank(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], *(sys.argv[6:7] or []))
