"""Migrations as data, one transaction each, and the startup schema validator — on real files."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from reliability import DatabaseManager, ReliabilityConfig
from reliability.errors import DatabaseError, ErrorKind
from reliability.schema import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationError,
    SchemaValidator,
    load_migrations,
    split_sql,
)

BASE = [
    Migration(1, "create_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"),
    Migration(2, "add_name", "ALTER TABLE users ADD COLUMN name TEXT;"),
]


def config(tmp_path: Path, **changes: object) -> ReliabilityConfig:
    return ReliabilityConfig(db_path=str(tmp_path / "app.db"), backup_interval=0, quick_check_interval=0,
                             integrity_check_interval=0, busy_timeout_ms=50, auto_recover=False).replace(**changes)


def recorded(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version").fetchall()
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def test_it_applies_migrations_in_order_and_records_each_with_checksum_and_duration(tmp_path):
    with DatabaseManager(config(tmp_path)) as db:
        result = db.migrate(BASE)
        assert result.applied == [1, 2]
        assert result.current_version == 2
        rows = db.fetch_all(f"SELECT version, name, checksum, applied_at, duration FROM {MIGRATIONS_TABLE}")
        assert [(r[0], r[1], r[2]) for r in rows] == [(m.version, m.name, m.checksum) for m in BASE]
        assert all(r[3] and r[4] >= 0 for r in rows)
        db.execute("INSERT INTO users (email, name) VALUES ('a@example.org', 'A')")
        assert db.migrate(BASE).applied == []


def test_a_migration_failing_mid_way_rolls_back_entirely_and_earlier_ones_stay(tmp_path):
    failing = Migration(3, "half_done", """
        CREATE TABLE audit (id INTEGER PRIMARY KEY);
        INSERT INTO audit VALUES (1);
        INSERT INTO no_such_table VALUES (1);
    """)
    with DatabaseManager(config(tmp_path)) as db:
        with pytest.raises(MigrationError, match=r"migration 3 \(half_done\) failed.*no such table") as info:
            db.migrate([*BASE, failing])
        assert info.value.kind is ErrorKind.SCHEMA
        # The user hears what failed, that it was rolled back, and what of the batch stays applied (not "nothing
        # was changed": versions 1 and 2 went in); SQL and exception names stay in the log.
        message = info.value.user_message
        assert "half_done" in message and "rolled back" in message and "(version(s) 1, 2)" in message
        assert "nothing was changed" not in message and info.value.applied == (1, 2)
        assert "no_such_table" not in message and "OperationalError" not in message
        assert info.value.operation_id
    assert recorded(tmp_path / "app.db") == [(1, "create_users"), (2, "add_name")]
    assert "audit" not in tables(tmp_path / "app.db")


def test_migrating_while_another_process_holds_the_database_fails_cleanly(tmp_path):
    # Rollback journal: an EXCLUSIVE lock held elsewhere blocks even the reads migrate starts with.
    with DatabaseManager(config(tmp_path, journal_mode="DELETE", busy_timeout_ms=0)) as db:
        db.migrate(BASE[:1])
        holder = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(DatabaseError) as info:
                db.migrate(BASE)
            assert info.value.kind is ErrorKind.BUSY and info.value.operation_id
            report = db.validate_schema(BASE)
            assert not report.ok and report.problems
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert db.migrate(BASE).applied == [2]


def test_a_callable_migration_gets_the_connection_and_its_failure_rolls_back(tmp_path):
    def backfill(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO users (email) VALUES ('x@example.org')")
        conn.execute("INSERT INTO users (email) VALUES (NULL)")  # NOT NULL constraint: fails for real

    with DatabaseManager(config(tmp_path)) as db:
        db.migrate(BASE)
        with pytest.raises(MigrationError, match=r"migration 3 \(backfill\).*NOT NULL") as info:
            db.migrate([*BASE, Migration(3, "backfill", backfill)])
        assert info.value.kind is ErrorKind.CONSTRAINT
        assert db.fetch_one("SELECT count(*) FROM users") == (0,)


def test_foreign_keys_are_off_during_a_table_rebuild_and_checked_before_commit(tmp_path):
    schema = [
        Migration(1, "parents", "CREATE TABLE parent (id INTEGER PRIMARY KEY, label TEXT);"
                                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));"
                                "INSERT INTO parent VALUES (1, 'one'); INSERT INTO child VALUES (1, 1);"),
        Migration(2, "rebuild_parent", """
            -- reliability: foreign_keys=off
            CREATE TABLE parent_new (id INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '');
            INSERT INTO parent_new SELECT id, coalesce(label, '') FROM parent;
            DROP TABLE parent;
            ALTER TABLE parent_new RENAME TO parent;
        """),
    ]
    assert schema[1].foreign_keys_off
    broken = Migration(3, "drop_parent_rows", "DELETE FROM parent;", foreign_keys_off=True)
    with DatabaseManager(config(tmp_path)) as db:
        assert db.migrate(schema).applied == [1, 2]
        assert db.fetch_one("SELECT label FROM parent JOIN child ON child.parent_id = parent.id") == ("one",)
        with pytest.raises(MigrationError, match=r"migration 3 \(drop_parent_rows\).*foreign key check failed"):
            db.migrate([*schema, broken])
        assert db.fetch_one("SELECT count(*) FROM parent") == (1,)
        assert db.fetch_one("PRAGMA foreign_keys") == (1,)  # restored after the migration


def test_it_loads_numbered_sql_files_and_names_a_bad_file(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_create_users.sql").write_text(BASE[0].up)  # type: ignore[arg-type]
    (folder / "002_add_name.sql").write_text(BASE[1].up)  # type: ignore[arg-type]
    (folder / "002_add_name.down.sql").write_text("ALTER TABLE users DROP COLUMN name;")
    (folder / "README.txt").write_text("not a migration")
    loaded = load_migrations(folder)
    assert [(m.version, m.name) for m in loaded] == [(1, "create_users"), (2, "add_name")]
    assert loaded[1].down == "ALTER TABLE users DROP COLUMN name;"
    with DatabaseManager(config(tmp_path)) as db:
        assert db.migrate(str(folder)).applied == [1, 2]
    (folder / "notes.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"notes\.sql.*must start with a version number"):
        load_migrations(folder)
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "nowhere")


def test_duplicate_or_unordered_versions_are_refused_with_both_names(tmp_path):
    with DatabaseManager(config(tmp_path)) as db:
        with pytest.raises(MigrationError, match=r"1 \(create_users\) and 1 \(again\) share version 1"):
            db.migrate([BASE[0], Migration(1, "again", "SELECT 1")])
        with pytest.raises(MigrationError, match="ascending"):
            db.migrate([BASE[1], BASE[0]])
    with pytest.raises(MigrationError, match="version must be a whole number"):
        Migration(0, "zero", "SELECT 1")


def test_split_sql_keeps_trigger_bodies_whole():
    text = """CREATE TABLE t (x);  -- a comment; with a semicolon
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = x + 1; SELECT 1; END;
    INSERT INTO t VALUES ('a;b')"""
    parts = split_sql(text)
    assert len(parts) == 3
    assert "CREATE TRIGGER" in parts[1] and parts[1].rstrip().endswith("END;")
    assert parts[2].rstrip(";") == "INSERT INTO t VALUES ('a;b')"


def test_a_migration_edited_after_apply_is_reported_as_checksum_drift(tmp_path):
    with DatabaseManager(config(tmp_path)) as db:
        db.migrate(BASE)
        edited = [BASE[0], Migration(2, "add_name", "ALTER TABLE users ADD COLUMN full_name TEXT;")]
        report = db.validate_schema(edited)
    assert not report.ok
    assert any("2 (add_name) was edited after it was applied" in p for p in report.problems)


def test_unknown_newer_and_missing_versions_are_reported(tmp_path):
    with DatabaseManager(config(tmp_path)) as db:
        db.migrate([*BASE, Migration(3, "index", "CREATE INDEX users_email ON users (email);")])
        report = db.validate_schema([BASE[0], Migration(3, "index", "CREATE INDEX users_email ON users (email);")])
        assert any("migration" not in p and "version 2 (add_name)" in p for p in report.problems)
        older = db.validate_schema(BASE)
        assert any("version 3 (index)" in p and "newer" in p for p in older.problems)
        assert (older.current_version, older.expected_version) == (3, 2)
        missing = db.validate_schema([*BASE, Migration(3, "index", "CREATE INDEX users_email ON users (email);"),
                                      Migration(4, "later", "SELECT 1")])
        assert missing.pending == [4]


def test_startup_refuses_writes_on_a_damaged_schema_but_serves_reads(tmp_path):
    with DatabaseManager(config(tmp_path), migrations=BASE) as db:
        db.execute("INSERT INTO users (email, name) VALUES ('a@example.org', 'A')")
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("ALTER TABLE users DROP COLUMN name")  # damage the live schema behind the runtime's back
    conn.commit()
    conn.close()
    with DatabaseManager(config(tmp_path), migrations=BASE) as db:
        report = db.validate_schema()
        assert not report.ok
        assert "table 'users' is missing column(s) name" in report.problems
        assert db.fetch_one("SELECT email FROM users") == ("a@example.org",)
        with pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO users (email) VALUES ('b@example.org')")
        assert info.value.kind is ErrorKind.SCHEMA_MISMATCH
        assert "missing column(s) name" in info.value.detail
        assert any("schema cannot be trusted" in r for r in db.health().reasons)


def test_pending_migrations_are_applied_at_startup_when_auto_migrate_is_on(tmp_path):
    with DatabaseManager(config(tmp_path), migrations=BASE[:1]) as db:
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
    with DatabaseManager(config(tmp_path, auto_migrate=False), migrations=BASE) as db:
        assert db.validate_schema().pending == [2]
        with pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO users (email) VALUES ('b@example.org')")
        assert info.value.kind is ErrorKind.SCHEMA_MISMATCH
    with DatabaseManager(config(tmp_path), migrations=BASE) as db:
        assert db.validate_schema().ok
        db.execute("INSERT INTO users (email, name) VALUES ('b@example.org', 'B')")
        assert db.fetch_one("SELECT count(*) FROM users") == (2,)


def test_a_non_empty_database_is_backed_up_before_migrating(tmp_path):
    with DatabaseManager(config(tmp_path, redo_journal=False)) as db:
        db.migrate(BASE[:1])
        assert db.backups() == []  # the database was empty: nothing to protect
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
        result = db.migrate(BASE)
        assert result.backup is not None
        copy = sqlite3.connect(result.backup)
        assert copy.execute("SELECT email FROM users").fetchall() == [("a@example.org",)]
        assert [c[1] for c in copy.execute("PRAGMA table_info(users)")] == ["id", "email"]  # before v2
        copy.close()


def test_the_validator_alone_reports_an_untouched_database_as_pending():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    report = SchemaValidator(BASE).validate(conn)
    assert (report.ok, report.current_version, report.expected_version, report.pending) == (False, 0, 2, [1, 2])


def test_a_dropped_table_is_reported_even_when_another_migration_needs_outside_tables(tmp_path):
    # Migration 2 alters a table the application made itself: it cannot be replayed on an empty
    # database, which must not stop the validator from seeing that migration 1's table is gone.
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
    conn.commit()
    conn.close()
    migrations = [Migration(1, "create_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)"),
                  Migration(2, "kv_stamp", "ALTER TABLE kv ADD COLUMN stamp REAL")]
    with DatabaseManager(config(tmp_path)) as db:
        db.migrate(migrations)
        assert db.validate_schema(migrations).ok
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE users")
    conn.commit()
    conn.close()
    with DatabaseManager(config(tmp_path, auto_migrate=False)) as db:
        report = db.validate_schema(migrations)
    assert not report.ok and "table 'users' is missing from the database" in report.problems


def test_a_transaction_refused_on_an_untrusted_schema_is_logged_as_the_refusal_the_caller_sees(tmp_path, caplog):
    """P9: BEGIN fails as READONLY under the write block; the error log record must name the kind the
    caller gets (schema_mismatch, with the reason), not the driver's readonly."""
    with DatabaseManager(config(tmp_path), migrations=BASE[:1]) as db:
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
    with DatabaseManager(config(tmp_path, auto_migrate=False), migrations=BASE) as db:
        caplog.clear()
        caplog.set_level(logging.ERROR, logger="reliability")
        with pytest.raises(DatabaseError) as info:
            with db.transaction():
                db.execute("INSERT INTO users (email) VALUES ('b@example.org')")
        assert info.value.kind is ErrorKind.SCHEMA_MISMATCH
        records = [r.getMessage() for r in caplog.records if "database error" in r.getMessage()]
        assert records, "the refused transaction left no error record"
        assert all("schema_mismatch" in m and " readonly " not in m for m in records), records
        assert db.fetch_one("SELECT count(*) FROM users") == (1,)


def test_a_batch_that_fails_part_way_keeps_the_applied_steps_known(tmp_path):
    """A batch v2 (ok), v3 (fails): v2 stays applied and known, so validation still trusts the schema
    and writes go on; before, the next validation called v2 "unknown" and refused every write."""
    m1 = Migration(1, "one", "CREATE TABLE t1 (x)")
    batch = [m1, Migration(2, "two", "CREATE TABLE t2 (x)"), Migration(3, "bad", "INSERT INTO nope VALUES (1)")]
    with DatabaseManager(config(tmp_path, auto_migrate=False), migrations=[m1]) as db:
        db.migrate([m1])
        db.execute("INSERT INTO t1 VALUES ('kept')")
        with pytest.raises(DatabaseError):
            db.migrate(batch)
        report = db.validate_schema()
        assert report.ok, report.problems
        assert report.current_version == 2
        db.execute("INSERT INTO t2 VALUES ('new')")
        assert db.fetch_all("SELECT x FROM t1") == [("kept",)]


def test_a_pending_migration_that_fails_keeps_writes_refused(tmp_path):
    """The other side of the rule: a migration the program already expected and that failed stays
    pending, so the write block of an out-of-date schema is not lifted by the failure."""
    m1 = Migration(1, "one", "CREATE TABLE t1 (x)")
    bad = Migration(2, "bad", "INSERT INTO nope VALUES (1)")
    with DatabaseManager(config(tmp_path, auto_migrate=False), migrations=[m1]) as db:
        db.migrate([m1])
    with DatabaseManager(config(tmp_path, auto_migrate=False), migrations=[m1, bad]) as db:
        with pytest.raises(DatabaseError):
            db.migrate([m1, bad])
        assert db.validate_schema().pending == [2]
        with pytest.raises(DatabaseError) as info:
            db.execute("INSERT INTO t1 VALUES ('x')")
        assert info.value.kind is ErrorKind.SCHEMA_MISMATCH


def test_a_failed_batch_on_a_runtime_that_checks_no_versions_leaves_it_checking_none(tmp_path):
    """A runtime started without migrations validates no versions; a failed batch must not make it
    expect an empty list (then every applied version read as "unknown" and every write was refused)."""
    m1 = Migration(1, "one", "CREATE TABLE t1 (x)")
    with DatabaseManager(config(tmp_path, auto_migrate=False), migrations=[m1]) as db:
        db.migrate([m1])
    with DatabaseManager(config(tmp_path, auto_migrate=False)) as db:
        with pytest.raises(DatabaseError):
            db.migrate([m1, Migration(2, "bad", "INSERT INTO nope VALUES (1)")])
        assert db.validate_schema().ok
        db.execute("INSERT INTO t1 VALUES ('still served')")
