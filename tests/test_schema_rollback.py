"""Migrations rolled back by their ``down`` steps (``schema.revert_migrations``), on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import fast_config, sqlite_module

from pytest_dbfault.faults import LockedFault
from reliability.errors import ErrorKind
from reliability.schema import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationError,
    apply_migrations,
    revert_migrations,
)

MIGRATIONS = [
    Migration(1, "create_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)",
              down="DROP TABLE users"),
    Migration(2, "create_posts", "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id))",
              down="DROP TABLE posts"),
    Migration(3, "index_posts", "CREATE INDEX posts_user ON posts (user_id)", down="DROP INDEX posts_user"),
]


def open_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    return sqlite_module().connect(tmp_path / "app.db", isolation_level=None, timeout=0.05)


def schema_of(conn) -> set[str]:  # type: ignore[no-untyped-def]
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def versions(conn) -> list[int]:  # type: ignore[no-untyped-def]
    return [r[0] for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")]


def test_rolling_back_to_a_version_undoes_the_newer_ones_newest_first(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    apply_migrations(conn, MIGRATIONS)
    assert revert_migrations(conn, MIGRATIONS, to=1) == [3, 2]
    assert versions(conn) == [1]
    assert schema_of(conn) == {"users", MIGRATIONS_TABLE}
    assert apply_migrations(conn, MIGRATIONS) == [2, 3]  # and forward again
    assert revert_migrations(conn, MIGRATIONS, to=0) == [3, 2, 1]
    assert schema_of(conn) == {MIGRATIONS_TABLE}


def test_a_missing_down_step_refuses_before_anything_is_undone(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    no_down = [*MIGRATIONS[:2], Migration(3, "index_posts", MIGRATIONS[2].up)]
    apply_migrations(conn, no_down)
    before = schema_of(conn)
    with pytest.raises(MigrationError, match=r"3 \(index_posts\) has no down step"):
        revert_migrations(conn, no_down, to=0)
    assert versions(conn) == [1, 2, 3] and schema_of(conn) == before


def test_a_migration_edited_since_it_was_applied_is_not_rolled_back(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    apply_migrations(conn, MIGRATIONS)
    edited = [*MIGRATIONS[:2], Migration(3, "index_posts", "CREATE INDEX posts_user ON posts (id)",
                                         down="DROP INDEX posts_user")]
    with pytest.raises(MigrationError, match="changed since it was applied"):
        revert_migrations(conn, edited, to=2)
    assert versions(conn) == [1, 2, 3]


def test_a_recorded_version_nobody_knows_is_refused(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    apply_migrations(conn, MIGRATIONS)
    with pytest.raises(MigrationError, match=r"migration 3 \(index_posts\) is recorded .* not among"):
        revert_migrations(conn, MIGRATIONS[:2], to=1)


def test_a_failing_down_step_leaves_that_version_applied_and_the_newer_ones_undone(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    broken = [MIGRATIONS[0], Migration(2, "create_posts", MIGRATIONS[1].up, down="DROP TABLE no_such_table"),
              MIGRATIONS[2]]
    apply_migrations(conn, broken)
    with pytest.raises(MigrationError) as info:
        revert_migrations(conn, broken, to=0)
    assert "2 (create_posts) could not be undone" in info.value.detail
    assert "could not be undone" in info.value.user_message and "SQL" not in info.value.user_message
    assert versions(conn) == [1, 2] and "posts" in schema_of(conn) and "posts_user" not in schema_of(conn)


def test_a_lock_held_by_another_connection_fails_cleanly_and_changes_nothing(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    apply_migrations(conn, MIGRATIONS)
    # A real write lock held by another connection: reads go on, our BEGIN IMMEDIATE meets SQLITE_BUSY.
    # The fault is given the connection, not its path, so its holder uses the same SQLite build (a
    # lock taken through another build in this process would not be seen: LockedFault's docstring).
    with LockedFault(conn, mode="write"):
        with pytest.raises(MigrationError) as info:
            revert_migrations(conn, MIGRATIONS, to=0)
        assert info.value.kind is ErrorKind.BUSY
    assert versions(conn) == [1, 2, 3] and not conn.in_transaction


def test_a_database_nobody_can_read_is_a_migration_error_not_a_driver_error(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    apply_migrations(conn, MIGRATIONS)
    # An exclusive lock in rollback-journal mode: readers are locked out too.
    with LockedFault(conn, mode="exclusive"):
        with pytest.raises(MigrationError, match="could not be read, so nothing was rolled back") as info:
            revert_migrations(conn, MIGRATIONS, to=0)
        assert info.value.kind is ErrorKind.BUSY
    assert versions(conn) == [1, 2, 3]


@pytest.mark.parametrize("to", [-1, True, "1"])
def test_a_bad_target_is_a_clear_error(tmp_path: Path, to: object) -> None:
    with pytest.raises(MigrationError, match="rollback target must be a version number"):
        revert_migrations(open_db(tmp_path), MIGRATIONS, to=to)  # type: ignore[arg-type]


# -- through the runtime: db.rollback_migration ------------------------------------------------
def test_the_runtime_backs_up_then_rolls_back_and_keeps_serving(tmp_path: Path) -> None:
    from reliability import DatabaseManager

    with DatabaseManager(fast_config(tmp_path / "app.db"), migrations=MIGRATIONS) as db:
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
        db.execute("INSERT INTO posts (user_id) VALUES (1)")
        result = db.rollback_migration(to=1)
        assert result.applied == [3, 2] and result.current_version == 1
        assert result.backup and Path(result.backup).exists()  # the dropped table's rows are in that backup
        assert db.fetch_all("SELECT email FROM users") == [("a@example.org",)]
        db.execute("INSERT INTO users (email) VALUES ('b@example.org')")  # writes still trusted
        assert db.validate_schema().ok
        assert db.rollback_migration(to=1).applied == []  # nothing above 1 any more: a no-op
    backup = sqlite_module().connect(result.backup)
    try:
        assert backup.execute("SELECT count(*) FROM posts").fetchone() == (1,)
    finally:
        backup.close()


def test_the_runtime_refuses_inside_a_transaction_and_without_down_steps(tmp_path: Path) -> None:
    from reliability import DatabaseManager

    no_down = [MIGRATIONS[0], Migration(2, "create_posts", MIGRATIONS[1].up)]
    with DatabaseManager(fast_config(tmp_path / "app.db"), migrations=no_down) as db:
        with db.transaction(), pytest.raises(MigrationError) as info:
            db.rollback_migration(to=0)
        assert info.value.kind is ErrorKind.MISUSE and info.value.operation_id
        with pytest.raises(MigrationError, match="has no down step"):
            db.rollback_migration(to=0)
        assert db.validate_schema().current_version == 2


@pytest.mark.parametrize("mode", ["delete", "rename"])
def test_migrations_after_the_file_was_moved_away_and_back_land_in_the_file_at_the_path(
        tmp_path: Path, mode: str) -> None:
    """Found by the chaos machine: after a delete (or rename) healed by putting the file back, the
    runtime's handle still named the old inode, and in WAL mode migrate() wrote into it: it reported
    versions 2 and 3 applied while the file at the path kept only version 1."""
    from pytest_dbfault.faults import DisconnectFault
    from reliability import DatabaseManager

    path = tmp_path / "app.db"
    with DatabaseManager(fast_config(path, journal_mode="WAL"), migrations=MIGRATIONS[:1]) as db:
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
        fault = DisconnectFault(db, mode=mode, backup_before=True)
        fault.inject()
        fault.heal()  # the very file is back at the path; the runtime has not looked yet
        assert db.migrate(MIGRATIONS).applied == [2, 3]
        conn = sqlite_module().connect(path)
        try:
            assert versions(conn) == [1, 2, 3]
        finally:
            conn.close()


@pytest.mark.parametrize("to", ["0", None, -1, True, 2.0, 0.5])
@pytest.mark.parametrize("applied", [0, 1, 3])
def test_an_invalid_rollback_target_is_refused_by_name_whatever_is_recorded(tmp_path, to, applied):
    # Checked before anything else: a text or None target met a bare TypeError in the first comparison, and an
    # invalid target was accepted as a no-op when nothing was recorded above it (-1 on an empty database).
    from reliability import DatabaseManager

    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        if applied:
            db.migrate(MIGRATIONS[:applied])
        with pytest.raises(MigrationError) as caught:
            db.rollback_migration(to, MIGRATIONS)
        assert caught.value.kind is ErrorKind.SCHEMA
        assert f"rollback target must be a version number >= 0, got {to!r}" in str(caught.value)
    conn = open_db(tmp_path)
    try:
        recorded = versions(conn) if applied else []
        assert recorded == list(range(1, applied + 1))
    finally:
        conn.close()


@pytest.mark.parametrize("call", ["rollback_migration", "migrate", "backup"])
def test_a_schema_change_or_backup_inside_a_raw_begin_is_refused_as_misuse(tmp_path, call):
    # A transaction the caller began with execute("BEGIN"): refused as the caller's mistake, naming it, before the
    # backup a schema change takes first (which failed as a lock held by "another connection", the caller's own,
    # and left health degraded); the caller's transaction goes on and commits.
    from reliability import DatabaseError, DatabaseManager

    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.migrate(MIGRATIONS[:2])
        db.execute("INSERT INTO users (email) VALUES ('a@example.org')")
        taken = db.backups()
        db.execute("BEGIN")
        db.execute("INSERT INTO users (email) VALUES ('b@example.org')")
        run = {"rollback_migration": lambda: db.rollback_migration(1, MIGRATIONS),
               "migrate": lambda: db.migrate(MIGRATIONS),
               "backup": db.backup}[call]
        with pytest.raises(DatabaseError) as caught:
            run()
        assert caught.value.kind is ErrorKind.MISUSE and "execute('BEGIN') is open" in str(caught.value)
        db.execute("COMMIT")
        assert db.fetch_all("SELECT email FROM users ORDER BY id") == [("a@example.org",), ("b@example.org",)]
        assert str(db.health().status) == "healthy"
        assert db.backups() == taken  # (nothing taken for a refused call)
    conn = open_db(tmp_path)
    try:
        assert versions(conn) == [1, 2] and "posts" in schema_of(conn)
    finally:
        conn.close()
