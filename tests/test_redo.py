"""The redo journal's file format: every SQLite value type survives, damage is told from a torn tail,
and a forged record cannot make recovery run code."""

from __future__ import annotations

import enum
import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import pytest

from reliability.redo import RedoJournal, read_journal


class Colour(enum.IntEnum):
    RED = 1


class Point:
    """A parameter sqlite3 binds through ``__conform__``."""

    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __conform__(self, protocol: object) -> str:
        return f"{self.x};{self.y}"


class Opaque:
    """Nothing sqlite3 can bind."""


def journal(tmp_path: Path) -> RedoJournal:
    j = RedoJournal(tmp_path / "db.redo", fsync=False)
    j.open()
    j.reset(0, from_empty=True)
    return j


def commit(j: RedoJournal, sql: str, params: object, many: bool = False) -> None:
    j.capture(sql, params, many)
    j.commit()


def test_every_value_sqlite_stores_reads_back_exactly(tmp_path):
    values = (None, 0, -(2**63), 2**63 - 1, 1.5, float("inf"), -0.0, "", "naïve\n\x00 ☃", b"\x00\xff",
              bytearray(b"ba"), memoryview(b"mv"), True)
    j = journal(tmp_path)
    commit(j, "INSERT INTO t VALUES (?)", values)
    commit(j, "INSERT INTO t VALUES (:a, :b)", {"a": Colour.RED, "b": Point(1.0, 2.5)})
    commit(j, "INSERT INTO t VALUES (?)", [(1,), (2,)], many=True)
    j.close()
    state = read_journal(j.path)
    assert state.clean and not state.problems and state.from_empty
    (seq1, ops1), (seq2, ops2), (seq3, ops3) = state.entries
    assert (seq1, seq2, seq3) == (1, 2, 3)
    sql, params, many = ops1[0]
    assert sql == "INSERT INTO t VALUES (?)" and many is False
    # A memoryview is journaled as the bytes it shows (pickle keeps a bytearray as one: same blob).
    expected = tuple(bytes(v) if isinstance(v, memoryview) else v for v in values)
    assert params == expected
    assert [type(p) for p in params] == [type(e) for e in expected]
    assert ops2[0][1] == {"a": 1, "b": "1.0;2.5"} and type(ops2[0][1]["a"]) is int
    assert ops3[0][1] == [(1,), (2,)] and ops3[0][2] is True


def test_a_parameter_nothing_can_bind_stops_the_journal_with_a_reason(tmp_path):
    j = journal(tmp_path)
    commit(j, "INSERT INTO t VALUES (?)", (Opaque(),))
    assert j.error is not None and "Opaque" in j.error
    commit(j, "INSERT INTO t VALUES (?)", (1,))  # not journaled: the gap is not papered over
    j.close()
    assert read_journal(j.path).entries == []


def test_a_forged_record_naming_a_callable_is_refused_without_running_it(tmp_path):
    j = journal(tmp_path)
    commit(j, "INSERT INTO t VALUES (?)", (1,))
    j.close()
    marker = tmp_path / "ran"
    body = pickle.dumps(_Call(f"touch {marker}"), 5)
    with open(j.path, "ab") as f:  # a well-formed frame: only the unpickler can refuse it
        f.write(struct.pack("<III", len(body), len(body) ^ 0xFFFFFFFF, zlib.crc32(body)) + body)
        f.write(b"\x01" * 20)  # more data after it: a damaged record, not a torn tail
    state = read_journal(j.path)
    assert not marker.exists()
    assert len(state.entries) == 1
    assert state.problems and "record 4" in state.problems[0]


class _Call:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


@pytest.mark.parametrize("cut", ["mid-body", "mid-frame", "zero-tail"])
def test_a_record_cut_short_by_a_crash_is_a_torn_tail_not_damage(tmp_path, cut):
    j = journal(tmp_path)
    commit(j, "INSERT INTO t VALUES (?)", (1,))
    size = j.path.stat().st_size
    commit(j, "INSERT INTO t VALUES (?)", ("x" * 100,))
    data = j.path.read_bytes()
    j.close()
    if cut == "mid-body":
        data = data[:-40]
    elif cut == "mid-frame":
        data = data[:size + 5]
    else:  # a power loss can leave the new size with zeros where the data never landed
        data = data[:size] + b"\x00" * (len(data) - size)
    j.path.write_bytes(data)
    state = read_journal(j.path)
    assert [seq for seq, _ in state.entries] == [1] and not state.problems and not state.clean


def test_a_damaged_length_mid_file_is_reported_not_taken_for_a_torn_tail(tmp_path):
    j = journal(tmp_path)
    first_at = j.path.stat().st_size
    for i in range(3):
        commit(j, "INSERT INTO t VALUES (?)", (i,))
    j.close()
    data = bytearray(j.path.read_bytes())
    data[first_at] ^= 0x40  # the length of entry 1 now points far past the end of the file
    j.path.write_bytes(bytes(data))
    state = read_journal(j.path)
    assert state.entries == []
    assert state.problems and "record 2" in state.problems[0]


def test_the_reader_accepts_only_plain_value_constructors():
    from reliability.redo import _Unpickler

    assert _Unpickler(io.BytesIO(pickle.dumps((Colour.RED.__int__(), b"x"), 5))).load() == (1, b"x")
    with pytest.raises(pickle.UnpicklingError, match="not a plain value"):
        _Unpickler(io.BytesIO(pickle.dumps(Colour.RED, 5))).load()
