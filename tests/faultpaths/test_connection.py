"""ConnectionManager's error handlers, each reached while a real fault breaks the database."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from runtime_helpers import fast_config, sqlite_module

from pytest_dbfault.faults import CorruptFault, CrashFault, DisconnectFault
from reliability.connection import ConnectionManager, ConnectionState
from reliability.errors import DatabaseError, ErrorKind


def manager(path: Path, **kw: object) -> ConnectionManager:
    return ConnectionManager(fast_config(path, **kw))


def with_rows(path: Path, **kw: object) -> ConnectionManager:
    cm = manager(path, **kw)
    cm.connection.execute("CREATE TABLE items (v TEXT)")
    cm.connection.executemany("INSERT INTO items VALUES (?)", [(f"row{i}",) for i in range(50)])
    return cm


def is_closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.total_changes  # noqa: B018
    except sqlite_module().ProgrammingError:  # the runtime's build (tox cells pick others)
        return True
    return False


def test_a_handle_closed_under_the_manager_is_reopened_for_maintenance_work(tmp_path: Path) -> None:
    cm = with_rows(tmp_path / "a.db")
    old = cm.connection
    with DisconnectFault(cm, mode="close"):
        assert cm.check() is ErrorKind.CLOSED
        conn = cm.live_connection()
        assert conn is not old and is_closed(old)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (50,)
    assert cm.state is ConnectionState.CONNECTED and cm.check() is None


def test_closing_a_dead_handle_drops_it_quietly(tmp_path: Path) -> None:
    cm = with_rows(tmp_path / "a.db")
    cm.connection.execute("BEGIN IMMEDIATE")
    with DisconnectFault(cm, mode="close"):
        cm.close()  # the handle refuses even in_transaction/ROLLBACK: dropped all the same
        assert cm.state is ConnectionState.CLOSED and cm._conn is None
        assert cm.connection.execute("SELECT count(*) FROM items").fetchone() == (50,)


def test_an_open_hook_that_meets_a_damaged_table_refuses_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    cm = with_rows(path)
    cm.close()
    opened: list[sqlite3.Connection] = []

    def sanity_check(conn: sqlite3.Connection) -> None:
        opened.append(conn)
        conn.execute("SELECT count(*), max(v) FROM items").fetchone()  # SQLite itself raises on damage

    cm.on_open.append(sanity_check)
    with CorruptFault(path, part="btree", table="items", seed=3):
        with pytest.raises(sqlite_module().DatabaseError) as info:
            cm.open()
    assert "malformed" in str(info.value)
    assert cm._conn is None and cm.state is ConnectionState.CLOSED
    assert len(opened) == 1 and is_closed(opened[0])  # the refused handle is not leaked


_EXCLUSIVE_WAL_WRITER = """
import sqlite3, sys
from pytest_dbfault.faults.crash import signal_point

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # WAL without a -shm file
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("INSERT INTO items VALUES ('written by the crashed process')")
signal_point("committed")
"""


def test_a_crashed_writers_wal_is_set_aside_when_a_backup_replaced_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    cm = with_rows(path)
    cm.close()
    backup = tmp_path / "backup.db"
    shutil.copyfile(path, backup)
    writer = tmp_path / "writer.py"
    writer.write_text(_EXCLUSIVE_WAL_WRITER)
    with CrashFault(path, str(writer), kill_at="committed") as crash:
        assert crash.result is not None and crash.result.killed  # type: ignore[attr-defined]
        wal = Path(str(path) + "-wal")
        assert wal.exists() and not Path(str(path) + "-shm").exists()
        os.replace(backup, path)  # an operator restores the backup over the crashed file
        conn = cm.open()  # the WAL has no -shm beside it: that rename fails and is skipped
        # The crashed file's WAL was not replayed into the restored one, and it is kept aside.
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (50,)
        kept = [p.name for p in tmp_path.iterdir() if ".stale-" in p.name]
        assert len(kept) == 1 and kept[0].startswith("a.db-wal.stale-")
    assert cm.check() is None


def test_a_missing_sqlite_module_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as info:
        manager(tmp_path / "a.db", sqlite_module="no_such_sqlite_module")
    assert info.value.kind is ErrorKind.MISUSE and "'no_such_sqlite_module' cannot be imported" in info.value.detail


def test_a_handle_from_another_thread_that_refuses_close_is_dropped_anyway(tmp_path: Path) -> None:
    cm = manager(tmp_path / "a.db")
    foreign: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: foreign.append(sqlite3.connect(tmp_path / "a.db")))
    thread.start()
    thread.join()
    cm._conn = foreign[0]  # check_same_thread=True: close() from here raises ProgrammingError
    cm.close()
    assert cm._conn is None and cm.state is ConnectionState.CLOSED
