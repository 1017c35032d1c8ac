"""A durable redo journal of committed write transactions since the last verified backup.

Recovery restores the newest verified backup and replays this journal on top of it, so a
write the runtime acknowledged is not lost when the database file is damaged later.

How it plugs in (see ``DatabaseManager._wrote``): each statement that changed rows (or
DDL) is *captured* (an append to a list); after SQLite's COMMIT succeeded and before the
caller is told, :meth:`RedoJournal.commit` appends the transaction as one record with one
``write()`` call, then ``fdatasync`` when ``synchronous`` is FULL or EXTRA.

File format: a sequence of records, each a 12-byte frame (u32 little-endian: body length, the
length inverted, so a damaged length is never mistaken for a torn tail, and crc32 of the body)
and a body: a pickle (protocol 5) of plain values only (``int``, ``float``, ``str``,
``bytes``, ``bool``, ``None``, tuples, lists, dicts). The reader's unpickler resolves no class
but those constructors, so a journal can never make recovery run code. Records:

* header ``("redo", 2, B, from_empty)``: the journal continues from the backup whose recorded
  sequence is ``B`` (or from an empty database when ``from_empty``);
* entry ``(n, ops)`` with ``ops`` a list of ``(sql, params, many)``: one committed transaction;
* ``("closed", n)``: written by a clean close (its absence at open means a crash).

Why pickle and not JSON lines: it is the cheapest faithful encoding in the standard library for
SQLite's value types (bytes, floats incl. inf, big ints), and the journal is written on every
commit before the caller is told; benchmarks/README.md has the measurements.

Guarantee, honestly stated:

* synchronous FULL/EXTRA: the record is fsynced before the commit is acknowledged, so an
  acknowledged write survives a process crash *and* power loss (on storage that honours fsync).
* synchronous NORMAL/OFF: the record is written (in the OS page cache) before the ack, so
  it survives a process crash but **not** power loss or a kernel crash.
* Only writes made through this ``DatabaseManager`` are journaled; writes by other processes
  or made on ``db.connection`` directly are not. One manager per database file owns the
  journal (an exclusive ``flock``); a second one runs without a journal and says so.
* Replay re-executes the SQL: non-deterministic functions (``random()``, ``datetime('now')``,
  ``randomblob``) produce new values. Savepoints opened with raw ``SAVEPOINT`` SQL through
  ``db.execute`` are not tracked (use ``db.transaction()``, which is).
"""

from __future__ import annotations

import builtins
import io
import logging
import os
import pickle
import sqlite3
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX only; elsewhere two managers are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("reliability.redo")

_FORMAT = 2
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
        self._encoder = _Encoder()  # reused by commit(), which runs under the manager's lock

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
            except OSError:  # dbfault: no fault (a second manager owns the journal: ownership, not a fault)
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
            os.write(fd, _Encoder().record(("closed", self.seq)))
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
            os.write(fd, self._encoder.record((seq, pending)))
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
            os.write(fd, _Encoder().record(("redo", _FORMAT, base, from_empty)))
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
    """Parse a journal file.

    A torn tail (a crash mid-append, never acknowledged: a short or failing last record, or
    zero bytes to the end of the file as a power loss can leave) is ignored; a damaged record
    with data after it stops the read and is reported in ``problems``.
    """
    state = JournalState()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return state
    offset, end, number = 0, len(data), 0
    while offset < end:
        number += 1
        record, next_offset = _parse(data, offset)
        if record is None:
            if next_offset > end or not data[offset:].strip(b"\0"):
                break  # torn tail: the write never completed, so it was never acknowledged
            state.problems.append(f"redo journal {str(path)!r} record {number} (byte {offset}) is damaged; "
                                  "entries after it were not read")
            break
        offset = next_offset
        tag = record[0] if isinstance(record, tuple) and record else None
        if tag == "redo" and len(record) == 4:
            state.header = True
            state.base = int(record[2])
            state.from_empty = bool(record[3])
            state.last_seq = max(state.last_seq, state.base)
            state.clean = False
        elif tag == "closed":
            state.clean = True
        elif isinstance(tag, int) and len(record) == 2:
            seq = tag
            if seq <= state.last_seq and state.entries:
                state.problems.append(f"redo journal record {number}: sequence {seq} is not increasing")
                break
            state.entries.append((seq, list(record[1])))
            state.last_seq = seq
            state.clean = False
        else:
            state.problems.append(f"redo journal {str(path)!r} record {number} is not a journal record; "
                                  "entries after it were not read")
            break
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
# Body length, the same length inverted, crc32 of the body. The inverted copy tells a damaged
# length from a record cut short by a crash (only the latter is a torn tail to ignore).
_FRAME = struct.Struct("<III")
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, tuple, list, dict})
#: The only names a journal record may load: constructors of plain values (see _reduce_value).
_LOADABLE = {("builtins", name): getattr(builtins, name) for name in ("int", "float", "str", "bytes", "tuple", "dict")}
_CONSTRUCTORS = frozenset(_LOADABLE.values())


def _reduce_value(value: Any) -> Any:
    """Reduce a parameter pickle has no fast path for to a plain value.

    Mirrors how sqlite3 binds it: a registered adapter or ``__conform__`` first, then the
    int/float/str/bytes it subclasses; parameter containers become tuples and dicts.
    """
    # (The constructors below are pickled by name. Only a class can be one: hashing any value here
    # would fail on unhashable parameters such as an OrderedDict or a writable memoryview.)
    if type(value) in _PLAIN or (isinstance(value, type) and value in _CONSTRUCTORS):
        return NotImplemented
    adapted = sqlite3.adapt(value, sqlite3.PrepareProtocol, None)
    if adapted is not None and adapted is not value:
        if type(adapted) not in _PLAIN:
            raise TypeError(f"cannot journal a parameter of type {type(value).__name__}: its adapter "
                            f"returned a {type(adapted).__name__}")
        return type(adapted), (adapted,)
    for base in (int, float, str):
        if isinstance(value, base):
            return base, (base(value),)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes, (bytes(value),)
    if isinstance(value, (tuple, list)):
        return tuple, (tuple(value),)
    if isinstance(value, Mapping):
        return dict, (dict(value),)
    raise TypeError(f"cannot journal a parameter of type {type(value).__name__}")


class _Pickler(pickle.Pickler):
    # Called only for objects that are not plain values (pickle's fast paths skip it), so the
    # common case costs nothing extra.
    def reducer_override(self, obj: Any) -> Any:
        return _reduce_value(obj)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _LOADABLE[(module, name)]
        except KeyError:  # dbfault: no fault (a forged record: damage fails the crc32 before unpickling)
            raise pickle.UnpicklingError(f"a redo journal record names {module}.{name}, "
                                         "which is not a plain value") from None


class _Encoder:
    """Frames records; one pickler reused (a fresh one per record costs twice as much)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._pickler = _Pickler(self._buf, 5)

    def record(self, record: Any) -> bytes:
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._pickler.clear_memo()
        self._pickler.dump(record)
        body = buf.getvalue()
        n = len(body)
        return _FRAME.pack(n, n ^ 0xFFFFFFFF, zlib.crc32(body)) + body


def _parse(data: bytes, offset: int) -> tuple[Any, int]:
    """The record at ``offset`` and where the next one starts.

    A damaged record gives ``(None, end)``, with ``end`` past the end of ``data`` when the
    record is incomplete (its header intact but its body cut short, or the header itself cut).
    """
    head_end = offset + _FRAME.size
    if head_end > len(data):
        return None, head_end
    length, inverted, crc = _FRAME.unpack_from(data, offset)
    if length ^ 0xFFFFFFFF != inverted or length == 0:
        return None, head_end  # a damaged header: where the record ends is unknown
    end = head_end + length
    if end > len(data):
        return None, end
    body = data[head_end:end]
    if zlib.crc32(body) != crc:
        return None, end
    try:
        return _Unpickler(io.BytesIO(body)).load(), end
    except Exception:  # noqa: BLE001  # dbfault: no fault (a forged record: damage fails the crc32 first)
        return None, end


def _datasync(fd: int) -> None:
    # SQLite itself uses fdatasync: the data and size matter, not the timestamps.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS / Windows
        os.fsync(fd)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename or create in it is durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # dbfault: no fault (platform cannot open a directory; callers just wrote in it)
        return
    try:
        os.fsync(fd)
    except OSError:  # dbfault: no fault (file system without directory fsync: a platform trait)
        pass
    finally:
        os.close(fd)
