"""Chaos mode reaches an application on another SQLite build (pysqlite3, sqlean), and says what it did not reach.

Each build carries its own copy of SQLite, with its own table of the process's file locks: a lock taken
through the stdlib's ``sqlite3`` is not seen by a ``pysqlite3`` connection in the same process, and
closing a stdlib connection drops the locks ``pysqlite3`` holds on that file. So chaos wraps the
``connect`` of every build that can be imported and arranges each fault through the victim's own build.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.chaos import ChaosInjector
from pytest_dbfault.faults import make_fault
from pytest_dbfault.vfs import vfs_available
from reliability.errors import error_name

pysqlite3 = pytest.importorskip("pysqlite3", reason="pysqlite3 is not installed here (pip install pysqlite3-binary; "
                                "the py313-pysqlite3 cell has it)")
dbapi2: Any = pytest.importorskip("pysqlite3.dbapi2")


def extended_codes() -> bool:
    """Does this build's DB-API report extended result codes? (pysqlite3-binary 0.5 reports only the primary
    one: 19 for a UNIQUE violation, 5 for a stale WAL snapshot, where the stdlib says 2067 and 517.)"""
    conn = dbapi2.connect(":memory:")
    conn.execute("CREATE TABLE u (x UNIQUE)")
    conn.execute("INSERT INTO u VALUES (1)")
    try:
        conn.execute("INSERT INTO u VALUES (1)")
    except dbapi2.IntegrityError as exc:
        return getattr(exc, "sqlite_errorcode", None) == 2067
    finally:
        conn.close()
    raise AssertionError("a UNIQUE violation raised nothing")


def make_db(path: Path, journal: str = "delete") -> None:
    conn = dbapi2.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def victim(connect: Any, path: Path, kind: str) -> Any:
    """The application's statements, on a connection from ``connect``; raises what chaos made SQLite say."""
    conn = connect(path, timeout=5)
    if kind == "busy_snapshot":
        conn.isolation_level = None
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM t").fetchall()
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    return conn


@pytest.mark.parametrize("connect", ["pysqlite3.connect", "pysqlite3.dbapi2.connect"])
@pytest.mark.parametrize(("kind", "journal", "error"), [
    ("locked", "delete", "SQLITE_BUSY"),
    ("busy_commit", "delete", "SQLITE_BUSY"),
    ("busy_snapshot", "wal", "SQLITE_BUSY_SNAPSHOT"),
])
def test_each_contention_kind_reaches_a_pysqlite3_application(tmp_path: Path, connect: str, kind: str, journal: str,
                                                              error: str) -> None:
    path = tmp_path / "app.db"
    make_db(path, journal)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=[kind])
    with chaos.installed():
        assert "pysqlite3.dbapi2" in chaos.wrapped
        chaos.begin("t")
        # Looked up at call time, as the application does (pysqlite3.connect is the same function).
        function = (pysqlite3 if connect == "pysqlite3.connect" else dbapi2).connect
        with pytest.raises(dbapi2.OperationalError) as info:
            victim(function, path, kind)
        injections = chaos.end()
    assert [i.kind for i in injections] == [kind]
    if not extended_codes():
        error = "_".join(error.split("_")[:2])  # SQLite's own code is 517; this build tells only its primary
    assert error_name(info.value) == error, info.value
    assert chaos.connections["pysqlite3.dbapi2"] == 1
    assert pysqlite3.connect is dbapi2.connect and not hasattr(dbapi2.connect, "__wrapped__")  # put back


def test_closed_reaches_a_pysqlite3_application(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    make_db(path)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["closed"])
    with chaos.installed():
        chaos.begin("t")
        with pytest.raises(dbapi2.ProgrammingError):
            victim(dbapi2.connect, path, "closed")
        assert [i.kind for i in chaos.end()] == ["closed"]


def test_busy_commit_keeps_the_pysqlite3_victims_lock_against_other_processes(tmp_path: Path) -> None:
    """The fault's helper connections are the victim's build: a stdlib connection opened and closed on the
    file (to read its journal mode) dropped the victim's RESERVED lock, and another process could write
    in the middle of its transaction."""
    path = tmp_path / "app.db"
    make_db(path)
    conn = dbapi2.connect(path, isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    fault = make_fault("busy_commit", conn, timeout=0)
    with fault:
        # Before the COMMIT (which takes PENDING, seen by everyone): only the RESERVED lock keeps writers out.
        other = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
            try:
                c.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                print("refused:", exc)
            else:
                print("got the write lock")
        """), str(path)], capture_output=True, text=True, check=True)
        assert other.stdout.startswith("refused: database is locked"), other.stdout
        with pytest.raises(dbapi2.OperationalError):
            conn.execute("COMMIT")
        assert conn.in_transaction
    conn.execute("COMMIT")
    assert dbapi2.connect(path).execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_io_faults_reach_the_build_the_vfs_faults_act_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, why = vfs_available(dbapi2)
    if not ok:
        pytest.skip(f"the VFS shim cannot be registered in pysqlite3's SQLite here: {why}")
    monkeypatch.setenv("DBFAULT_SQLITE_MODULE", "pysqlite3.dbapi2")
    path = tmp_path / "app.db"
    make_db(path)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["io_error"])
    with chaos.installed():
        chaos.begin("t")
        with pytest.raises(dbapi2.OperationalError) as info:
            victim(dbapi2.connect, path, "io_error")
        injections = chaos.end()
    assert [i.kind for i in injections] == ["io_error"]
    assert "disk I/O error" in str(info.value)
    assert any("reach only connections of pysqlite3.dbapi2" in n and n.endswith("not those of sqlite3")
               for n in chaos.notes), chaos.notes


def test_io_faults_say_which_build_they_cannot_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not vfs_available()[0]:
        pytest.skip(f"the VFS shim cannot be registered in the stdlib's SQLite here: {vfs_available()[1]}")
    monkeypatch.delenv("DBFAULT_SQLITE_MODULE", raising=False)
    path = tmp_path / "app.db"
    make_db(path)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["io_error"])
    with chaos.installed():
        chaos.begin("t")
        victim(dbapi2.connect, path, "io_error").close()  # not this build's shim: nothing drawn, nothing claimed
        assert chaos.end() == []
    assert any("io_error and disk_full reach only connections of sqlite3" in n and "pysqlite3.dbapi2" in n
               for n in chaos.notes), chaos.notes


def test_a_build_left_unwrapped_is_named_and_no_coverage_is_claimed(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    make_db(path)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked"], modules=["sqlite3"])
    with chaos.installed():
        chaos.begin("t")
        victim(dbapi2.connect, path, "locked").close()  # not wrapped: meets nothing
        assert chaos.end() == []
    assert chaos.wrapped == ["sqlite3"] and chaos.connections == {"sqlite3": 0}
    assert any(n.startswith("pysqlite3") and "not wrapped: connections made through it met no chaos" in n
               for n in chaos.notes), chaos.notes


PYSQLITE3_APP = """
from pysqlite3 import dbapi2 as sqlite3


def test_writes(tmp_path):
    conn = sqlite3.connect(tmp_path / "app.db", timeout=1)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    for i in range(20):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.commit()
"""


def test_a_pysqlite3_suite_meets_chaos_and_the_report_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=PYSQLITE3_APP)
    result = pytester.runpytest_subprocess("--dbfault-chaos", "--dbfault-seed=1", "--dbfault-chaos-rate=1",
                                           "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "NOT FAULT-TOLERANT: 1 tests" in out, out
    assert "test_app.py::test_writes: locked at 'CREATE TABLE t (x)'" in out, out
    assert "NOTHING MET CHAOS" not in out
