"""Which SQLite build holds a ``LockedFault``'s lock: the victim's own.

POSIX locks belong to the process and each SQLite library keeps its own table of them, so two builds
in one process do not see each other's locks, and one build closing the file drops the other's locks.
The first two tests check those facts (LockedFault's rule rests on them); the others check the rule.
They need a second build (pysqlite3-binary or sqlean.py), which the tox cells install.
"""

from __future__ import annotations

import importlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import LockedFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager


def other_build() -> ModuleType:
    for name in ("pysqlite3.dbapi2", "sqlean"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("needs a second SQLite build in this environment (pysqlite3-binary or sqlean.py: the "
                "tox cells py3*-pysqlite3 and py3*-sqlean install one)")


def make_db(module: ModuleType, path: Path) -> None:
    conn = module.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.close()


def test_a_lock_held_through_another_build_in_this_process_is_not_seen(tmp_path: Path) -> None:
    other = other_build()
    path = tmp_path / "app.db"
    make_db(other, path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    victim = other.connect(path, isolation_level=None, timeout=0.05)
    victim.execute("INSERT INTO t VALUES (1)")  # no SQLITE_BUSY: the stdlib's lock is invisible here
    assert victim.execute("SELECT count(*) FROM t").fetchone() == (1,)
    victim.close()
    holder.rollback()
    holder.close()


def test_another_build_closing_the_file_drops_the_locks_of_this_process(tmp_path: Path) -> None:
    other = other_build()
    path = tmp_path / "app.db"
    make_db(other, path)
    holder = other.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    sqlite3.connect(path).close()  # opens and closes its own descriptor of the same file
    probe = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=0.05, isolation_level=None)\n"
             "c.execute('INSERT INTO t VALUES (2)')\n")
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
    holder.rollback()
    holder.close()
    assert out.returncode == 0, out.stderr  # another process wrote during our EXCLUSIVE transaction


def test_given_the_victims_connection_the_holder_uses_its_build(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    other = other_build()
    monkeypatch.delenv(MODULE_ENV, raising=False)  # a bare path would get the stdlib's build
    path = tmp_path / "app.db"
    make_db(other, path)
    victim = other.connect(path, isolation_level=None, timeout=0.05)
    with LockedFault(victim, mode="write") as fault:
        assert fault.module is other
        with pytest.raises(other.OperationalError, match="locked"):
            victim.execute("INSERT INTO t VALUES (1)")
    victim.execute("INSERT INTO t VALUES (1)")  # healed
    victim.close()


def test_given_a_manager_the_holder_uses_the_runtimes_build(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    other = other_build()
    monkeypatch.delenv(MODULE_ENV, raising=False)
    with DatabaseManager(fast_config(tmp_path / "app.db", sqlite_module=other.__name__)) as db:
        db.execute("CREATE TABLE t (x)")
        with LockedFault(db, mode="write") as fault:
            assert fault.module is other
            with pytest.raises(Exception, match="locked"):
                db.connection.execute("INSERT INTO t VALUES (1)")
