"""One shim per SQLite build: the stdlib's, and another build's own copy of SQLite (``pysqlite3``, ``sqlean``).

A fault given a bare path acts on the build ``DBFAULT_SQLITE_MODULE`` names; a connection of another build
in the same process never meets it (two copies of SQLite share nothing, not even their VFS lists).
"""

from __future__ import annotations

import sqlite3
import types

import pytest

from pytest_dbfault.faults.target import MODULE_ENV
from pytest_dbfault.vfs import get_shim, vfs_available
from pytest_dbfault.vfs.faults import IoErrorFault

#: Other builds the runtime supports (``RELIABILITY_SQLITE_MODULE``): each links its own SQLite into its extension.
BUILDS = ("pysqlite3.dbapi2", "sqlean")


def _build(name: str) -> types.ModuleType:
    module = pytest.importorskip(name, reason=f"{name} is not installed in this environment (the tox cell of that "
                                              "build installs it)")
    module = module if hasattr(module, "connect") else module.dbapi2
    ok, reason = vfs_available(module)
    if not ok:
        pytest.skip(f"the shim cannot be registered in {name}'s SQLite here: {reason}")
    return module


def test_the_stdlib_shim_is_the_default_one_by_any_name(needs_vfs):
    # (sqlite3.dbapi2 is the same library: a second shim there would register a second "dbfault" VFS in it)
    assert get_shim() is get_shim(sqlite3) is get_shim("sqlite3") is get_shim("sqlite3.dbapi2")
    assert get_shim().module is sqlite3


@pytest.mark.parametrize("name", BUILDS)
def test_another_build_gets_its_own_shim_in_its_own_sqlite(name):
    module = _build(name)
    shim = get_shim(name)
    assert shim is get_shim(module) and shim is not get_shim()
    assert shim.module is module


@pytest.mark.parametrize("name", BUILDS)
def test_a_fault_at_a_path_reaches_the_build_the_environment_names_and_no_other(name, tmp_path, monkeypatch):
    module = _build(name)
    db = str(tmp_path / "app.db")
    setup = module.connect(db, isolation_level=None)
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    monkeypatch.setenv(MODULE_ENV, name)
    with IoErrorFault(db, ops="write", nth=1) as fault:
        stdlib = sqlite3.connect(db, isolation_level=None)
        try:
            stdlib.execute("INSERT INTO t VALUES (1)")  # another copy of SQLite: never through this shim
        finally:
            stdlib.close()
        assert fault.fired == 0
        conn = module.connect(db, isolation_level=None)
        try:
            with pytest.raises(module.OperationalError, match="disk I/O error"):
                conn.execute("INSERT INTO t VALUES (2)")
        finally:
            conn.close()
        assert fault.fired == 1
    check = module.connect(db, isolation_level=None)
    try:
        assert check.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        check.close()


def test_a_build_with_no_sqlite_library_to_hook_is_refused_with_the_reason():
    fake = types.ModuleType("fake_sqlite_build")

    class Connection:  # a pure-Python stand-in: no C extension carries it
        pass

    fake.Connection = Connection  # type: ignore[attr-defined]
    fake.sqlite_version = "3.0.0"  # type: ignore[attr-defined]
    ok, reason = vfs_available(fake)
    assert not ok
    assert "no loaded C extension module implements fake_sqlite_build.Connection" in reason


def test_a_module_that_cannot_be_imported_is_refused_with_the_reason():
    ok, reason = vfs_available("no_such_sqlite_build_xyz")
    assert not ok and "'no_such_sqlite_build_xyz' cannot be imported" in reason
