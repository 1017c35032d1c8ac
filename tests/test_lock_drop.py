"""No runtime call and no fault drops the SQLite locks of this process's connections (issue #15).

SQLite locks a database with POSIX (``fcntl``) locks, which belong to the process and the file: when
the process closes *any* descriptor of the file, every lock it holds on it is gone and SQLite does not
notice. A plain ``open()``/``read()``/``close()`` of the database while a connection is in a
transaction lets another process write under a reader or beside a writer (a malformed database).

Each test here makes a connection of this process hold a real lock, runs the call in question, then
asks *another process* for the conflicting lock without waiting (POSIX locks never conflict within
one process, so only another process can tell): it must be refused with SQLITE_BUSY. Rollback-journal
mode is the sharp case: there is never a ``-wal``/``-shm`` beside the file, so a read guarded by
"no WAL files, so no live connection" meets connections in the middle of their transactions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import fast_config, sqlite_module

from pytest_dbfault.faults import make_fault
from reliability import Inspector, files
from reliability.inspection import is_sqlite_file

#: ``python -c PROBE DB HOW``: another process asks for a lock with no busy wait and prints ``taken`` or
#: ``busy``. HOW is ``IMMEDIATE`` (RESERVED), ``EXCLUSIVE``, or ``exclusive-mode`` (``locking_mode=EXCLUSIVE``:
#: a WAL connection then takes SQLite's EXCLUSIVE lock on the database file, which every connection that has the
#: file open in WAL mode blocks), or ``posix`` for a file SQLite can no longer read (a damaged header): the write
#: lock on the bytes SQLite's SHARED locks cover, asked for directly. It exits without closing: a lock it should not
#: have got changes nothing.
PROBE = r"""
import os, pathlib, sqlite3, sys
path, how = sys.argv[1], sys.argv[2]
if how == "posix":
    import fcntl
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)  # SQLite's SHARED_FIRST, SHARED_SIZE
        print("taken", flush=True)
    except OSError:
        print("busy", flush=True)
    os._exit(0)
try:
    conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=rw", uri=True, timeout=0,
                           isolation_level=None)
    if how == "exclusive-mode":
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        how = "EXCLUSIVE"
    conn.execute("BEGIN " + how)
    print("taken", flush=True)
except sqlite3.OperationalError as exc:
    print("busy" if "locked" in str(exc) else "error " + str(exc), flush=True)
os._exit(0)
"""


def other_process_takes(path: Path, how: str) -> str:
    """``"taken"`` when another process got lock ``how`` on ``path`` at once, ``"busy"`` when it was refused."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), how], capture_output=True, text=True, timeout=60)
    answer = out.stdout.strip()
    assert answer in ("taken", "busy"), f"the probe could not ask: {answer} {out.stderr[-500:]}"
    return answer


def outside_bytes(damage: dict[str, Any]) -> bytes:
    """The bytes now at a recorded damage's place, read by another process."""
    code = "import sys; f = open(sys.argv[1], 'rb'); f.seek(int(sys.argv[2])); print(f.read(int(sys.argv[3])).hex())"
    out = subprocess.run([sys.executable, "-c", code, damage["file"], str(damage["offset"]), str(damage["length"])],
                         capture_output=True, text=True, timeout=60, check=True)
    return bytes.fromhex(out.stdout.strip())


def make_db(path: Path, journal_mode: str) -> None:
    """A database with two tables in ``journal_mode``, every connection closed."""
    conn = sqlite_module().connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("CREATE TABLE victim (x INTEGER, pad BLOB)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(50)])
    conn.executemany("INSERT INTO victim VALUES (?, randomblob(300))", [(i,) for i in range(50)])
    conn.close()


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A rollback-journal database and a connection of this process in a read transaction (SHARED lock)."""
    path = tmp_path / "app.db"
    make_db(path, "DELETE")
    conn = sqlite_module().connect(str(path), isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM t").fetchone()
    try:
        yield path, conn
    finally:
        conn.close()


def test_an_inspector_beside_a_read_transaction_keeps_the_reader_s_lock(reader: tuple[Path, Any]) -> None:
    """The Inspector reads the header (is it a WAL database at rest?) of a rollback-journal file, where no
    -wal/-shm ever exists; before, a plain open()/close() there dropped the reader's SHARED lock."""
    path, _ = reader
    assert other_process_takes(path, "EXCLUSIVE") == "busy"  # the reader's lock is seen from outside
    with Inspector(fast_config(path)) as view:
        assert view.journal_mode() == "delete"
    assert other_process_takes(path, "EXCLUSIVE") == "busy", (
        "building an Inspector dropped the SHARED lock of a read transaction in this process: another process "
        "could write under the reader")


def test_is_sqlite_file_beside_a_writer_keeps_the_writer_s_lock(tmp_path: Path) -> None:
    """``reliability restore PATH`` asks is_sqlite_file about any path, the live database included."""
    path = tmp_path / "app.db"
    make_db(path, "DELETE")
    writer = sqlite_module().connect(str(path), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # RESERVED: no other process may start writing
        writer.execute("INSERT INTO t VALUES (-1)")
        assert is_sqlite_file(path)
        assert other_process_takes(path, "IMMEDIATE") == "busy", (
            "is_sqlite_file dropped the RESERVED lock of a write transaction in this process: another process "
            "could write beside the writer")
        writer.execute("COMMIT")
    finally:
        writer.close()


@pytest.mark.parametrize(("journal_mode", "part"), [("DELETE", "btree"), ("DELETE", "header"), ("WAL", "btree"),
                                                    ("WAL", "header"), ("WAL", "wal_frame")])
def test_corrupt_damages_the_file_as_an_outside_process_would(tmp_path: Path, journal_mode: str, part: str) -> None:
    """A CorruptFault under a connection of this process: the file is damaged, backed up and restored, and the
    connection keeps its lock throughout (before, every read/write/copy of the fault was a plain open()/close()
    here, and in WAL mode its checkpoint ran on the stdlib's SQLite whatever build the victim used)."""
    path = tmp_path / "app.db"
    make_db(path, journal_mode)
    conn = sqlite_module().connect(str(path), isolation_level=None)
    # WAL: a connection holds SHARED for its whole life, and a writer keeps its frames in the -wal. Rollback
    # journal: a read transaction holds SHARED until it ends.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    if journal_mode == "WAL":
        conn.execute("INSERT INTO victim VALUES (-1, randomblob(300))")
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM t").fetchone()
    how = "exclusive-mode" if journal_mode == "WAL" else "EXCLUSIVE"
    try:
        assert other_process_takes(path, how) == "busy"
        fault = make_fault("corrupt", str(path), part=part, table="victim", seed=3, backup_before=True)
        fault.inject()
        if part == "header" and journal_mode != "WAL":
            how = "posix"  # SQLite in the probe now reads a damaged header first: ask for the lock bytes directly
        damaged = [r.detail for r in fault.records if r.action == "damaged"]
        assert damaged and damaged[0]["before"] != damaged[0]["after"], fault.records
        assert outside_bytes(damaged[0]) == bytes.fromhex(damaged[0]["after"]), "the damage is not in the file"
        assert other_process_takes(path, how) == "busy", f"CorruptFault({part}) dropped this process's locks"
        fault.heal()
        assert other_process_takes(path, how) == "busy", f"healing CorruptFault({part}) dropped this process's locks"
    finally:
        conn.close()


def test_the_database_head_is_read_from_the_file_now_at_the_path(tmp_path: Path) -> None:
    """The kept descriptor belongs to one file: a new file at the same path is read afresh."""
    path = tmp_path / "app.db"
    make_db(path, "DELETE")
    assert files.read_database_head(path, 16) == b"SQLite format 3\x00"
    os.replace(path, tmp_path / "old.db")
    path.write_bytes(b"not a database at all")
    assert files.read_database_head(path, 16) == b"not a database a"
    assert not is_sqlite_file(path)
    assert is_sqlite_file(tmp_path / "old.db")


#: ``python -c WRITER DB PREFIX``: another process commits 20 rows on a fresh connection and prints ``ok``.
WRITER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
for i in range(20):
    conn.execute("INSERT INTO t (id) VALUES (?)", (sys.argv[2] + str(i),))
conn.close()
print("ok", flush=True)
"""

#: ``python -c READER DB``: the ids another process sees, then quick_check's verdict.
READER = r"""
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10)
print(json.dumps([[r[0] for r in conn.execute("SELECT id FROM t")], conn.execute("PRAGMA quick_check").fetchone()[0]]))
"""


def test_a_shm_removed_under_a_live_manager_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """The -shm (WAL index) deleted while a manager has the database open, then other processes write.

    The manager's connection keeps the unlinked index; the other processes build a new one from the -wal:
    two indexes of one WAL. Before, the manager's next commit overwrote the frames another process had
    committed and closing it deleted the rest (40 of 80 acknowledged rows gone, quick_check ok), while
    health said healthy. Now the manager refuses before committing through the stale index, keeps that
    connection open (its close would checkpoint with the stale index and delete the live -wal) and says so.
    """
    import json

    from reliability import DatabaseError, DatabaseManager

    path = tmp_path / "app.db"
    acked: list[str] = []
    db = DatabaseManager(fast_config(path, journal_mode="WAL"))
    try:
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        for i in range(20):
            db.execute("INSERT INTO t (id) VALUES (?)", (f"m{i}",))
            acked.append(f"m{i}")
        os.unlink(f"{path}-shm")  # a cleanup script

        def other_process_writes(prefix: str) -> None:
            out = subprocess.run([sys.executable, "-c", WRITER, str(path), prefix], capture_output=True, text=True,
                                 timeout=60)
            assert out.stdout.strip() == "ok", out.stderr[-1000:]
            acked.extend(f"{prefix}{i}" for i in range(20))

        other_process_writes("b")
        try:
            db.execute("INSERT INTO t (id) VALUES ('m-late')")
            acked.append("m-late")  # acknowledged: it must survive like every other
        except DatabaseError as exc:
            assert "-shm" in str(exc), exc  # refused, and the error says why
        other_process_writes("d")
        assert str(db.health().status) != "healthy", "the WAL index was removed under the manager, yet healthy"
    finally:
        db.close()
    out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True, timeout=60)
    ids, verdict = json.loads(out.stdout)
    lost = sorted(set(acked) - set(ids))
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged rows lost: {lost[:5]}"
    assert verdict == "ok"


@pytest.mark.skipif(sqlite_module().__name__.split(".")[0] == "sqlite3",
                    reason="needs a second SQLite build (RELIABILITY_SQLITE_MODULE=pysqlite3.dbapi2): within one "
                           "library SQLite defers its closes while its connections hold locks")
def test_busy_commit_reads_the_journal_mode_on_the_victim_s_build(reader: tuple[Path, Any]) -> None:
    """busy_commit first asks the file's journal mode; it used to ask through the stdlib's SQLite, whose unlock
    and close in this process dropped the locks of a victim on another build: then neither the victim's read
    transaction nor the fault's own reader (SQLite counts that one as already held) blocked another process."""
    path, conn = reader
    fault = make_fault("busy_commit", conn)
    fault.inject()
    try:
        assert other_process_takes(path, "EXCLUSIVE") == "busy", "busy_commit dropped the victim's SHARED lock"
    finally:
        fault.heal()
    assert other_process_takes(path, "EXCLUSIVE") == "busy", "the victim's read transaction lost its lock"
