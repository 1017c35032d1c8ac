"""Migrations and the schema validator meeting real faults: a full disk, a lock, a connection that dies."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from pytest_dbfault.faults import DisconnectFault, DiskFullFault, LockedFault
from reliability.errors import ErrorKind
from reliability.schema import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationError,
    SchemaValidator,
    apply_migrations,
    coerce_migrations,
    load_migrations,
    split_sql,
)

USERS = Migration(1, "create_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
BACKFILL = Migration(2, "backfill", "INSERT INTO users (email) SELECT hex(randomblob(500)) "
                                    "FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                                    "WHERE i < 200) SELECT i FROM n)")


@pytest.fixture
def conn(tmp_path):
    c = sqlite3.connect(tmp_path / "app.db", isolation_level=None, timeout=0.02)
    yield c
    c.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_migration_that_fills_the_disk_is_rolled_back_and_named(conn):
    assert apply_migrations(conn, [USERS]) == [1]
    with DiskFullFault(conn, headroom=2):
        with pytest.raises(MigrationError) as info:
            apply_migrations(conn, [USERS, BACKFILL])
    assert info.value.kind is ErrorKind.FULL
    assert info.value.detail.startswith("migration 2 (backfill) failed and was rolled back: OperationalError")
    assert "'backfill'" in info.value.user_message
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    assert [r[0] for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")] == [1]
    assert apply_migrations(conn, [USERS, BACKFILL]) == [2]  # room again


def test_a_connection_closed_mid_migration_fails_that_migration_and_leaves_nothing(tmp_path, conn):
    fault = DisconnectFault(conn, mode="close")

    def up(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        fault.inject()  # the handle dies before the runner records and commits the migration

    try:
        with pytest.raises(MigrationError) as info:
            apply_migrations(conn, [Migration(1, "create_orders", up)])
    finally:
        fault.heal()
    assert info.value.detail.startswith("migration 1 (create_orders) failed and was rolled back: ProgrammingError")
    reopened = sqlite3.connect(tmp_path / "app.db")
    try:
        assert tables(reopened) == {MIGRATIONS_TABLE}
        assert reopened.execute(f"SELECT count(*) FROM {MIGRATIONS_TABLE}").fetchone() == (0,)
    finally:
        reopened.close()


def test_the_validator_reports_an_unreadable_database_as_incomplete_not_untrusted(conn):
    apply_migrations(conn, [USERS])
    with LockedFault(conn, mode="exclusive"):  # rollback-journal mode: readers are locked out too
        report = SchemaValidator([USERS]).validate(conn)
    assert not report.ok and not report.complete
    assert report.problems[0].startswith(f"cannot read {MIGRATIONS_TABLE}: database is locked")
    assert SchemaValidator([USERS]).validate(conn).ok


def test_an_interrupt_during_a_migration_rolls_it_back_and_propagates(conn):
    def up(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        raise KeyboardInterrupt  # Ctrl-C while the migration runs

    with pytest.raises(KeyboardInterrupt):
        apply_migrations(conn, [Migration(1, "create_orders", up)])
    assert not conn.in_transaction and tables(conn) == {MIGRATIONS_TABLE}


# -- handlers and guards no fault reaches: bad definitions and files get errors naming them ----------------------
def test_a_migration_without_a_name_or_with_an_unusable_step_is_refused_with_its_version():
    with pytest.raises(MigrationError, match="migration 4: name must be a non-empty string"):
        Migration(4, " ", "SELECT 1")
    with pytest.raises(MigrationError, match=r"migration 4 \(x\): up must be SQL text or a callable .* got int"):
        Migration(4, "x", 42)  # type: ignore[arg-type]
    with pytest.raises(MigrationError, match=r"migrations\[1\] is a str, expected Migration"):
        coerce_migrations([USERS, "CREATE TABLE x (id)"])  # type: ignore[list-item]


def test_migration_files_with_a_clash_an_orphan_down_or_bad_bytes_are_named(tmp_path):
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (id);")
    (tmp_path / "001_b.sql").write_text("CREATE TABLE b (id);")
    with pytest.raises(MigrationError, match=r"001_a\.sql' and .*001_b\.sql' both have version 1"):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "002_c.down.sql").write_text("DROP TABLE c;")
    with pytest.raises(MigrationError, match=r"002_c\.down\.sql': no matching up migration for version 2"):
        load_migrations(tmp_path)
    (tmp_path / "002_c.down.sql").unlink()
    (tmp_path / "003_d.sql").write_bytes(b"CREATE TABLE \xff (id);")
    with pytest.raises(MigrationError, match=r"003_d\.sql' cannot be read: 'utf-8' codec can't decode"):
        load_migrations(tmp_path)


def test_migrating_inside_an_open_transaction_or_committing_from_a_migration_is_refused(conn):
    conn.execute("BEGIN")
    with pytest.raises(MigrationError, match="cannot migrate while a transaction is open"):
        apply_migrations(conn, [USERS])
    conn.execute("ROLLBACK")
    sneaky = Migration(1, "sneaky", lambda c: c.execute("COMMIT"))
    with pytest.raises(MigrationError, match="it committed or rolled back the migration's transaction itself"):
        apply_migrations(conn, [sneaky])
    assert conn.execute(f"SELECT count(*) FROM {MIGRATIONS_TABLE}").fetchone() == (0,)


def test_a_callable_without_source_code_is_identified_by_its_qualified_name():
    builtin = Migration(1, "builtin", len)
    assert builtin.checksum == hashlib.sha256(b"builtins.len").hexdigest()


def test_an_unfinished_last_statement_is_kept_so_sqlite_can_name_the_error():
    assert split_sql("CREATE TABLE a (id); CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1") == [
        "CREATE TABLE a (id);", "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1"]


def test_without_known_migrations_the_validator_only_reports_the_recorded_version(conn):
    apply_migrations(conn, [USERS])
    report = SchemaValidator().validate(conn)
    assert report.ok and report.current_version == report.expected_version == 1
