"""Lock faults: another connection holds a lock so the victim gets SQLITE_BUSY.

* :class:`LockedFault` — a holder connection (background thread or subprocess)
  runs ``BEGIN IMMEDIATE`` (mode ``"write"``) or ``BEGIN EXCLUSIVE`` (mode
  ``"exclusive"``) and keeps the transaction open for ``duration`` seconds or until
  healed. Writers then get 5/SQLITE_BUSY. With mode ``"exclusive"`` in a
  rollback-journal database readers fail too; in WAL mode readers still succeed.
* :class:`BusySnapshotFault` / :func:`arrange_busy_snapshot` — WAL only: the victim
  holds a read snapshot, another connection commits, so the victim's next write
  gets 517/SQLITE_BUSY_SNAPSHOT (retrying inside that transaction never works).
* :class:`BusyCommitFault` — rollback journal only: a reader keeps a SHARED lock so
  the victim's ``COMMIT`` gets 5/SQLITE_BUSY and its transaction *stays open*.
"""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .base import Fault, FaultError
from .safety import check_path
from .target import TargetLike, dbapi_module, journal_mode, resolve_target

_BEGIN = {"write": "BEGIN IMMEDIATE", "exclusive": "BEGIN EXCLUSIVE"}
_HOLDERS = ("thread", "subprocess")

# The subprocess holder: take the lock, say so on stdout, hold it until stdin closes
# or the duration (argv[4], "" for forever) runs out.
_HOLDER_SCRIPT = """
import select, sqlite3, sys
path, begin, timeout, duration = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
try:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.execute(begin)
except sqlite3.Error as exc:
    print("error", type(exc).__name__, exc, flush=True)
    sys.exit(3)
print("locked", mode, flush=True)
select.select([sys.stdin], [], [], float(duration) if duration else None)
conn.rollback()
conn.close()
"""


class LockedFault(Fault):
    """Hold a write or exclusive lock on a database from another connection.

    Example::

        with LockedFault(tmp_path / "app.db", mode="exclusive"):
            victim.execute("INSERT ...")  # OperationalError 5/SQLITE_BUSY after its timeout

    :param target: database path, ``sqlite3.Connection`` or manager: the file to lock, and for the
        thread holder the SQLite build to lock it with (see below).
    :param mode: ``"write"`` (``BEGIN IMMEDIATE``) or ``"exclusive"`` (``BEGIN EXCLUSIVE``).
    :param duration: seconds to hold the lock; ``None`` holds it until :meth:`heal`.
    :param holder: ``"thread"`` (a connection in a background thread of this process) or
        ``"subprocess"`` (a separate Python process, for cross-process locking).
    :param acquire_timeout: how long the holder itself waits to get the lock.
    :param allow_unsafe: lock a file outside the allowed roots (see :mod:`.safety`).

    ``inject()`` returns only once the lock is really held; ``heal()`` releases it and
    joins the holder, so no thread or process outlives the fault.

    Which SQLite build holds the lock: a thread holder must use the victim's own build. POSIX
    locks belong to the process, and each SQLite library keeps its own table of them, so two builds
    in one process do not see each other's locks (checked with the stdlib's SQLite 3.40 and
    pysqlite3's 3.51: a pysqlite3 connection writes through a stdlib ``BEGIN EXCLUSIVE`` held in the
    same process), and a connection of the other build closing its file drops *every* lock the
    process holds on it, the victim's included (another process could then write during the
    victim's transaction; in WAL mode the next open may rebuild the shared memory under a live
    reader, ``disk I/O error``). So pass the victim's connection or manager where the application
    uses another build; a bare path uses ``DBFAULT_SQLITE_MODULE`` (``sqlite3`` when unset). A
    subprocess holder is seen by every build (locks of another process are seen by all).
    """

    name = "locked"
    param_choices = {"mode": tuple(_BEGIN), "holder": _HOLDERS}
    param_bounds = {"duration": (0, None), "acquire_timeout": (0, None)}

    def __init__(
        self,
        target: TargetLike,
        *,
        mode: str = "exclusive",
        duration: float | None = None,
        holder: str = "thread",
        acquire_timeout: float = 5.0,
        allow_unsafe: bool = False,
    ) -> None:
        if mode not in _BEGIN:
            raise FaultError(f"LockedFault mode {mode!r} is not one of {sorted(_BEGIN)}")
        if holder not in _HOLDERS:
            raise FaultError(f"LockedFault holder {holder!r} is not one of {list(_HOLDERS)}")
        if duration is not None and duration < 0:
            raise FaultError(f"LockedFault duration must be >= 0 seconds or None, got {duration!r}")
        super().__init__(target=target, mode=mode, duration=duration, holder=holder)
        resolved = resolve_target(target)
        self.path = resolved.need_path(self.name)
        # The thread holder uses the victim's own SQLite build: another copy of the library in this
        # process would not see its locks (a subprocess holder is seen by every build).
        self.module = resolved.module if holder == "thread" else sqlite3
        self.mode = mode
        self.duration = duration
        self.holder = holder
        self.acquire_timeout = acquire_timeout
        self.allow_unsafe = allow_unsafe
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._process: subprocess.Popen[str] | None = None

    def _inject(self) -> None:
        check_path(self.path, action="lock", allow_unsafe=self.allow_unsafe)
        if self.holder == "thread":
            self._start_thread()
        else:
            self._start_process()

    def _heal(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._process is not None:
            proc, self._process = self._process, None
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()  # the holder's select() wakes up, it rolls back and exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a wedged holder
                proc.kill()
                proc.wait()
            proc.stdout.close()
            self.record("lock released", reason="healed", pid=proc.pid)

    # -- thread holder -------------------------------------------------------------
    def _start_thread(self) -> None:
        ready = threading.Event()
        outcome: dict[str, Any] = {}
        self._stop.clear()

        def hold() -> None:
            try:
                conn = self.module.connect(
                    self.path, timeout=self.acquire_timeout, isolation_level=None, check_same_thread=False
                )
            except self.module.Error as exc:
                outcome["error"] = exc
                ready.set()
                return
            try:
                try:
                    outcome["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
                    conn.execute(_BEGIN[self.mode])
                except self.module.Error as exc:
                    outcome["error"] = exc
                    ready.set()
                    return
                ready.set()
                healed = self._stop.wait(self.duration)
                conn.rollback()
                if not healed:
                    self.record("lock released", reason=f"duration {self.duration}s elapsed")
                else:
                    self.record("lock released", reason="healed")
            finally:
                conn.close()

        self._thread = threading.Thread(target=hold, name=f"dbfault-locked-{self.path.name}", daemon=True)
        self._thread.start()
        ready.wait()
        if "error" in outcome:
            self._thread.join()
            self._thread = None
            raise FaultError(f"LockedFault could not take its {self.mode} lock on {self.path}: "
                             f"{outcome['error']}") from outcome["error"]
        self.record("lock held", mode=self.mode, statement=_BEGIN[self.mode], holder="thread",
                    journal_mode=outcome["journal_mode"], path=str(self.path), duration=self.duration)

    # -- subprocess holder ---------------------------------------------------------
    def _start_process(self) -> None:
        duration = "" if self.duration is None else repr(float(self.duration))
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER_SCRIPT, str(self.path), _BEGIN[self.mode],
             str(self.acquire_timeout), duration],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout is not None and proc.stdin is not None
        # Bounded wait: python start-up plus the holder's own busy timeout.
        readable, _, _ = select.select([proc.stdout], [], [], self.acquire_timeout + 30)
        line = proc.stdout.readline().strip() if readable else ""
        if not line.startswith("locked"):
            proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()
            raise FaultError(f"LockedFault subprocess could not take its {self.mode} lock on {self.path}: "
                             f"{line or 'no answer from the holder process'}")
        self._process = proc
        self.record("lock held", mode=self.mode, statement=_BEGIN[self.mode], holder="subprocess",
                    pid=proc.pid, journal_mode=line.split()[1], path=str(self.path), duration=self.duration)


def arrange_busy_snapshot(victim: sqlite3.Connection, *, timeout: float = 1.0) -> dict[str, Any]:
    """Make ``victim``'s next write fail with 517/SQLITE_BUSY_SNAPSHOT (WAL databases only).

    The victim opens a read transaction (unless it already has one) and reads, pinning
    its snapshot; then a separate connection commits a no-op change (it rewrites
    ``PRAGMA user_version`` with its current value). Returns what was done. The victim's
    read transaction is left open: roll it back to recover, as an application must.
    """
    path = resolve_target(victim).need_path(BusySnapshotFault.name)
    mode = str(victim.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode != "wal":
        raise FaultError(f"busy_snapshot needs a WAL database, but {path} is in journal_mode={mode!r}; "
                         f"run PRAGMA journal_mode=WAL first or use busy_commit for rollback journals")
    opened = not victim.in_transaction
    if opened:
        victim.execute("BEGIN")
    victim.execute("SELECT count(*) FROM sqlite_schema").fetchall()  # pins the read snapshot
    bumper = dbapi_module(victim).connect(path, timeout=timeout, isolation_level=None)
    try:
        # One write transaction: a commit by another writer between the read and the write would be undone.
        bumper.execute("BEGIN IMMEDIATE")
        version = bumper.execute("PRAGMA user_version").fetchone()[0]
        bumper.execute(f"PRAGMA user_version = {int(version)}")  # a real commit that changes nothing
        bumper.execute("COMMIT")
    finally:
        bumper.close()
    return {"path": str(path), "victim_began_transaction": opened, "committed_by_other": "PRAGMA user_version"}


class BusySnapshotFault(Fault):
    """WAL: the victim's next write in its current transaction gets 517/SQLITE_BUSY_SNAPSHOT.

    :param target: the victim ``sqlite3.Connection`` (or a manager exposing one).
    :param rollback_on_heal: roll back the victim's transaction on :meth:`heal` if it is still open.
    """

    name = "busy_snapshot"

    def __init__(self, target: TargetLike, *, rollback_on_heal: bool = True, timeout: float = 1.0) -> None:
        super().__init__(target=target, rollback_on_heal=rollback_on_heal)
        self.target = resolve_target(target)
        if isinstance(target, (str, os.PathLike)):
            raise FaultError(
                f"fault 'busy_snapshot' acts on a live connection (the victim's own read snapshot goes stale), "
                f"but its target {os.fspath(target)!r} is only a path; pass the victim sqlite3.Connection or "
                f"DatabaseManager (WAL mode), e.g. dbfault.busy_snapshot(conn)")
        self.rollback_on_heal = rollback_on_heal
        self.timeout = timeout

    def _inject(self) -> None:
        victim = self.target.need_connection(self.name)
        self.record("snapshot made stale", **arrange_busy_snapshot(victim, timeout=self.timeout))

    def _heal(self) -> None:
        victim = self.target.connection
        if self.rollback_on_heal and victim is not None and victim.in_transaction:
            victim.rollback()
            self.record("victim transaction rolled back")


class BusyCommitFault(Fault):
    """Rollback journal: a reader holds SHARED, so the victim's COMMIT gets 5/SQLITE_BUSY.

    The victim's writes before COMMIT still succeed (they need only RESERVED); COMMIT
    needs EXCLUSIVE and fails after the victim's busy timeout, leaving its transaction
    open (``in_transaction`` stays True). After :meth:`heal` a retried COMMIT works.

    :param target: database path, connection or manager (only the path is used).
    """

    name = "busy_commit"

    def __init__(self, target: TargetLike, *, timeout: float = 1.0, allow_unsafe: bool = False) -> None:
        super().__init__(target=target)
        resolved = resolve_target(target)
        self.path: Path = resolved.need_path(self.name)
        self.module = resolved.module  # the victim's SQLite build: only its readers block its COMMIT
        self.timeout = timeout
        self.allow_unsafe = allow_unsafe
        self._reader: sqlite3.Connection | None = None

    def _inject(self) -> None:
        check_path(self.path, action="lock", allow_unsafe=self.allow_unsafe)
        mode = journal_mode(self.path, self.timeout, self.module)  # the victim's build: see journal_mode
        if mode == "wal":
            raise FaultError(f"busy_commit needs a rollback-journal database, but {self.path} is in WAL "
                             f"mode where readers never block COMMIT; use locked or busy_snapshot")
        reader = self.module.connect(self.path, timeout=self.timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_schema").fetchall()  # SHARED held until ROLLBACK
        except self.module.Error as exc:
            reader.close()
            raise FaultError(f"busy_commit could not start its reader on {self.path}: {exc}") from exc
        self._reader = reader
        self.record("shared lock held", path=str(self.path), journal_mode=mode)

    def _heal(self) -> None:
        if self._reader is not None:
            self._reader.rollback()
            self._reader.close()
            self._reader = None
            self.record("shared lock released")
