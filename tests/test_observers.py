"""The observer protocol: every finished call is told to each observer, once, through one hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseError, DatabaseManager, ErrorKind
from reliability.observers import Observer, Observers, OperationRecords


class Recorder:
    """An observer keeping what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def succeeded(self, op: str, sql: str | None, seconds: float, rows: int, attempts: int) -> None:
        self.events.append(("ok", op, sql, rows, attempts))

    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        self.events.append(("error", op, sql, err.kind, attempts))


def test_an_added_observer_hears_each_call_and_each_error_once(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        db.execute("CREATE TABLE t (v TEXT UNIQUE)")
        seen = Recorder()
        db.observers.add(seen)
        db.execute("INSERT INTO t VALUES ('a')")
        assert db.fetch_one("SELECT count(*) FROM t") == (1,)
        with pytest.raises(DatabaseError):
            db.execute("INSERT INTO t VALUES ('a')")  # a real UNIQUE violation
        with pytest.raises(DatabaseError), db.transaction():
            db.execute("INSERT INTO t VALUES ('a')")
        db.observers.remove(seen)
        db.fetch_all("SELECT v FROM t")
    assert seen.events == [
        ("ok", "execute", "INSERT INTO t VALUES ('a')", 1, 1),
        ("ok", "fetch_one", "SELECT count(*) FROM t", 1, 1),
        ("error", "execute", "INSERT INTO t VALUES ('a')", ErrorKind.CONSTRAINT, 1),
        ("error", "execute", "INSERT INTO t VALUES ('a')", ErrorKind.CONSTRAINT, 1),
        ("error", "transaction", None, ErrorKind.CONSTRAINT, 1),
    ]
    # The health counters are an observer too: the failed calls are not operations, the good ones are.
    assert db.monitor.operations["execute"] == 2 and db.monitor.operations["fetch_all"] == 1


def test_the_operation_log_leaves_the_hot_path_while_it_is_off_and_returns_when_set() -> None:
    records = OperationRecords(None)
    told: list[str] = []

    class Counter:
        def succeeded(self, op: str, *rest: Any) -> None:
            told.append(op)

        def failed(self, *args: Any) -> None:
            pass

    observers = Observers(Counter(), records)
    observers.succeeded("fetch_one", "SELECT 1", 0.0, 1)
    log: list[tuple[Any, ...]] = []

    class Log:
        def record(self, *args: Any) -> None:
            log.append(args)

    records.log = Log()
    observers.refresh()
    observers.succeeded("fetch_all", "SELECT 2", 0.0, 2)
    assert told == ["fetch_one", "fetch_all"]
    assert log == [("fetch_all", "SELECT 2", 0.0, 2, 1, "ok", None)]


class TransactionRecorder(Observer):
    """Watches only the transaction events (the base class's no-ops cover the rest)."""

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[str] = []
        self.refuse = refuse

    def before_commit(self, conn: Any) -> None:
        self.events.append("before_commit")
        if self.refuse:
            raise DatabaseError(ErrorKind.READONLY_DBMOVED, "refused by the test observer")

    def committed(self) -> None:
        self.events.append("committed")

    def rolled_back(self) -> None:
        self.events.append("rolled_back")


def test_transaction_events_reach_an_observer_once_per_outermost_transaction(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        db.execute("CREATE TABLE t (v TEXT UNIQUE)")
        seen = TransactionRecorder()
        db.observers.add(seen)
        with db.transaction():
            db.execute("INSERT INTO t VALUES ('a')")
            with pytest.raises(DatabaseError), db.transaction():  # a savepoint: not an outermost event
                db.execute("INSERT INTO t VALUES ('a')")
        assert seen.events == ["before_commit", "committed"]
        with pytest.raises(DatabaseError), db.transaction():
            db.execute("INSERT INTO t VALUES ('a')")
        assert seen.events[2:] == ["rolled_back"]
        db.execute("INSERT INTO t VALUES ('b')")  # autocommit: no transaction of the manager's
        assert len(seen.events) == 3


def test_an_observer_raising_before_commit_aborts_the_transaction(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path)) as db:
        db.execute("CREATE TABLE t (v TEXT)")
        refusing = TransactionRecorder(refuse=True)
        db.observers.add(refusing)
        with pytest.raises(DatabaseError) as info, db.transaction():
            db.execute("INSERT INTO t VALUES ('x')")
        assert info.value.kind is ErrorKind.READONLY_DBMOVED
        assert refusing.events == ["before_commit", "rolled_back"]
        db.observers.remove(refusing)
        assert db.fetch_all("SELECT v FROM t") == []


def test_an_observer_without_the_base_class_is_told_only_what_it_defines() -> None:
    told: list[str] = []

    class OnlyCommits:
        def committed(self) -> None:
            told.append("committed")

    observers = Observers(OnlyCommits())
    observers.succeeded("execute", "SELECT 1", 0.0, 1)
    observers.rolled_back()
    observers.committed()
    assert told == ["committed"]
