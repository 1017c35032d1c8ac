"""DisconnectFault: closing, deleting, moving, swapping, read-only and truncating for real."""

from __future__ import annotations

import os
import sqlite3

import pytest

from pytest_dbfault.faults import DisconnectFault, FaultError

_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _write(conn):
    conn.execute("INSERT INTO items (name) VALUES ('after')")
    conn.commit()


def test_a_closed_handle_refuses_every_call(make_db, connect):
    victim = connect(make_db())
    fault = DisconnectFault(victim, mode="close").inject()
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        victim.execute("SELECT 1")
    fault.heal()
    assert "cannot be reopened" in fault.records[-2].detail["reason"]


@pytest.mark.parametrize("mode", ["delete", "rename", "replace", "replace_for_good"])
def test_in_rollback_mode_a_moved_file_still_reads_but_refuses_writes(make_db, connect, error_name, extended_name,
                                                                      mode):
    path = make_db(journal_mode="delete")
    victim = connect(path)
    assert victim.execute("SELECT count(*) FROM items").fetchone() == (20,)
    with DisconnectFault(path, mode=mode):
        assert victim.execute("SELECT count(*) FROM items").fetchone() == (20,)
        with pytest.raises(sqlite3.OperationalError) as exc:
            _write(victim)
        assert error_name(exc.value) == extended_name(exc.value, "SQLITE_READONLY_DBMOVED")


def test_in_wal_mode_writes_silently_go_into_the_deleted_file(make_db, connect):
    path = make_db(journal_mode="wal")
    victim = connect(path)
    victim.execute("SELECT count(*) FROM items").fetchall()  # the WAL is open from here on
    DisconnectFault(path, mode="delete").inject()
    _write(victim)  # no error: that is the danger FAULTS.md describes
    assert victim.execute("SELECT count(*) FROM items").fetchone() == (21,)
    assert not path.exists()


def test_in_wal_mode_a_connection_that_never_read_fails_with_an_io_error(make_db, connect, error_name,
                                                                         extended_name):
    path = make_db(journal_mode="wal")
    victim = connect(path)  # sqlite3.connect opened the file but not yet the WAL
    DisconnectFault(path, mode="delete").inject()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error") as exc:
        _write(victim)
    assert error_name(exc.value) == extended_name(exc.value, "SQLITE_IOERR_FSTAT")


def test_heal_of_a_rename_brings_the_original_data_back(make_db, connect):
    path = make_db()
    fault = DisconnectFault(path, mode="rename").inject()
    assert not path.exists()
    moved = path.with_name(path.name + ".dbfault-moved")
    assert moved.exists()
    fault.heal()
    assert not moved.exists()
    assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (20,)


def test_a_replaced_file_looks_empty_to_new_connections_until_healed(make_db, connect):
    path = make_db()
    fault = DisconnectFault(path, mode="replace").inject()
    fresh = connect(path)
    with pytest.raises(sqlite3.OperationalError, match="no such table: items"):
        fresh.execute("SELECT count(*) FROM items")
    fresh.close()
    fault.heal()
    assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (20,)


def test_replace_can_swap_in_another_database(make_db, connect):
    path = make_db("app.db", rows=20)
    other = make_db("other.db", rows=3)
    with DisconnectFault(path, mode="replace", replacement=other):
        assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (3,)


def test_replace_for_good_leaves_the_replacement_at_the_path_after_heal(make_db, connect):
    """The other database is renamed over the path (the original unlinked, not kept aside) and stays there: heal
    puts nothing back, and the path never names the original again."""
    path = make_db("app.db", rows=20)
    other = make_db("other.db", rows=3)
    victim = connect(path)
    assert victim.execute("SELECT count(*) FROM items").fetchone() == (20,)
    fault = DisconnectFault(path, mode="replace_for_good", replacement=other).inject()
    assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (3,)
    assert victim.execute("SELECT count(*) FROM items").fetchone() == (20,)  # the open handle: the unlinked file
    fault.heal()
    assert any(r.action == "nothing to restore" for r in fault.records), fault.records
    assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (3,)
    assert sorted(p.name for p in path.parent.iterdir()) == ["app.db", "other.db"]  # no copy of the original kept
    assert other.is_file()  # a copy of the replacement was put at the path, the file given is left alone


def test_replace_for_good_without_a_replacement_leaves_an_empty_database(make_db, connect):
    path = make_db()
    with DisconnectFault(path, mode="replace_for_good"):
        assert path.stat().st_size == 0
    with pytest.raises(sqlite3.OperationalError, match="no such table: items"):
        connect(path).execute("SELECT count(*) FROM items")


def test_query_only_makes_writes_fail_readonly_and_heal_lifts_it(make_db, connect, error_name):
    victim = connect(make_db())
    fault = DisconnectFault(victim, mode="readonly").inject()
    with pytest.raises(sqlite3.OperationalError, match="readonly") as exc:
        _write(victim)
    assert error_name(exc.value) == "SQLITE_READONLY"
    fault.heal()
    _write(victim)


@pytest.mark.skipif(_IS_ROOT, reason="running as root: the kernel ignores file mode bits for root")
def test_chmod_readonly_makes_new_connections_fail_readonly(make_db, connect, error_name):
    path = make_db()
    with DisconnectFault(path, mode="readonly"):
        with pytest.raises(sqlite3.OperationalError) as exc:
            _write(connect(path))
        assert error_name(exc.value) == "SQLITE_READONLY"
    _write(connect(path))


@pytest.mark.skipif(not _IS_ROOT, reason="only root bypasses file mode bits")
def test_chmod_readonly_says_it_has_no_effect_for_root(make_db, connect):
    path = make_db()
    with DisconnectFault(path, mode="readonly") as fault:
        detail = fault.records[0].detail
        assert detail["effective"] is False and "root" in detail["note"]
        _write(connect(path))  # documented: root still writes
    assert os.access(path, os.W_OK) and path.stat().st_mode & 0o200


def test_a_file_truncated_under_an_open_connection_is_malformed(make_db, connect, error_name):
    path = make_db(rows=400, payload=100)
    victim = connect(path)
    with DisconnectFault(path, mode="truncate", backup_before=True):
        with pytest.raises(sqlite3.DatabaseError) as exc:
            victim.execute("SELECT count(*), sum(length(payload)) FROM items").fetchall()
        assert error_name(exc.value) == "SQLITE_CORRUPT"
    assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (400,)


def test_heal_of_a_delete_with_a_backup_restores_the_file(make_db, connect):
    path = make_db()
    with DisconnectFault(path, mode="delete", backup_before=True):
        assert not path.exists()
    assert connect(path).execute("SELECT count(*) FROM items").fetchone() == (20,)


def test_an_unknown_mode_is_rejected_by_name(make_db):
    with pytest.raises(FaultError, match="mode 'unplug' is not one of"):
        DisconnectFault(make_db(), mode="unplug")


def test_closing_needs_a_connection_not_a_path(make_db):
    with pytest.raises(FaultError, match="acts on a live connection"):
        DisconnectFault(make_db(), mode="close").inject()


_FRESH_READ = ("import sqlite3, sys\n"
               "try:\n"
               "    print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM items').fetchone()[0])\n"
               "except sqlite3.Error as e:\n"
               "    print('error', e)\n")


def _fresh_read(path: os.PathLike[str]) -> str:
    """What a connection in another process reads (its own SQLite, no index shared with this process)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _FRESH_READ, os.fspath(path)], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.mark.parametrize("mode", ["remove_wal", "remove_wal_shm"])
def test_a_wal_removed_under_an_open_connection_is_used_by_it_alone(make_db, connect, mode):
    """The open handle keeps the unlinked -wal (it reads and commits into it without error); another process
    gets a disk I/O error (the kept index names frames the new -wal lacks) or, with the -shm removed too, the
    database as of the last checkpoint. Heal restores nothing."""
    path = make_db(journal_mode="wal", rows=20)
    victim = connect(path, isolation_level=None)
    victim.execute("PRAGMA wal_autocheckpoint = 0")
    victim.execute("INSERT INTO items (name) VALUES ('in-the-wal')")  # committed into the -wal
    fault = DisconnectFault(path, mode=mode).inject()
    assert not os.path.exists(f"{path}-wal")
    assert os.path.exists(f"{path}-shm") is (mode == "remove_wal")
    victim.execute("INSERT INTO items (name) VALUES ('after')")  # no error: into the unlinked file
    assert victim.execute("SELECT count(*) FROM items").fetchone() == (22,)
    seen = _fresh_read(path)
    assert seen.startswith("error disk I/O error") if mode == "remove_wal" else seen == "20", seen
    fault.heal()
    assert any(r.action == "nothing to restore" for r in fault.records), fault.records


def test_removing_a_wal_that_is_not_there_is_refused(make_db):
    with pytest.raises(FaultError, match="there is none"):
        DisconnectFault(make_db(journal_mode="delete"), mode="remove_wal").inject()
