"""Helper processes for a recovery in a process that reads the database through a removed WAL's index.

In one case this process cannot use the database file at its path with a connection of its own: its ``-wal``
(and maybe its ``-shm``) was removed under it, another process opened the database since (a new ``-wal`` and
``-shm``), and this process still holds a handle on the removed WAL (the parked handle, or a second manager's).
SQLite shares one WAL index per database file within a process, so every new connection here maps the removed
index onto the new ``-wal`` (``ConnectionManager.reads_through_removed_index``). Another process maps the
``-shm`` at the path and sees the file as it is, so recovery asks one.

:class:`OutsideFence` holds SQLite's write lock. Recovery fences writers out while it plans and installs
(``recovery.writers_fenced``); here this process cannot take that lock however long it waits (its fence
connection fails with a disk I/O error; found by the data-loss machine's ``remove_wal_live``). The helper holds
``BEGIN IMMEDIATE`` until its stdin closes, then rolls back and exits. Its close after an install is harmless:
SQLite checkpoints and deletes a WAL on close only while the database file is still at its path, and after an
install the path names the new file.

:func:`committed_outside` reads the redo sequence registry of the damaged file. Read here, it may come back
without an error and wrong: the index maps the registry's page to a frame of the new ``-wal`` that holds another
page, whose rows then read as slots and sequences (found by the data-loss machine: a user table's rows named
journal slots 1-4 that never existed, and recovery reported their journals missing).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("reliability.recovery")

_HOLDER = r"""
import importlib, pathlib, sys
name, path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
module = importlib.import_module(name)
module = getattr(module, "dbapi2", module) if not hasattr(module, "connect") else module
try:
    conn = module.connect(pathlib.Path(path).resolve().as_uri() + "?mode=rw", uri=True, timeout=timeout,
                          isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
except module.Error as exc:
    print("error", exc, flush=True)
    sys.exit(1)
print("held", flush=True)
sys.stdin.read()
conn.rollback()
conn.close()
"""


class OutsideFence:
    """A helper process holding SQLite's write lock on ``path`` (see the module docstring); made by :meth:`take`.

    :param proc: the helper, which has said it holds the lock.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    @classmethod
    def take(cls, path: str, module: str, timeout: float) -> OutsideFence | None:
        """Start a helper that takes the write lock on ``path``; None (said in the log) when it could not.

        :param module: the name of the SQLite build (``config.sqlite_module``): the helper takes the lock
            through the same library as the writers it fences out.
        :param timeout: how long the helper waits for writers to finish (the runtime's busy timeout).
        """
        proc = subprocess.Popen([sys.executable, "-c", _HOLDER, module, str(Path(path)), str(timeout)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        fence = cls(proc)
        if line == "held":
            return fence
        fence.release()
        log.warning("a helper process could not fence writers out of %s either: %s", path,
                    line or f"it exited with {proc.returncode}")
        return None

    def release(self) -> None:
        """Let the helper roll back and exit; wait for it."""
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.communicate("", timeout=30)
            except subprocess.TimeoutExpired:  # dbfault: no fault (a helper stuck in its own close)
                proc.kill()
                proc.wait()


_REGISTRY_READER = r"""
import importlib, json, os, pathlib, sys
name, path, timeout, table = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
module = importlib.import_module(name)
module = getattr(module, "dbapi2", module) if not hasattr(module, "connect") else module
try:
    conn = module.connect(pathlib.Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=timeout)
    rows = conn.execute(f"SELECT slot, seq FROM {table}").fetchall()
    print(json.dumps([[int(s), int(q)] for s, q in rows]), flush=True)
except Exception as exc:
    print("error", exc, flush=True)
os._exit(0)  # never closed: nothing a close might checkpoint or delete
"""


def committed_outside(path: str, module: str, timeout: float) -> dict[int, int] | None:
    """:func:`~reliability.redo.read_committed` of ``path`` as another process reads it (None when it cannot
    say: unreadable, no registry, or a lock that outlasted ``timeout``; said in the log).

    :param module: the name of the SQLite build (``config.sqlite_module``).
    """
    from ..redo import WRITERS_TABLE

    try:
        done = subprocess.run([sys.executable, "-c", _REGISTRY_READER, module, str(Path(path)), str(timeout),
                               WRITERS_TABLE], capture_output=True, text=True, timeout=timeout + 60)
    except (OSError, subprocess.TimeoutExpired) as exc:  # dbfault: no fault (no helper process: cannot say)
        log.warning("a helper process could not read the redo sequences of %s: %s", path, exc)
        return None
    line = done.stdout.strip()
    if not line.startswith("["):
        log.warning("a helper process could not read the redo sequences of %s: %s", path,
                    line or done.stderr.strip()[-500:] or f"it exited with {done.returncode}")
        return None
    return {int(slot): int(seq) for slot, seq in json.loads(line)}
