"""Health figures are exact: each error a caller saw is counted once in ``monitor.errors`` (issue #15 item 5)."""

from __future__ import annotations

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import LockedFault
from reliability import DatabaseError, DatabaseManager


@pytest.fixture
def db(tmp_path):
    manager = DatabaseManager(fast_config(tmp_path / "app.db"))
    manager.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    manager.execute("INSERT INTO t VALUES (1)")
    yield manager
    manager.close()


def _duplicate(db: DatabaseManager) -> None:
    db.execute("INSERT INTO t VALUES (1)")


def test_ten_failed_transactions_count_ten_errors(db):
    for _ in range(10):
        with pytest.raises(DatabaseError), db.transaction():
            _duplicate(db)
    assert db.health().errors == {"constraint": 10}


@pytest.mark.parametrize("how", ["run_in_transaction", "nested", "executemany", "execute"])
def test_every_entry_point_counts_a_failure_once(db, how):
    def nested() -> None:
        with db.transaction(), db.transaction():
            _duplicate(db)

    calls = {
        "run_in_transaction": lambda: db.run_in_transaction(_duplicate, db),
        "nested": nested,
        "executemany": lambda: db.executemany("INSERT INTO t VALUES (?)", [(2,), (1,)]),
        "execute": lambda: _duplicate(db),
    }
    for _ in range(3):
        with pytest.raises(DatabaseError):
            calls[how]()
    assert db.health().errors == {"constraint": 3}
    assert db.fetch_all("SELECT v FROM t") == [(1,)]


def test_an_error_caught_inside_a_committed_transaction_counts_once(db):
    with db.transaction():
        with pytest.raises(DatabaseError):
            _duplicate(db)
        db.execute("INSERT INTO t VALUES (2)")
    assert db.health().errors == {"constraint": 1}


def test_an_error_caught_inside_a_transaction_the_caller_then_aborts_counts_once(db):
    with pytest.raises(ValueError), db.transaction():
        with pytest.raises(DatabaseError):
            _duplicate(db)
        raise ValueError("the caller's own error")
    assert db.health().errors == {"constraint": 1}


def test_a_lock_that_outlasts_every_rerun_is_one_busy_error(tmp_path):
    db = DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="DELETE"))
    db.execute("CREATE TABLE t (v INTEGER)")
    try:
        with LockedFault(db, mode="exclusive"), pytest.raises(DatabaseError) as caught:
            db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (1)"))
        assert caught.value.kind.value == "busy"
        report = db.health()
        assert report.errors == {"busy": 1}
        assert report.retries == caught.value.attempts - 1 >= 1
    finally:
        db.close()


def test_a_direct_write_behind_a_backlog_that_cannot_be_saved_is_one_error(db):
    from pytest_dbfault.faults import DisconnectFault
    from reliability.degraded import Needs

    db.commands.recheck_interval = 0
    db.commands.register("add", Needs.WRITE, lambda db, v: db.execute("INSERT INTO t VALUES (?)", (v,)))
    with DisconnectFault(db, mode="readonly", readonly_via="query_only"):
        db.commands.run("add", 5)  # refused by SQLite (readonly), queued durably
        before = sum(db.health().errors.values())
        with pytest.raises(DatabaseError):
            db.execute("INSERT INTO t VALUES (6)")  # the backlog replays first, fails, so this one fails
        assert sum(db.health().errors.values()) == before + 1
    db.execute("INSERT INTO t VALUES (7)")
    assert db.fetch_all("SELECT v FROM t ORDER BY v") == [(1,), (5,), (7,)]


def test_a_connection_lost_on_every_rerun_is_one_unavailable_error(tmp_path):
    from pytest_dbfault.faults import DisconnectFault

    db = DatabaseManager(fast_config(tmp_path / "app.db"))
    db.execute("CREATE TABLE t (v INTEGER)")
    try:
        def write() -> None:
            db.execute("INSERT INTO t VALUES (1)")

        with DisconnectFault(db.path, mode="rename"), pytest.raises(DatabaseError) as caught:
            db.run_in_transaction(write)
        assert caught.value.kind.value == "unavailable"
        assert db.health().errors == {"unavailable": 1}
    finally:
        db.close()


def test_a_driver_error_from_the_callers_own_raw_statement_is_surfaced_once_under_a_full_disk(tmp_path) -> None:
    """``run_in_transaction(fn)`` where ``fn`` writes through the raw connection: the disk fills up
    (a real SQLITE_FULL from ``max_page_count``), the driver's own exception leaves ``fn``, and the
    runtime turns it into one DatabaseError, counted once."""
    from pytest_dbfault.faults import DiskFullFault
    from reliability import DatabaseError, DatabaseManager

    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE big (v BLOB)")
        with DiskFullFault(db):
            def fill() -> None:
                for _ in range(200):
                    db.connection.execute("INSERT INTO big VALUES (zeroblob(8192))")
            with pytest.raises(DatabaseError) as info:
                db.run_in_transaction(fill)
        assert info.value.kind.value == "full" and info.value.operation_id
        assert db.health().errors == {"full": 1}
        assert db.fetch_all("SELECT count(*) FROM big") == [(0,)]  # all or nothing


def test_an_application_exception_raised_in_reaction_to_a_fault_ends_the_transaction_counted_once(
        tmp_path) -> None:
    """``fn`` meets a real SQLITE_FULL, catches it and raises its own exception: the transaction is
    rolled back, the application's exception reaches the caller unchanged, and the database error
    the application saw is counted once."""
    from pytest_dbfault.faults import DiskFullFault
    from reliability import DatabaseError, DatabaseManager

    class OutOfSpace(Exception):
        pass

    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE big (v BLOB)")
        with DiskFullFault(db):
            def fill() -> None:
                try:
                    for _ in range(200):
                        db.execute("INSERT INTO big VALUES (zeroblob(8192))")
                except DatabaseError as err:
                    raise OutOfSpace(err.user_message) from err
            with pytest.raises(OutOfSpace):
                db.run_in_transaction(fill)
        assert db.health().errors == {"full": 1}
        assert db.fetch_all("SELECT count(*) FROM big") == [(0,)]
