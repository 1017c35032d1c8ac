"""SQLite's write lock on the database, held from a helper process when this process cannot take it.

Recovery fences writers out while it plans and installs (``recovery.writers_fenced``). In one case this
process cannot take that lock however long it waits: its ``-wal`` and ``-shm`` were removed under it,
another process opened the database since (a new ``-shm``), and this process still holds a handle on the
removed WAL (the parked handle, or a second manager's). SQLite shares one WAL index per database file
within a process, so every new connection here maps the removed ``-shm`` and fails with a disk I/O error
(found by the data-loss machine's ``remove_wal_live``). Another process maps the ``-shm`` at the path and
takes the lock like any writer, so recovery asks one to hold it.

The helper holds ``BEGIN IMMEDIATE`` until its stdin closes, then rolls back and exits. Its close after
an install is harmless: SQLite checkpoints and deletes a WAL on close only while the database file is still
at its path, and after an install the path names the new file.
"""

from __future__ import annotations

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
