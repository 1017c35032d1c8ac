"""Reads, writes and copies of a live database done by another process, as an outside program would do them.

SQLite locks a database with POSIX (``fcntl``) locks, and those belong to the *process* and the file,
not to a descriptor: when a process closes any descriptor of the file, every lock it holds on it is
gone, and SQLite does not notice. A fault that damaged or copied the database with a plain
``open()``/``close()`` in the process under test would therefore also release the locks of that
process's connections: a reader's SHARED lock, a writer's RESERVED lock, a WAL connection's lifelong
SHARED lock. Another process could then write under the reader or checkpoint and delete the WAL
under the writer, a second fault nobody asked for and one the fault's real counterpart (a disk error,
another program writing the file) never causes, since another process's close drops only its own locks.

So every such file access goes to one helper process (started on first use, one per process that
uses it, gone when that process exits), and so do the SQL look-ups a fault makes on the way (a
checkpoint, a table's root page): they then take and release their locks as the outside process
would, and never as a second copy of SQLite in this process, whose locks the connections under test
would not see.

Example::

    from pytest_dbfault.faults import outside

    header = outside.read_bytes("app.db", 0, 100)
    outside.write_bytes("app.db", 16, b"\\x00\\x03")   # damage the page size, the app's locks kept
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from typing import Any

from .base import FaultError

#: The helper: one JSON request per line on stdin, one JSON reply per line on stdout; it ends at EOF.
_HELPER = r"""
import json, os, pathlib, shutil, sqlite3, sys

def connect(path, ro):
    uri = pathlib.Path(path).resolve().as_uri() + ("?mode=ro" if ro else "")
    return sqlite3.connect(uri, uri=True, timeout=1.0, isolation_level=None)

def serve(req):
    op, path = req["op"], req["path"]
    if op == "read":
        with open(path, "rb") as fh:
            fh.seek(req["offset"])
            return {"data": fh.read(req["length"]).hex()}
    if op == "write":
        with open(path, "r+b") as fh:
            fh.seek(req["offset"])
            fh.write(bytes.fromhex(req["data"]))
        return {}
    if op == "copy":
        shutil.copyfile(path, req["to"])
        return {}
    if op == "sql":
        conn = connect(path, req["ro"])
        try:
            return {"rows": [list(r) for r in conn.execute(req["sql"], req["params"]).fetchall()]}
        finally:
            conn.close()
    raise ValueError("unknown op " + op)

for line in sys.stdin:
    req = json.loads(line)
    try:
        reply = serve(req)
    except OSError as exc:
        reply = {"oserror": [exc.errno or 0, exc.strerror or str(exc)]}
    except sqlite3.Error as exc:
        reply = {"sqlerror": str(exc)}
    except Exception as exc:
        reply = {"error": type(exc).__name__ + ": " + str(exc)}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""

_lock = threading.Lock()
_helper: subprocess.Popen[str] | None = None
_owner = 0


class OutsideSQLError(FaultError):
    """SQLite refused a look-up the helper process made (the file is not a database, a lock outlasted 1 s...)."""


def _start() -> subprocess.Popen[str]:
    global _helper, _owner
    # -I -S: the helper needs the standard library only, and no site or environment hooks of the tests.
    _helper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _HELPER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, bufsize=1, close_fds=True)
    _owner = os.getpid()
    return _helper


def _call(request: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        helper = _helper
        # A forked child has its parent's helper object (and pipes): it starts its own.
        if helper is None or _owner != os.getpid() or helper.poll() is not None:
            helper = _start()
        assert helper.stdin is not None and helper.stdout is not None
        try:
            helper.stdin.write(json.dumps(request) + "\n")
            helper.stdin.flush()
            line = helper.stdout.readline()
        except OSError as exc:  # dbfault: no fault (the helper died: say so, never guess)
            raise FaultError(f"the file helper process failed: {exc}") from exc
    if not line:
        raise FaultError(f"the file helper process ended (exit {helper.poll()}) during {request['op']} "
                         f"of {request['path']}")
    reply: dict[str, Any] = json.loads(line)
    if "oserror" in reply:
        code, text = reply["oserror"]
        raise OSError(code, text, request["path"])
    if "sqlerror" in reply:
        raise OutsideSQLError(reply["sqlerror"])
    if "error" in reply:
        raise FaultError(f"the file helper process could not {request['op']} {request['path']}: {reply['error']}")
    return reply


def read_bytes(path: str | os.PathLike[str], offset: int, length: int) -> bytes:
    """Up to ``length`` bytes of ``path`` from ``offset``, read by the helper process."""
    return bytes.fromhex(_call({"op": "read", "path": os.fspath(path), "offset": offset, "length": length})["data"])


def write_bytes(path: str | os.PathLike[str], offset: int, data: bytes) -> None:
    """Overwrite ``data`` at ``offset`` of ``path`` in place (same inode), from the helper process."""
    _call({"op": "write", "path": os.fspath(path), "offset": offset, "data": data.hex()})


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """``shutil.copyfile(src, dst)`` run by the helper process (``dst`` is overwritten in place when it exists)."""
    _call({"op": "copy", "path": os.fspath(src), "to": os.fspath(dst)})


def query(path: str | os.PathLike[str], sql: str, params: tuple[Any, ...] = (), *, ro: bool = True) -> list[list[Any]]:
    """Rows of ``sql`` on the database at ``path``, run by the helper process on a fresh connection
    (``mode=ro`` unless ``ro`` is False). :raises OutsideSQLError: SQLite refused it."""
    return list(_call({"op": "sql", "path": os.fspath(path), "sql": sql, "params": list(params), "ro": ro})["rows"])


@atexit.register
def _stop() -> None:
    helper = _helper
    if helper is not None and _owner == os.getpid() and helper.poll() is None:
        try:
            assert helper.stdin is not None
            helper.stdin.close()  # EOF: the helper ends
            helper.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):  # dbfault: no fault (exit cleanup of a helper)
            helper.kill()
