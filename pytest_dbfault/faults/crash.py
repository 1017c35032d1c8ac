"""Process crash: run a writer in a subprocess and SIGKILL it at a chosen point.

The child calls :func:`signal_point` at interesting moments ("in_txn", "committed"...).
Each call writes the label to a pipe and *blocks* until the parent answers, so when the
parent decides to kill, the child is frozen exactly at that point — "kill inside a
transaction" is deterministic, not a race. A kill can also be timed (``after_seconds``).

Example::

    result = run_and_kill(db_path, PAIR_WRITER, kill_at="in_txn", occurrence=3)
    assert check_pairs(db_path).ok  # the hot journal rolled the half transaction back

POSIX only (SIGKILL, fd passing). On reopen SQLite recovers the hot journal or WAL;
the OS page cache survives the kill, so this never tests fsync (see the VFS faults).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .base import Fault, FaultError
from .safety import check_path
from .target import TargetLike, resolve_target

#: The built-in worker: inserts balanced row pairs, one pair per transaction.
PAIR_WRITER = "pytest_dbfault.faults.crash:pair_writer"
#: Environment variables through which the child finds its signalling pipes.
POINTS_FD_ENV = "DBFAULT_CRASH_POINTS_FD"
ACK_FD_ENV = "DBFAULT_CRASH_ACK_FD"
_CHILD_BOOT = "from pytest_dbfault.faults.crash import _child_main; _child_main()"

Worker = str | os.PathLike[str] | Callable[..., Any]


@dataclass(frozen=True)
class CrashResult:
    """What happened to the child: killed where, or finished; every point it reached."""

    path: Path
    killed: bool
    point: str | None
    occurrence: int | None
    seen: dict[str, int] = field(default_factory=dict)
    returncode: int | None = None


def signal_point(label: str) -> None:
    """Tell a watching :func:`run_and_kill` that the child reached ``label``; wait for its answer.

    A no-op when the process was not started by :func:`run_and_kill`, so workers also run
    standalone. Labels must not contain newlines.
    """
    points, ack = os.environ.get(POINTS_FD_ENV), os.environ.get(ACK_FD_ENV)
    if points is None or ack is None:
        return
    os.write(int(points), label.encode() + b"\n")
    os.read(int(ack), 1)  # blocks: the parent either acknowledges or kills us here


def pair_writer(
    db_path: str,
    *,
    txns: int = 50,
    journal_mode: str = "delete",
    synchronous: str = "FULL",
    payload: int = 600,
) -> None:
    """Built-in crash worker: ``txns`` transactions, each inserting a balanced pair of rows.

    Row ``(txn, 0, +a)`` then ``(txn, 1, -a)`` plus ``payload`` random bytes each (so a
    transaction spans pages). Signal points: ``in_txn`` after the first insert (a kill
    here leaves half a transaction), ``before_commit`` after the second, ``committed``
    after COMMIT returned. Continues numbering from rows already in the table.
    """
    import sqlite3

    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5.0)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS dbfault_pairs (txn INTEGER NOT NULL, leg INTEGER NOT NULL, "
                 "amount INTEGER NOT NULL, pad BLOB, PRIMARY KEY (txn, leg))")
    start = conn.execute("SELECT coalesce(max(txn), 0) + 1 FROM dbfault_pairs").fetchone()[0]
    insert = "INSERT INTO dbfault_pairs VALUES (?, ?, ?, randomblob(?))"
    for txn in range(start, start + txns):
        amount = txn * 37 % 1000 + 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert, (txn, 0, amount, payload))
        signal_point("in_txn")
        conn.execute(insert, (txn, 1, -amount, payload))
        signal_point("before_commit")
        conn.execute("COMMIT")
        signal_point("committed")
    conn.close()


@dataclass(frozen=True)
class PairCheck:
    """The state of a database written by :func:`pair_writer`, read after a crash."""

    rows: int
    transactions: int
    unpaired_transactions: int
    balance: int
    integrity: list[str]

    @property
    def ok(self) -> bool:
        """All or nothing held: integrity 'ok', every transaction complete, amounts balance."""
        return self.integrity == ["ok"] and self.unpaired_transactions == 0 and self.balance == 0


def check_pairs(path: str | os.PathLike[str]) -> PairCheck:
    """Open ``path`` (recovering any hot journal/WAL) and check what :func:`pair_writer` left."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=1.0)
    try:
        integrity = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        if conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'dbfault_pairs'").fetchone() is None:
            return PairCheck(0, 0, 0, 0, integrity)
        rows, txns, balance = conn.execute(
            "SELECT count(*), count(DISTINCT txn), coalesce(sum(amount), 0) FROM dbfault_pairs").fetchone()
        unpaired = conn.execute("SELECT count(*) FROM (SELECT txn FROM dbfault_pairs GROUP BY txn "
                                "HAVING count(*) != 2 OR sum(amount) != 0)").fetchone()[0]
        return PairCheck(rows, txns, unpaired, balance, integrity)
    finally:
        conn.close()


def run_and_kill(
    target: TargetLike,
    worker: Worker = PAIR_WRITER,
    *,
    kwargs: dict[str, Any] | None = None,
    script_args: list[str] | None = None,
    kill_at: str = "any",
    occurrence: int | None = None,
    seed: int | None = None,
    max_occurrence: int = 30,
    after_seconds: float | None = None,
    timeout: float = 30.0,
    allow_unsafe: bool = False,
) -> CrashResult:
    """Run ``worker`` against the database in a subprocess and SIGKILL it at a chosen point.

    :param target: the database path (or a connection/manager whose file is used).
    :param worker: ``"module:function"``, an importable module-level function (called as
        ``fn(db_path, **kwargs)``), or a ``.py`` script (run as ``script db_path *script_args``).
        Workers mark points with :func:`signal_point`.
    :param kill_at: the point label to kill at, or ``"any"`` for every point.
    :param occurrence: kill at the n-th matching point (1-based). Default: 1, or a seeded
        random choice in ``1..max_occurrence`` when ``seed`` is given.
    :param after_seconds: kill on a timer instead of at a point: after that many seconds,
        or a seeded random time below it when ``seed`` is given.
    :param timeout: give up (kill, then raise :class:`FaultError`) after this many seconds.

    Returns a :class:`CrashResult`; ``killed`` is False when the worker finished first.
    A worker that fails on its own raises :class:`FaultError` with its stderr.
    """
    path = check_path(resolve_target(target).need_path("crash"), action="crash a writer on",
                      allow_unsafe=allow_unsafe)
    rng = random.Random(seed)
    deadline_kill: float | None = None
    if after_seconds is not None:
        deadline_kill = rng.uniform(0, after_seconds) if seed is not None else after_seconds
    elif occurrence is None:
        occurrence = rng.randint(1, max_occurrence) if seed is not None else 1
    if occurrence is not None and occurrence < 1:
        raise FaultError(f"run_and_kill occurrence must be >= 1, got {occurrence}")
    cmd = _command(worker, path, kwargs or {}, script_args or [])

    with tempfile.TemporaryFile() as stderr:
        def start(points_w: int, ack_r: int, parent_ends: tuple[int, int]) -> subprocess.Popen[bytes]:
            env = {**os.environ, POINTS_FD_ENV: str(points_w), ACK_FD_ENV: str(ack_r),
                   # The child imports workers exactly as this process does (test modules included).
                   "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            return subprocess.Popen(cmd, env=env, pass_fds=(points_w, ack_r), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=stderr)

        proc, killed, point, seen = watch_child(start, kill_at=kill_at, occurrence=occurrence,
                                                deadline_kill=deadline_kill, timeout=timeout)
        if not killed and proc.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            name = os.fspath(worker) if not callable(worker) else getattr(worker, "__qualname__", repr(worker))
            raise FaultError(f"crash worker {name!r} failed on its own (exit {proc.returncode}) "
                             f"before being killed:\n{tail}")
    return CrashResult(path, killed, point, occurrence if point and deadline_kill is None else None,
                       dict(seen), proc.returncode)


class ChildProcess(Protocol):
    """What :func:`watch_child` needs of a child: a ``subprocess.Popen`` or a :class:`ForkedChild`."""

    returncode: int | None

    def send_signal(self, sig: int) -> None: ...  # noqa: D102 - Popen's
    def kill(self) -> None: ...  # noqa: D102
    def poll(self) -> int | None: ...  # noqa: D102
    def wait(self) -> int: ...  # noqa: D102


class ForkedChild:
    """A child made by ``os.fork`` seen as the ``subprocess.Popen`` that :func:`watch_child` drives."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child."""
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the child."""
        self.send_signal(signal.SIGKILL)

    def poll(self) -> int | None:
        """The exit code once the child ended (reaped here), else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        """Wait for the child and return its exit code."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


#: How :func:`watch_child` starts a child: given the child's ends of the pipes (points write end, ack read end)
#: and the parent's ends (which a forked child must close), it returns the running child.
Starter = Callable[[int, int, tuple[int, int]], ChildProcess]


def forked(body: Callable[[int, int], None]) -> Starter:
    """A :data:`Starter` that forks and runs ``body(points_fd, ack_fd)`` in the child.

    The child never returns into the caller's code (a forked pytest must not go on running tests):
    it ends with ``os._exit``, 0 when ``body`` returns, 5 with the traceback on stderr when it raises.
    """

    def start(points_w: int, ack_r: int, parent_ends: tuple[int, int]) -> ForkedChild:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage does not follow a fork)
            code = 0
            try:
                for fd in parent_ends:
                    os.close(fd)
                body(points_w, ack_r)
            except BaseException:
                traceback.print_exc()
                code = 5
            finally:
                os._exit(code)
        return ForkedChild(pid)

    return start


def watch_child(start: Starter, *, kill_at: str = "any", occurrence: int | None = None,
                deadline_kill: float | None = None, timeout: float = 30.0
                ) -> tuple[ChildProcess, bool, str | None, Counter[str]]:
    """Start a child with the point and ack pipes, SIGKILL it at a point (or on a timer), and reap it.

    The child reports each point with :func:`signal_point` (a subprocess) or by writing the label to
    its points fd and reading one byte from its ack fd (a forked child, :mod:`pytest_dbfault.machines.kill_worker`).
    Returns ``(child, killed, point, seen)``; the child is dead and reaped whatever happened, and
    every pipe end is closed. Shared by :func:`run_and_kill` (the fault) and the restart machine.
    """
    points_r, points_w = os.pipe()
    ack_r, ack_w = os.pipe()
    try:
        proc = start(points_w, ack_r, (points_r, ack_w))
    except BaseException:
        os.close(points_r)
        os.close(ack_w)
        raise
    finally:  # the child has its own copies
        os.close(points_w)
        os.close(ack_r)
    try:
        killed, point, seen = _watch(proc, points_r, ack_w, kill_at, occurrence, deadline_kill, timeout)
    finally:
        os.close(points_r)
        os.close(ack_w)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc, killed, point, seen


def _watch(proc: ChildProcess, points_r: int, ack_w: int, kill_at: str, occurrence: int | None,
           deadline_kill: float | None, timeout: float) -> tuple[bool, str | None, Counter[str]]:
    start = time.monotonic()
    seen: Counter[str] = Counter()
    matched = 0
    buffer = b""
    while True:
        now = time.monotonic() - start
        if deadline_kill is not None and now >= deadline_kill:
            proc.send_signal(signal.SIGKILL)
            return True, f"timer {deadline_kill:.3f}s", seen
        if now >= timeout:
            proc.kill()
            raise FaultError(f"crash worker did not reach point {kill_at!r} #{occurrence} within {timeout}s "
                             f"(points seen: {dict(seen)})")
        wait = min(timeout, deadline_kill if deadline_kill is not None else timeout) - now
        readable, _, _ = select.select([points_r], [], [], max(wait, 0))
        if not readable:
            continue
        chunk = os.read(points_r, 4096)
        if not chunk:  # the child exited without being killed
            proc.wait()
            return False, None, seen
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            label = line.decode(errors="replace")
            seen[label] += 1
            if deadline_kill is None and kill_at in ("any", label):
                matched += 1
                if matched == occurrence:
                    proc.send_signal(signal.SIGKILL)  # the child is blocked inside signal_point
                    return True, label, seen
            try:
                os.write(ack_w, b"c")
            except BrokenPipeError:  # pragma: no cover - child died between write and read
                pass


def _command(worker: Worker, path: Path, kwargs: dict[str, Any], script_args: list[str]) -> list[str]:
    if callable(worker):
        module, qualname = getattr(worker, "__module__", None), getattr(worker, "__qualname__", "")
        if not module or module == "__main__" or "<" in qualname:
            raise FaultError(f"crash worker {worker!r} is not importable by a child process; define it at "
                             f"module level in an importable module or pass 'module:function'")
        worker = f"{module}:{qualname}"
    text = os.fspath(worker)
    if text.endswith(".py"):
        if not Path(text).is_file():
            raise FaultError(f"crash worker script {text!r} does not exist")
        return [sys.executable, text, str(path), *script_args]
    if ":" not in text:
        raise FaultError(f"crash worker {text!r} is neither 'module:function' nor a .py script")
    try:
        spec = json.dumps({"worker": text, "db": str(path), "kwargs": kwargs})
    except TypeError as exc:
        raise FaultError(f"crash worker kwargs must be JSON-serializable: {exc}") from exc
    return [sys.executable, "-c", _CHILD_BOOT, spec]


def _child_main() -> None:
    """Entry point of the child process started by :func:`run_and_kill`."""
    spec = json.loads(sys.argv[1])
    module_name, _, qualname = spec["worker"].partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    obj(spec["db"], **spec["kwargs"])


class CrashFault(Fault):
    """Kill a writer process at a chosen point (see :func:`run_and_kill` for the parameters).

    Not healable: the database is left as the crash left it, for the test to reopen and
    check (``check_pairs`` for the built-in worker). The outcome is in :attr:`result`.
    """

    name = "crash"
    healable = False
    #: ``**options`` are :func:`run_and_kill`'s keyword parameters (scenario checks and docs read them here).
    options_of = staticmethod(run_and_kill)
    param_bounds = {"occurrence": (1, None), "max_occurrence": (1, None), "after_seconds": (0, None),
                    "timeout": (0, None)}

    def __init__(self, target: TargetLike, worker: Worker = PAIR_WRITER, **options: Any) -> None:
        super().__init__(target=target, worker=worker if isinstance(worker, str) else repr(worker), **options)
        self.target = target
        self.worker = worker
        self.options = options
        self.result: CrashResult | None = None

    def _inject(self) -> None:
        self.result = run_and_kill(self.target, self.worker, **self.options)
        r = self.result
        self.record("killed" if r.killed else "worker finished before the kill point", path=str(r.path),
                    point=r.point, occurrence=r.occurrence, seen=r.seen, returncode=r.returncode)

    def _heal(self) -> None:
        self.record("not restored", reason="a crash cannot be undone; reopen the database to recover it")
