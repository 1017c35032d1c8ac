"""A durable redo journal of committed write transactions since the last verified backup.

Recovery restores the newest verified backup and replays this journal on top of it, so a
write the runtime acknowledged is not lost when the database file is damaged later.

How it plugs in (see ``DatabaseManager._wrote``): each statement that changed rows (or
DDL) is *captured* (an append to a list); after SQLite's COMMIT succeeded and before the
caller is told, :meth:`RedoJournal.commit` writes the transaction as one line with one
``write()`` call, then ``fdatasync`` when ``synchronous`` is FULL or EXTRA.

File format, one record per line, each ``<crc32 hex> <json>``:

* header ``{"redo": 1, "base": B, "from_empty": bool}``: the journal continues from the
  backup whose recorded sequence is ``B`` (or from an empty database when ``from_empty``);
* entry ``{"seq": n, "ops": [[sql, params, many], ...]}``: one committed transaction;
* ``{"closed": n}``: written by a clean close (its absence at open means a crash).

Guarantee, honestly stated:

* synchronous FULL/EXTRA: the line is fsynced before the commit is acknowledged, so an
  acknowledged write survives a process crash *and* power loss (on storage that honours fsync).
* synchronous NORMAL/OFF: the line is written (in the OS page cache) before the ack, so
  it survives a process crash but **not** power loss or a kernel crash.
* Only writes made through this ``DatabaseManager`` are journaled; writes by other processes
  or made on ``db.connection`` directly are not. One manager per database file owns the
  journal (an exclusive ``flock``); a second one runs without a journal and says so.
* Replay re-executes the SQL: non-deterministic functions (``random()``, ``datetime('now')``,
  ``randomblob``) produce new values. Savepoints opened with raw ``SAVEPOINT`` SQL through
  ``db.execute`` are not tracked (use ``db.transaction()``, which is).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX only; elsewhere two managers are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("reliability.redo")

_BYTES_KEY = "$b64"
_STATEMENT_KINDS: dict[str, str] = {}  # sql text -> "ddl" | "commit" | "rollback" | "other"
_DDL_WORDS = ("CREATE", "DROP", "ALTER")


@dataclass
class JournalState:
    """What :func:`read_journal` found in a journal file."""

    base: int = 0
    from_empty: bool = False
    entries: list[tuple[int, list[Any]]] = field(default_factory=list)
    last_seq: int = 0
    clean: bool = False
    header: bool = False
    problems: list[str] = field(default_factory=list)


class RedoJournal:
    """The redo journal of one database (the ``db._redo`` hook object).

    :param path: the journal file (``config.redo_journal_file``).
    :param fsync: fsync each committed transaction before acknowledging it (synchronous FULL/EXTRA).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.seq = 0
        self.base = 0
        self.from_empty = False
        #: The file ended without a clean-close record when opened: a crash happened.
        self.was_clean = False
        #: Why the journal stopped protecting writes (a failed write), or None.
        self.error: str | None = None
        self.owned = False
        self._fd: int | None = None
        self._pending: list[tuple[str, Any, bool]] = []
        self._marks: dict[int, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> JournalState:
        """Read the existing journal (if any), take ownership, position for appends."""
        state = read_journal(self.path)
        self.seq = state.last_seq
        self.base = state.base
        self.from_empty = state.from_empty
        self.was_clean = state.clean
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self.error = (f"another DatabaseManager owns the redo journal {str(self.path)!r}; "
                              "writes made through this one are not journaled")
                log.warning("%s", self.error)
                return state
        self._fd = fd
        self.owned = True
        if not state.header:
            # A new (or headerless) journal: the caller anchors it with reset() right away.
            self.error = None
        return state

    def close(self) -> None:
        """Write the clean-close record and release the journal."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, _line({"closed": self.seq}))
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            log.warning("could not mark the redo journal closed: %s", exc)
        finally:
            os.close(fd)
            self.owned = False

    # -- the hook API (called under the manager's lock) ----------------------------------------
    def capture(self, sql: str, params: Any, many: bool) -> None:
        """A write statement ran inside the current transaction."""
        self._pending.append((sql, params, many))

    def commit(self) -> None:
        """The captured writes are committed: append them as one entry (and fsync) before returning."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._marks.clear()
        fd = self._fd
        if fd is None or self.error is not None:
            return  # not ours, or already broken: the next verified backup re-anchors it
        seq = self.seq + 1
        try:
            os.write(fd, _line({"seq": seq, "ops": [[sql, params, many] for sql, params, many in pending]}))
            if self.fsync:
                _datasync(fd)
        except Exception as exc:
            # The commit already happened in SQLite; raising now would make callers retry a
            # write that succeeded. Record the gap instead: health turns degraded until the
            # next verified backup covers it.
            self.error = f"redo journal write failed at seq {seq}: {exc}"
            log.error("%s; writes are unprotected until the next verified backup", self.error)
            return
        self.seq = seq

    def discard(self) -> None:
        """The transaction rolled back: forget what it captured."""
        self._pending.clear()
        self._marks.clear()

    def savepoint(self, level: int) -> None:
        """A savepoint at nesting ``level`` began: remember where its writes start."""
        self._marks[level] = len(self._pending)

    def rollback_savepoint(self, level: int) -> None:
        """The savepoint at ``level`` rolled back: drop the writes captured since it began."""
        mark = self._marks.pop(level, None)
        if mark is not None:
            del self._pending[mark:]

    @property
    def pending(self) -> int:
        """Captured statements not yet committed."""
        return len(self._pending)

    # -- anchoring -----------------------------------------------------------------------------
    def reset(self, base: int, *, from_empty: bool = False) -> None:
        """Start a new journal continuing from sequence ``base`` (a verified backup covers up to it).

        Written to a temporary file, fsynced and renamed over the old one, so a crash leaves
        either the old journal or the new one.
        """
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _line({"redo": 1, "base": base, "from_empty": from_empty}))
            os.fsync(fd)
        finally:
            os.close(fd)
        old = self._fd
        new_fd = os.open(tmp, os.O_WRONLY | os.O_APPEND)
        if fcntl is not None:
            try:
                fcntl.flock(new_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # pragma: no cover - nobody else can know the .tmp name yet
                pass
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._fd = new_fd
        self.owned = True
        if old is not None:
            os.close(old)
        self.base = base
        self.seq = max(self.seq, base)
        self.from_empty = from_empty
        self.error = None

    def size(self) -> int:
        """Bytes in the journal file (0 when absent)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


# -- reading -----------------------------------------------------------------------------------
def read_journal(path: str | os.PathLike[str]) -> JournalState:
    """Parse a journal file. A torn last line (a crash mid-write, never acknowledged) is ignored;
    a damaged line elsewhere stops the read and is reported in ``problems``."""
    state = JournalState()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return state
    lines = data.split(b"\n")
    last_index = len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw:
            continue
        record = _parse(raw)
        if record is None:
            if i == last_index:
                break  # torn tail without its newline: the write never completed, never acknowledged
            state.problems.append(f"redo journal {str(path)!r} line {i + 1} is damaged; entries after it "
                                  f"were not read")
            break
        if "redo" in record:
            state.header = True
            state.base = int(record.get("base", 0))
            state.from_empty = bool(record.get("from_empty", False))
            state.last_seq = max(state.last_seq, state.base)
            state.clean = False
        elif "seq" in record:
            seq = int(record["seq"])
            if seq <= state.last_seq and state.entries:
                state.problems.append(f"redo journal line {i + 1}: sequence {seq} is not increasing")
                break
            state.entries.append((seq, record["ops"]))
            state.last_seq = seq
            state.clean = False
        elif "closed" in record:
            state.clean = True
    return state


def iter_statements(ops: list[Any]) -> Iterator[tuple[str, Any, bool]]:
    """``(sql, params, many)`` of one journal entry, parameters decoded."""
    for sql, params, many in ops:
        yield sql, params, bool(many)


def statement_kind(sql: str) -> str:
    """``"ddl"``, ``"commit"``, ``"rollback"`` or ``"other"`` for a statement that changed no rows.

    Cached per SQL text (the manager calls this only for non-queries that changed no rows).
    """
    kind = _STATEMENT_KINDS.get(sql)
    if kind is None:
        words = _strip_comments(sql).split(None, 2)
        first = words[0].upper() if words else ""
        second = words[1].upper() if len(words) > 1 else ""
        if first in _DDL_WORDS or (first == "REINDEX") or (first == "ANALYZE"):
            kind = "ddl"
        elif first in ("COMMIT", "END"):
            kind = "commit"
        elif first == "ROLLBACK" and second != "TO":
            kind = "rollback"
        else:
            kind = "other"
        if len(_STATEMENT_KINDS) > 4096:
            _STATEMENT_KINDS.clear()
        _STATEMENT_KINDS[sql] = kind
    return kind


def _strip_comments(sql: str) -> str:
    out = []
    for line in sql.strip().splitlines():
        code = line.split("--", 1)[0]
        if code.strip():
            out.append(code)
    return " ".join(out)


# -- encoding ----------------------------------------------------------------------------------
def _line(record: dict[str, Any]) -> bytes:
    # One encoder for the process: json.dumps with options builds a new one per call (a
    # measurable share of each journaled write, benchmarks/README.md).
    body = _ENCODER.encode(record).encode("utf-8")
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def _parse(raw: bytes) -> dict[str, Any] | None:
    if len(raw) < 10 or raw[8:9] != b" ":
        return None
    body = raw[9:]
    try:
        if int(raw[:8], 16) != zlib.crc32(body):
            return None
        return json.loads(body, object_hook=_decode_object)
    except ValueError:
        return None


def _encode_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    # Registered adapters / __conform__ give the value SQLite stored: journal that.
    adapted = sqlite3.adapt(value, sqlite3.PrepareProtocol, None)
    if adapted is None or adapted is value:
        raise TypeError(f"cannot journal a parameter of type {type(value).__name__}")
    return adapted


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_encode_value)

def _datasync(fd: int) -> None:
    # SQLite itself uses fdatasync: the data and size matter, not the timestamps.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS / Windows
        os.fsync(fd)


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _BYTES_KEY in obj:
        return base64.b64decode(obj[_BYTES_KEY])
    return obj


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename or create in it is durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
