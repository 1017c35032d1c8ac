"""Transactions: BEGIN IMMEDIATE, savepoints, rollback on real engine failures, whole-transaction rerun."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_helpers import LockHolder, fast_config, sqlite_module

from reliability import DatabaseError, DatabaseManager, ErrorKind, TransactionError


def count(db: DatabaseManager) -> int:
    return db.fetch_one("SELECT count(*) FROM items")[0]


def test_a_transaction_commits_all_its_statements(db: DatabaseManager) -> None:
    with db.transaction():
        db.execute("INSERT INTO items (name, qty) VALUES ('a', 1)")
        db.execute("INSERT INTO items (name, qty) VALUES ('b', 2)")
    other = sqlite3.connect(db.path)
    assert other.execute("SELECT count(*) FROM items").fetchone()[0] == 2


def test_the_outer_level_takes_the_write_lock_at_once(db: DatabaseManager) -> None:
    other = sqlite_module().connect(db.path, timeout=0, isolation_level=None)
    with db.transaction():
        # BEGIN IMMEDIATE: another writer is refused before we even wrote anything.
        with pytest.raises(sqlite_module().OperationalError, match="locked"):
            other.execute("INSERT INTO items (name) VALUES ('x')")


def test_a_callers_exception_rolls_back_and_propagates_unchanged(db: DatabaseManager) -> None:
    with pytest.raises(KeyError):
        with db.transaction():
            db.execute("INSERT INTO items (name) VALUES ('a')")
            raise KeyError("boom")
    assert count(db) == 0
    assert not db.connection.in_transaction


def test_a_nested_failure_rolls_back_only_its_savepoint(db: DatabaseManager) -> None:
    with db.transaction():
        db.execute("INSERT INTO items (name) VALUES ('outer')")
        with pytest.raises(DatabaseError) as info:
            with db.transaction():
                db.execute("INSERT INTO items (name) VALUES ('inner')")
                db.execute("INSERT INTO items (name) VALUES ('outer')")  # UNIQUE violation
        assert info.value.kind is ErrorKind.CONSTRAINT
        db.execute("INSERT INTO items (name) VALUES ('after')")
    assert [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")] == ["outer", "after"]


def test_disk_full_mid_transaction_leaves_nothing_and_the_connection_usable(db: DatabaseManager) -> None:
    db.execute("INSERT INTO items (name) VALUES ('before')")
    pages = db.connection.execute("PRAGMA page_count").fetchone()[0]
    db.connection.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(DatabaseError) as info:
        with db.transaction():
            for i in range(200):
                db.execute("INSERT INTO items (name) VALUES (?)", ("x" * 2000 + str(i),))
    assert info.value.kind is ErrorKind.FULL
    assert info.value.user_message.startswith("The storage is full")
    db.connection.execute("PRAGMA max_page_count = 1073741823")
    assert count(db) == 1
    db.execute("INSERT INTO items (name) VALUES ('after')")
    assert count(db) == 2


def test_an_interrupt_mid_transaction_rolls_everything_back(db: DatabaseManager) -> None:
    calls = {"n": 0}

    def handler() -> int:
        calls["n"] += 1
        return 1 if calls["n"] > 200 else 0

    with pytest.raises(DatabaseError) as info:
        with db.transaction():
            db.execute("INSERT INTO items (name) VALUES ('first')")
            db.connection.set_progress_handler(handler, 1)
            db.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100000) "
                       "INSERT INTO items (name, qty) SELECT 'n' || i, i FROM s")
    db.connection.set_progress_handler(None, 1)
    assert info.value.kind is ErrorKind.INTERRUPTED
    assert count(db) == 0


def test_a_swallowed_error_after_sqlite_rolled_back_is_not_committed(db: DatabaseManager) -> None:
    pages = db.connection.execute("PRAGMA page_count").fetchone()[0]
    db.connection.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(TransactionError, match="rolled the transaction back"):
        with db.transaction():
            db.execute("INSERT INTO items (name) VALUES ('a')")
            try:
                for i in range(100):
                    db.execute("INSERT INTO items (name) VALUES (?)", ("y" * 3000 + str(i),))
            except DatabaseError:
                pass  # a careless caller
            db.connection.execute("PRAGMA max_page_count = 1073741823")
    names = {r[0] for r in db.fetch_all("SELECT name FROM items")}
    assert "a" not in names


def fill_until_sqlite_rolls_back(db: DatabaseManager) -> None:
    """Inside a transaction: writes until SQLite answers SQLITE_FULL and rolls the whole transaction back; the
    error swallowed, as a careless caller would; then the page limit lifted again."""
    pages = db.connection.execute("PRAGMA page_count").fetchone()[0]
    db.connection.execute(f"PRAGMA max_page_count = {pages + 1}")
    try:
        for i in range(100):
            db.execute("INSERT INTO items (name) VALUES (?)", ("y" * 3000 + str(i),))
    except DatabaseError:
        pass
    db.connection.execute("PRAGMA max_page_count = 1073741823")
    assert not db.connection.in_transaction  # (what SQLite did: the transaction is gone)


@pytest.mark.parametrize("then", ["execute", "executemany", "fetch_one", "fetch_all", "tx_conn", "nested"])
def test_a_statement_after_sqlite_rolled_the_block_back_is_not_run_on_its_own(db: DatabaseManager, then: str) -> None:
    # The statement after the swallowed error used to run in autocommit mode: 'b' was saved on its own while the
    # block said "nothing was saved" (atomicity broken). It is not run now: the block fails at it, nothing saved.
    with pytest.raises(TransactionError, match="this statement was not run and nothing of the transaction was saved"):
        with db.transaction() as conn:
            db.execute("INSERT INTO items (name) VALUES ('a')")
            fill_until_sqlite_rolls_back(db)
            if then == "execute":
                db.execute("INSERT INTO items (name) VALUES ('b')")
            elif then == "executemany":
                db.executemany("INSERT INTO items (name) VALUES (?)", [("b",), ("c",)])
            elif then == "fetch_one":
                db.fetch_one("INSERT INTO items (name) VALUES ('b') RETURNING id")
            elif then == "fetch_all":
                db.fetch_all("INSERT INTO items (name) VALUES ('b') RETURNING id")
            elif then == "tx_conn":
                conn.execute("INSERT INTO items (name) VALUES ('b')")
            else:
                with db.transaction():
                    db.execute("INSERT INTO items (name) VALUES ('b')")
    assert [r[0] for r in db.fetch_all("SELECT name FROM items WHERE length(name) < 10")] == []
    assert db.transactions.rollbacks >= 1 and db.transactions.commits == 0
    db.execute("INSERT INTO items (name) VALUES ('after')")  # the manager is usable at once
    assert count(db) == 1


def test_run_in_transaction_with_a_swallowed_rollback_saves_nothing_of_the_failed_run(db: DatabaseManager) -> None:
    def work() -> None:
        db.execute("INSERT INTO items (name) VALUES ('a')")
        fill_until_sqlite_rolls_back(db)
        db.execute("INSERT INTO items (name) VALUES ('b')")

    with pytest.raises(DatabaseError):
        db.run_in_transaction(work)
    assert [r[0] for r in db.fetch_all("SELECT name FROM items WHERE length(name) < 10")] == []


def test_busy_at_commit_rolls_back_and_the_rerun_succeeds(tmp_path: Path) -> None:
    # Rollback-journal mode: a reader holding SHARED makes COMMIT fail with SQLITE_BUSY (FAULTS.md).
    with DatabaseManager(fast_config(tmp_path / "r.db", journal_mode="DELETE", busy_timeout_ms=0)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO items (name) VALUES ('seed')")
        reader = sqlite_module().connect(db.path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM items").fetchone()
        runs = {"n": 0}

        def work() -> None:
            runs["n"] += 1
            db.execute("INSERT INTO items (name) VALUES ('new')")
            if runs["n"] == 2:
                reader.execute("COMMIT")  # the reader goes away before the second COMMIT

        db.policy.sleep = lambda s: None
        db.run_in_transaction(work)
        assert runs["n"] == 2
        assert db.fetch_one("SELECT count(*) FROM items")[0] == 2


def test_run_in_transaction_absorbs_a_lock_released_during_backoff(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "a.db", busy_timeout_ms=0, retry_attempts=5)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        holder = LockHolder(db.path).__enter__()
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            if len(slept) == 2:
                holder.__exit__()

        db.policy.sleep = sleep
        db.run_in_transaction(lambda: db.execute("INSERT INTO items (name) VALUES ('x')"))
        assert len(slept) == 2 and db.fetch_one("SELECT count(*) FROM items") == (1,)
        assert db.health().retries == 2


def real_busy_snapshot(path: Path) -> None:
    """Raise the SQLITE_BUSY_SNAPSHOT that WAL really gives a deferred read-then-write transaction."""
    a = sqlite3.connect(path, isolation_level=None, timeout=0)
    b = sqlite3.connect(path, isolation_level=None, timeout=0)
    a.execute("PRAGMA journal_mode=WAL")
    a.execute("CREATE TABLE IF NOT EXISTS t (v)")
    b.execute("BEGIN")
    b.execute("SELECT count(*) FROM t").fetchone()
    a.execute("INSERT INTO t VALUES (1)")
    try:
        b.execute("INSERT INTO t VALUES (2)")
    finally:
        b.execute("ROLLBACK")
        a.close()
        b.close()


def test_busy_snapshot_reruns_the_whole_transaction(tmp_path: Path) -> None:
    # Our own transactions are IMMEDIATE and never meet BUSY_SNAPSHOT; a function that also
    # works on another WAL database (an attached cache, say) can. The whole function reruns.
    with DatabaseManager(fast_config(tmp_path / "a.db", busy_timeout_ms=0)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        runs: list[int] = []

        def work() -> None:
            runs.append(1)
            db.execute("INSERT INTO items (name) VALUES (?)", (f"run {len(runs)}",))
            if len(runs) == 1:
                real_busy_snapshot(tmp_path / "other.db")

        db.policy.sleep = lambda s: None
        db.run_in_transaction(work)
        assert len(runs) == 2
        assert db.fetch_all("SELECT name FROM items") == [("run 2",)]


def test_non_transient_errors_are_not_rerun(db: DatabaseManager) -> None:
    runs: list[int] = []

    def work() -> None:
        runs.append(1)
        db.execute("INSERT INTO items (name) VALUES ('dup')")
        db.execute("INSERT INTO items (name) VALUES ('dup')")

    with pytest.raises(DatabaseError) as info:
        db.run_in_transaction(work)
    assert info.value.kind is ErrorKind.CONSTRAINT and runs == [1]
    assert count(db) == 0


def test_transactions_from_threads_are_serialized(db: DatabaseManager) -> None:
    def work(tag: int) -> None:
        for i in range(20):
            with db.transaction():
                n = db.fetch_one("SELECT count(*) FROM items")[0]
                db.execute("INSERT INTO items (name, qty) VALUES (?, ?)", (f"{tag}-{i}", n))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each transaction saw exactly the rows before it: no interleaving inside a transaction.
    assert sorted(r[0] for r in db.fetch_all("SELECT qty FROM items")) == list(range(80))


@settings(max_examples=15)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.booleans(), max_size=4)), max_size=5))
def test_savepoint_nesting_keeps_exactly_the_levels_that_succeeded(tmp_path_factory, plan) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("sp") / "a.db"
    with DatabaseManager(fast_config(path)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        expected: list[str] = []
        with db.transaction():
            for i, (outer_fails, inners) in enumerate(plan):
                kept: list[str] = []
                try:
                    with db.transaction():
                        db.execute("INSERT INTO items (name) VALUES (?)", (f"o{i}",))
                        for j, inner_fails in enumerate(inners):
                            try:
                                with db.transaction():
                                    db.execute("INSERT INTO items (name) VALUES (?)", (f"i{i}.{j}",))
                                    if inner_fails:
                                        raise ValueError
                                kept.append(f"i{i}.{j}")
                            except ValueError:
                                pass
                        if outer_fails:
                            raise ValueError
                    expected += [f"o{i}", *kept]
                except ValueError:
                    pass
        assert [r[0] for r in db.fetch_all("SELECT name FROM items ORDER BY id")] == expected


def test_a_nested_run_joins_the_open_transaction_without_its_own_retries(db: DatabaseManager) -> None:
    assert not db.transactions.active
    with db.transaction():
        assert db.transactions.active
        rowid = db.run_in_transaction(lambda: db.execute("INSERT INTO items (name) VALUES ('nested')").lastrowid)
        assert db.transactions.depth == 1 and db.connection.in_transaction
    assert not db.transactions.active
    assert db.fetch_one("SELECT name FROM items WHERE id = ?", (rowid,)) == ("nested",)


def test_a_before_commit_check_that_fails_keeps_its_own_error_and_rolls_back(db: DatabaseManager) -> None:
    db.execute("INSERT INTO items (name) VALUES ('taken')")
    # A check run just before COMMIT through the manager: its error already carries an operation id.
    check = SimpleNamespace(before_commit=lambda conn: db.execute("INSERT INTO items (name) VALUES ('taken')"))
    db.observers.add(check)
    with pytest.raises(DatabaseError) as info:
        with db.transaction():
            db.execute("INSERT INTO items (name) VALUES ('inside')")
    assert info.value.kind is ErrorKind.CONSTRAINT and info.value.operation_id
    db.observers.remove(check)
    assert [r[0] for r in db.fetch_all("SELECT name FROM items")] == ["taken"]


@pytest.mark.parametrize("nested", [False, True])
def test_a_connection_closed_inside_a_block_whose_error_was_caught_fails_the_block_as_a_database_error(
        db: DatabaseManager, nested: bool) -> None:
    # The connection is lost inside ``with db.transaction()`` (the disconnect fault's close mode: the handle
    # closed under the runtime), and the caller catches the statement's error and leaves the block normally.
    # The transaction went with the handle: the block must fail as a DatabaseError (it used to raise sqlite3's
    # raw ProgrammingError "Cannot operate on a closed database" from the check before COMMIT), nothing of it
    # saved, and the manager usable at its next call.
    from pytest_dbfault.faults import make_fault

    db.execute("INSERT INTO items (name) VALUES ('before')")
    fault = make_fault("disconnect_close", db)
    try:
        with pytest.raises(DatabaseError):
            with db.transaction():
                db.execute("INSERT INTO items (name) VALUES ('a')")
                with db.transaction() if nested else contextlib.nullcontext():
                    fault.inject()  # (in force until the block has ended: the check before COMMIT meets it)
                    with pytest.raises(DatabaseError):
                        db.execute("INSERT INTO items (name) VALUES ('b')")
    finally:
        fault.heal()
    assert {r[0] for r in db.fetch_all("SELECT name FROM items")} == {"before"}
    db.execute("INSERT INTO items (name) VALUES ('after')")
    assert count(db) == 2
