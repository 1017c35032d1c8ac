"""A WAL is set aside only when it provably does not belong to the file beside it (issue #15 item 3).

Real files throughout: ``DisconnectFault`` moves the database with its ``-wal`` away and back, a second
SQLite file with another page size stands in, and the WAL header is read from what SQLite wrote.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import DisconnectFault
from reliability import DatabaseError, DatabaseManager
from reliability.connection import read_wal_header, set_aside_foreign_wal


def rows_in_the_wal(tmp_path: Path, n: int = 50) -> DatabaseManager:
    db = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(n):
        db.execute("INSERT INTO t VALUES (?, ?)", (i, f"row {i}"))
    header = read_wal_header(db.path + "-wal")
    assert header is not None and header.frames  # the rows live in the WAL, not yet in the file
    return db


def stale_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if ".stale-" in p.name)


@pytest.mark.parametrize("after_heal", ["write", "read"])
@pytest.mark.parametrize("stand_in", ["empty", "another database"])
def test_healing_a_replace_after_the_stand_in_was_opened_keeps_every_committed_row(tmp_path, after_heal, stand_in):
    db = rows_in_the_wal(tmp_path)
    db.identity_check_interval = 0  # every read checks (the default, 50 ms between checks, is not a test)
    other = None
    if stand_in == "another database":
        other = tmp_path / "other.db"
        conn = sqlite3.connect(other, isolation_level=None)
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1000, 'stand-in')")
        conn.close()
    try:
        fault = DisconnectFault(db.path, mode="replace", replacement=other)
        with fault:
            db.execute("CREATE TABLE IF NOT EXISTS s (x)")  # the manager notices and opens the stand-in
            assert db.fetch_one("SELECT count(*) FROM sqlite_master WHERE name = 's'") == (1,)
        moved_back = fault.records[-2]
        assert moved_back.action == "moved back" and moved_back.detail["intact"], moved_back.detail
        if after_heal == "write":
            db.execute("INSERT INTO t VALUES (50, 'after heal')")
        assert db.fetch_one("SELECT count(*) FROM t WHERE id < 50") == (50,)  # read: not the stand-in
        assert db.fetch_one("SELECT count(*) FROM t WHERE id = 1000") == (0,)
        assert stale_files(tmp_path) == []
    finally:
        db.close()


def test_a_read_failing_on_the_stand_in_after_heal_runs_again_on_the_original(tmp_path):
    db = rows_in_the_wal(tmp_path)
    try:
        with DisconnectFault(db.path, mode="replace"):
            db.execute("CREATE TABLE s (x)")
        assert db.fetch_all("SELECT count(*) FROM t") == [(50,)]  # was: "no such table: t"
        assert db.health().errors == {}
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["rename", "delete"])
def test_healing_a_rename_or_restored_delete_keeps_the_wal_rows(tmp_path, mode):
    db = rows_in_the_wal(tmp_path)
    try:
        with DisconnectFault(db.path, mode=mode, backup_before=True):
            with pytest.raises(DatabaseError):
                db.execute("INSERT INTO t VALUES (60, 'during the fault')")
        db.execute("INSERT INTO t VALUES (50, 'after heal')")
        assert db.fetch_one("SELECT count(*) FROM t") == (51,)
        assert stale_files(tmp_path) == []
    finally:
        db.close()


def test_a_wal_left_by_the_old_file_is_set_aside_when_another_file_replaces_it(tmp_path):
    db = rows_in_the_wal(tmp_path)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other, isolation_level=None)
    conn.execute("CREATE TABLE u (x)")
    conn.close()
    try:
        os.replace(other, db.path)  # an operator swaps the file; the old WAL (our pair) stays beside it
        db.execute("INSERT INTO u VALUES (1)")
        assert db.fetch_all("SELECT x FROM u") == [(1,)]
        assert [n.split(".stale-")[0] for n in stale_files(tmp_path)] == ["app.db-shm", "app.db-wal"]
        kept = next(tmp_path.glob("app.db-wal.stale-*"))
        assert read_wal_header(kept) is not None  # set aside whole, never deleted
    finally:
        db.close()


def test_a_newer_wal_with_another_page_size_is_foreign(tmp_path):
    a = tmp_path / "a.db"
    conn = sqlite3.connect(a, isolation_level=None)
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('from a')")
    keep_open = conn  # the WAL stays (a closing connection would checkpoint and delete it)
    b = tmp_path / "b.db"
    other = sqlite3.connect(b, isolation_level=None)
    other.execute("CREATE TABLE t (x)")  # 4096-byte pages
    other.close()
    try:
        wal = Path(f"{a}-wal")
        shutil.copyfile(wal, f"{b}-wal")
        future = os.stat(b).st_ctime + 60
        os.utime(f"{b}-wal", (future, future))  # newer than the file: only the page size tells
        assert read_wal_header(f"{b}-wal").page_size == 8192
        moved = set_aside_foreign_wal(str(b), {})
        assert [Path(m).name.split(".stale-")[0] for m in moved] == ["b.db-wal"]
        check = sqlite3.connect(b)
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)
        check.close()
    finally:
        keep_open.close()


def test_a_wal_sqlite_would_ignore_is_left_in_place(tmp_path):
    path = tmp_path / "a.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    Path(f"{path}-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 60)  # right magic, wrong format and checksum
    os.utime(f"{path}-wal", (1, 1))  # older than the file: the time rule alone would set it aside
    assert read_wal_header(f"{path}-wal") is None
    assert set_aside_foreign_wal(str(path), {}) == []


def test_the_wal_header_is_read_as_sqlite_wrote_it(tmp_path):
    path = tmp_path / "a.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    try:
        header = read_wal_header(f"{path}-wal")
        assert header is not None and header.frames
        assert header.page_size == conn.execute("PRAGMA page_size").fetchone()[0]
        data = bytearray(Path(f"{path}-wal").read_bytes())
        data[17] ^= 0xFF  # one bit of salt-1: the header checksum no longer matches
        damaged = tmp_path / "damaged-wal"
        damaged.write_bytes(bytes(data))
        assert read_wal_header(damaged) is None
    finally:
        conn.close()


def test_a_read_inside_a_transaction_never_drops_its_connection_when_the_path_is_replaced(tmp_path):
    db = rows_in_the_wal(tmp_path)
    db.identity_check_interval = 0  # every read checks the path
    fault = DisconnectFault(db.path, mode="replace")
    try:
        with pytest.raises(DatabaseError) as caught, db.transaction():
            db.execute("INSERT INTO t VALUES (100, 'in the transaction')")
            fault.inject()
            assert db.fetch_one("SELECT count(*) FROM t") == (51,)  # the transaction's own view, not dropped
        assert caught.value.kind.value == "readonly_dbmoved"  # the COMMIT saw the replaced file
        fault.heal()
        assert db.fetch_one("SELECT count(*) FROM t") == (50,)  # all or nothing
    finally:
        fault.heal()
        db.close()


def test_opening_a_damaged_file_records_no_wal_and_the_first_statement_reports_the_damage(tmp_path):
    from pytest_dbfault.faults import CorruptFault
    from reliability.errors import ErrorKind

    db = rows_in_the_wal(tmp_path)
    try:
        db.connections.close()
        with CorruptFault(db.path, part="btree", table="sqlite_schema", seed=3, backup_before=True, checkpoint=True):
            with pytest.raises(DatabaseError) as caught:
                db.fetch_one("SELECT count(*) FROM t")
            assert caught.value.kind in (ErrorKind.NOTADB, ErrorKind.CORRUPT)
        assert db.fetch_one("SELECT count(*) FROM t") == (50,)  # healed: the same file and its WAL
    finally:
        db.close()


@pytest.mark.parametrize("form", ["transaction", "run_in_transaction"])
def test_a_transaction_begins_on_the_file_put_back_at_the_path_even_without_retries(
        tmp_path: Path, form: str) -> None:
    """Found by the connection machine (retry_attempts=1): after a deleted file was put back (a copy,
    so another inode), a transaction began on the stale handle and failed at COMMIT's identity check
    as ``unavailable``: the one attempt was spent on a file that was no longer the database."""
    path = tmp_path / "app.db"
    with DatabaseManager(fast_config(path, journal_mode="WAL", retry_attempts=1)) as db:
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES ('before')")
        fault = DisconnectFault(db, mode="delete", backup_before=True)
        fault.inject()
        fault.heal()  # a copy of the file is back at the path
        if form == "transaction":
            with db.transaction():
                db.execute("INSERT INTO t VALUES ('after')")
        else:
            db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES ('after')"))
    check = sqlite3.connect(path)
    try:
        assert [r[0] for r in check.execute("SELECT v FROM t ORDER BY rowid")] == ["before", "after"]
    finally:
        check.close()


# -- the malformed database after replace + heal with a second manager open (issue #15) ---------------
# Cause: checking the WAL beside a replaced file read the database header with a plain open()/close().
# Closing *any* descriptor of a file drops every POSIX lock the process holds on it, so the SHARED locks
# of the process's other connections (a second manager, a reader) were gone; a worker process then took
# itself for the database's last user, checkpointed and deleted its -wal and -shm under them, and the
# second manager's next write went into the deleted WAL: "disk I/O error", then a malformed database.
WORKER_WRITES = """
import sys
sys.path.insert(0, sys.argv[3])
from runtime_helpers import fast_config
from reliability import DatabaseManager
with DatabaseManager(fast_config(sys.argv[1], busy_timeout_ms=5000, retry_budget=30.0, auto_recover=False)) as db:
    for i in range(int(sys.argv[2]), int(sys.argv[2]) + 5):
        db.execute("INSERT INTO t VALUES (?, ?)", (i, "worker"))
"""


def _worker_writes(path: str, first: int) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WORKER_WRITES, path, str(first), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("during", ["write", "read"])
def test_replace_and_heal_with_a_second_manager_open_leaves_no_malformed_database(tmp_path, during):
    db = rows_in_the_wal(tmp_path)
    db.identity_check_interval = 0
    second = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=False))
    second.execute("INSERT INTO t VALUES (100, 'second')")
    reader = db.connections.module.connect(db.path, isolation_level=None)  # a report job, the runtime's build
    try:
        reader.execute("SELECT count(*) FROM t").fetchone()
        standin = tmp_path / "standin.db"
        conn = sqlite3.connect(standin)
        conn.execute("CREATE TABLE other (x)")
        conn.close()
        with DisconnectFault(db.path, mode="replace", replacement=standin):
            if during == "write":
                with pytest.raises(DatabaseError):  # the stand-in has no table t
                    db.execute("INSERT INTO t VALUES (200, 'stand-in')")
            else:
                assert db.fetch_one("SELECT count(*) FROM sqlite_master WHERE name = 'other'") == (1,)
        db.execute("INSERT INTO t VALUES (101, 'after heal')")  # reopens the original (checks its WAL)
        _worker_writes(db.path, 300)  # another process, while this one's connections stay open
        assert os.path.exists(db.path + "-wal")  # the worker knew it was not the last user
        second.execute("INSERT INTO t VALUES (102, 'second after heal')")  # was: disk I/O error
        db.execute("INSERT INTO t VALUES (103, 'first again')")
    finally:
        reader.close()
        second.close()
        db.close()
    check = sqlite3.connect(tmp_path / "app.db")
    try:
        assert check.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        ids = {r[0] for r in check.execute("SELECT id FROM t")}
    finally:
        check.close()
    assert ids == set(range(50)) | {100, 101, 102, 103} | set(range(300, 305))


def test_checking_a_wal_keeps_the_locks_of_the_process_s_other_connections(tmp_path):
    """set_aside_foreign_wal reads the database header; the reading drops no lock the process holds."""
    import subprocess
    import sys

    path = tmp_path / "a.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")  # in the WAL; this connection holds its SHARED lock
    try:
        assert set_aside_foreign_wal(str(path), {}) == []  # written since the file arrived: kept, after reading
        # Another process opens and closes the database: a process that gets the EXCLUSIVE lock at close
        # takes itself for the last user and deletes the -wal. It must not get it: this one still holds SHARED.
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                        "c.execute('SELECT count(*) FROM t').fetchone(); c.close()", str(path)], check=True,
                       timeout=60)
        assert os.path.exists(f"{path}-wal")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        conn.close()


def test_reading_the_committed_sequences_keeps_the_locks_of_the_runtime_s_build(tmp_path: Path) -> None:
    """A read of the live file through another SQLite library must not drop the runtime's POSIX locks."""
    import subprocess
    import sys

    from runtime_helpers import sqlite_module

    from reliability.redo import read_committed

    module = sqlite_module()
    if module is sqlite3:
        pytest.skip("needs a second SQLite build (RELIABILITY_SQLITE_MODULE=pysqlite3.dbapi2): within one "
                    "library SQLite defers its closes while its connections hold locks")
    path = tmp_path / "live.db"
    holder = module.connect(str(path), isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM t").fetchall()  # a SHARED lock on the file, held until COMMIT
    probe = ("import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
             "try:\n    c.execute('BEGIN EXCLUSIVE')\nexcept sqlite3.OperationalError:\n    sys.exit(3)\n")

    def exclusive_refused() -> bool:
        return subprocess.run([sys.executable, "-c", probe, str(path)], check=False).returncode == 3

    assert exclusive_refused()  # the reader's lock is seen by another process
    read_committed(path, module)
    assert exclusive_refused(), "reading the file dropped the runtime connection's lock"
    holder.execute("COMMIT")
    holder.close()


def test_a_pair_restored_then_moved_away_and_back_keeps_its_wal_rows(tmp_path):
    """The pair a restore put back (new files, the WAL copied after the database) is moved away and back before
    the runtime looks. The WAL was last *written* before the database file's rename; judged by that, it "was
    last written before this file arrived" and every row committed in it was hidden (found by a fuzzer of
    replaced, restored and renamed files: 23 of 200 sequences lost rows). It moved along: its ctime says so."""
    db = rows_in_the_wal(tmp_path)
    try:
        with DisconnectFault(db.path, mode="delete", backup_before=True):
            pass  # restored as new files before the runtime made any call
        with DisconnectFault(db.path, mode="rename"):
            with pytest.raises(DatabaseError):
                db.execute("INSERT INTO t VALUES (60, 'during the fault')")
        db.execute("INSERT INTO t VALUES (50, 'after heal')")
        assert db.fetch_one("SELECT count(*) FROM t") == (51,)
        assert stale_files(tmp_path) == []
    finally:
        db.close()


def test_a_stale_identity_record_never_vouches_for_the_old_file_s_wal(tmp_path):
    """The identity record maps inode numbers, and a freed number is handed out again at once (ext4 gave the
    next file the same inode 50 times in 50). Here the record says the WAL left by the old file belongs to the
    operator's copy put at the path, as a reused number can make it say (one CI run: the copy's row was lost).
    The fingerprint taken while the runtime's connection still held that WAL open wins: it is set aside, and the
    copy is served as it is."""
    db = rows_in_the_wal(tmp_path)
    copy = tmp_path / "copy.db"
    module = db.connections.module  # (the runtime's build: another library's last close would checkpoint its WAL)
    try:
        src, dst = module.connect(db.path, isolation_level=None), module.connect(str(copy), isolation_level=None)
        try:
            src.backup(dst)  # every committed row, the WAL's included, in a file of its own
            dst.execute("INSERT INTO t VALUES (99, 'the copy''s own row')")
        finally:
            dst.close()
            src.close()
        wal = os.stat(db.path + "-wal")
        new = os.stat(copy)
        db.connections._wal_of[(new.st_dev, new.st_ino)] = (wal.st_dev, wal.st_ino)  # what a reused number does
        os.replace(copy, db.path)
        db.execute("INSERT INTO t VALUES (50, 'after the replace')")
        assert db.fetch_one("SELECT v FROM t WHERE id = 99") == ("the copy's own row",)
        assert db.fetch_one("SELECT count(*) FROM t") == (52,)
        assert [n.split(".stale-")[0] for n in stale_files(tmp_path)] == ["app.db-shm", "app.db-wal"]
    finally:
        db.close()
