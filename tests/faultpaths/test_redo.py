"""The redo journal meeting real faults: a full disk under its open file, the file deleted under it."""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict
from types import MappingProxyType

import pytest

from pytest_dbfault.faults import DisconnectFault, FileFullFault
from reliability import redo as redo_module
from reliability.redo import RedoJournal, _Encoder, fsync_dir, read_journal, statement_kind

INSERT = ("INSERT INTO t (v) VALUES (?)", ("x",), False)


@pytest.fixture
def journal(tmp_path):
    redo = RedoJournal(tmp_path / "app.db.redo", fsync=True)
    redo.open()
    redo.reset(0, from_empty=True)
    yield redo
    redo.close()


def commit_one(redo: RedoJournal) -> None:
    redo.capture(*INSERT)
    redo.commit()


def test_a_full_disk_during_a_commit_records_the_gap_and_keeps_what_was_written(journal):
    commit_one(journal)
    with FileFullFault(journal.path):
        commit_one(journal)
    assert journal.error is not None and journal.error.startswith("redo journal write failed at seq 2")
    assert "No space left on device" in journal.error
    assert journal.seq == 1
    commit_one(journal)  # broken until a verified backup re-anchors it: nothing half-written
    state = read_journal(journal.path)
    assert [seq for seq, _ in state.entries] == [1] and not state.problems
    journal.reset(1)
    assert journal.error is None
    commit_one(journal)
    assert [seq for seq, _ in read_journal(journal.path).entries] == [2]


def test_a_full_disk_at_close_leaves_the_journal_marked_as_crashed(tmp_path, caplog):
    redo = RedoJournal(tmp_path / "app.db.redo", fsync=True)
    redo.open()
    redo.reset(0, from_empty=True)
    commit_one(redo)
    with FileFullFault(redo.path), caplog.at_level(logging.WARNING, "reliability.redo"):
        redo.close()
    assert "could not mark the redo journal closed" in caplog.text
    assert not redo.owned
    state = read_journal(redo.path)
    assert not state.clean and [seq for seq, _ in state.entries] == [1]


def test_the_size_of_a_journal_deleted_under_it_is_zero(journal):
    commit_one(journal)
    assert journal.size() > 0
    with DisconnectFault(journal.path, mode="delete"):
        assert journal.size() == 0


def write_records(path, *records) -> None:
    encoder = _Encoder()
    with open(path, "wb") as f:
        for record in records:
            f.write(encoder.record(record))


def test_a_journal_whose_sequence_goes_backwards_stops_there_and_says_so(tmp_path):
    path = tmp_path / "app.db.redo"
    write_records(path, ("redo", 2, 0, True), (1, [INSERT]), (2, [INSERT]), (2, [INSERT]), (3, [INSERT]))
    state = read_journal(path)
    assert [seq for seq, _ in state.entries] == [1, 2]
    assert state.problems == ["redo journal record 4: sequence 2 is not increasing"]


def test_a_record_that_is_no_journal_record_stops_the_read_and_is_named(tmp_path):
    path = tmp_path / "app.db.redo"
    write_records(path, ("redo", 2, 0, True), (1, [INSERT]), ["not", "a", "record"], (2, [INSERT]))
    state = read_journal(path)
    assert [seq for seq, _ in state.entries] == [1]
    assert state.problems == [f"redo journal {str(path)!r} record 3 is not a journal record; "
                              "entries after it were not read"]
    assert [(sql, params, bool(many)) for sql, params, many in state.entries[0][1]] == [INSERT]


def test_savepoint_bookkeeping_drops_only_what_the_rolled_back_savepoint_captured(tmp_path):
    redo = RedoJournal(tmp_path / "app.db.redo")
    redo.reset(0, from_empty=True)  # before open(): anchors a fresh journal by itself
    try:
        redo.capture(*INSERT)
        redo.savepoint(1)
        redo.capture("DELETE FROM t", (), False)
        redo.rollback_savepoint(2)  # never began: nothing to drop
        assert redo.pending == 2
        redo.rollback_savepoint(1)
        assert redo.pending == 1
    finally:
        redo.close()


class Meters(float):
    """A float subclass with no adapter: journaled as the float sqlite3 binds."""


class Tags(list):
    pass


class Unbindable:
    pass


def test_parameters_are_journaled_as_the_plain_values_sqlite_binds(tmp_path):
    sqlite3.register_adapter(Unbindable, lambda v: Unbindable())
    try:
        with pytest.raises(TypeError, match="its adapter returned a Unbindable"):
            _Encoder().record((1, [("INSERT INTO t VALUES (?)", (Unbindable(),), False)]))
    finally:
        del sqlite3.adapters[(Unbindable, sqlite3.PrepareProtocol)]
    path = tmp_path / "app.db.redo"
    write_records(path, ("redo", 2, 0, True),
                  (1, [("INSERT INTO t VALUES (?, ?)", Tags([Meters(1.5), "a"]), False),
                       ("INSERT INTO t VALUES (:a)", MappingProxyType({"a": 2}), False)]))
    ops = read_journal(path).entries[0][1]
    assert ops[0][1] == (1.5, "a") and type(ops[0][1][0]) is float
    assert ops[1][1] == {"a": 2}


def test_the_statement_kind_cache_stays_bounded_and_ignores_comments():
    assert statement_kind("-- a comment line\nCREATE TABLE x (id)") == "ddl"
    for i in range(4200):
        statement_kind(f"SELECT {i}")
    assert len(redo_module._STATEMENT_KINDS) <= 4097


def test_fsync_dir_is_a_no_op_where_the_directory_cannot_be_opened_or_synced(tmp_path):
    fsync_dir(tmp_path / "missing")  # no such directory: nothing to sync
    fsync_dir("/dev/full")  # opens, but refuses fsync (EINVAL), like a file system without directory fsync


def test_unhashable_parameters_are_journaled_instead_of_breaking_the_journal(tmp_path):
    # Regression: the constructor check hashed every parameter, so an OrderedDict or a writable
    # memoryview raised TypeError in commit() and stopped journaling until the next backup.
    redo = RedoJournal(tmp_path / "app.db.redo")
    redo.open()
    redo.reset(0, from_empty=True)
    try:
        redo.capture("INSERT INTO t (a, b) VALUES (:a, :b)", OrderedDict(a=1, b=memoryview(bytearray(b"xy"))), False)
        redo.capture("INSERT INTO t (a) VALUES (?)", Tags([2]), False)
        redo.commit()
        assert redo.error is None and redo.seq == 1
    finally:
        redo.close()
    ops = read_journal(tmp_path / "app.db.redo").entries[0][1]
    assert ops[0][1] == {"a": 1, "b": b"xy"} and ops[1][1] == (2,)


@pytest.mark.parametrize(("sql", "kind"), [
    ("WITH gone(k) AS (SELECT 1) DELETE FROM t WHERE k IN gone", "dml"),
    ("with recursive c(x) as (select 1 union all select x + 1 from c limit 3) select * from c", "other"),
    ('WITH "update" AS (SELECT 1) SELECT * FROM "update"', "other"),
    ("WITH a AS MATERIALIZED (SELECT ')') REPLACE INTO t SELECT * FROM a", "dml"),
    ("WITH a AS (VALUES (1)) VALUES (2)", "other"),
    ("/* by the app */ DELETE FROM t", "dml"),
    ("-- by the app\nUPDATE t SET a = 1", "dml"),
    ("INSERT INTO t VALUES ('it''s -- (')", "dml"),
    ("ROLLBACK TO sp", "other"),
    ("/**/ROLLBACK", "rollback"),
    ("end", "commit"),
    ("", "other"),
])
def test_a_write_is_told_from_a_query_behind_comments_and_common_table_expressions(sql, kind):
    # A write taken for a query is left out of the journal when it changes nothing (see statement_kind).
    assert statement_kind(sql) == kind
