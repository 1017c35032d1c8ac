"""Every registered fault: the targets it accepts (as the docs' table says), what it says when given the wrong
one, and a repr that never breaks, before and after inject and heal."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault import fast_test_config
from pytest_dbfault.faults import FaultError, allow_root, forget_root
from pytest_dbfault.faults.catalog import BUILTIN, fault_params, markdown_table
from pytest_dbfault.faults.corrupt import CorruptFault
from pytest_dbfault.faults.registry import fault_names, get_fault_class
from pytest_dbfault.vfs.errors import VfsUnavailable
from reliability import DatabaseManager

ROOT = Path(__file__).parents[2]
BROKEN_REPR = re.compile(r"raised in repr|repr failed|not initialised")

#: Parameters without which a fault cannot be made at all (not about the target).
NEEDS = {"corrupt": {"table": "items", "backup_before": True}}


@pytest.fixture
def allowed(tmp_path: Path) -> Iterator[Path]:
    """This test's tmp_path as an allowed fault root, for this test only (no session-wide state)."""
    allow_root(tmp_path)
    yield tmp_path
    forget_root(tmp_path)


@pytest.fixture
def targets(allowed: Path, make_db: Callable[..., Path]) -> Iterator[dict[str, Any]]:
    """A path, a connection and a manager on one small database."""
    path = make_db("target.db")
    conn = sqlite3.connect(path, isolation_level=None)
    manager = DatabaseManager(fast_test_config(path, journal_mode="DELETE"))
    yield {"path": path, "connection": conn, "manager": manager}
    manager.close()
    conn.close()


def test_every_registered_fault_is_in_the_catalog() -> None:
    shipped = [n for n in fault_names() if get_fault_class(n).__module__.startswith("pytest_dbfault.")]
    assert sorted(BUILTIN) == shipped


def test_the_fault_table_in_the_docs_is_the_generated_one() -> None:
    doc = (ROOT / "docs" / "plugin.md").read_text()
    assert markdown_table() in doc, "paste pytest_dbfault.faults.catalog.markdown_table() into docs/plugin.md"


@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("kind", ["path", "connection", "manager"])
def test_each_fault_takes_the_targets_the_table_says(targets: dict[str, Any], name: str, kind: str) -> None:
    cls = get_fault_class(name)
    if kind in BUILTIN[name].accepts:
        fault = cls(targets[kind], **NEEDS.get(name, {}))
        assert fault.params is not None and not fault.active
        return
    with pytest.raises(FaultError) as refused:
        cls(targets[kind], **NEEDS.get(name, {}))
    # Refused when made, saying what to pass instead.
    assert re.search(r"pass the|give the|must be a path|takes the database path", str(refused.value)), refused.value


def test_a_path_for_disk_full_says_to_pass_the_connection(targets: dict[str, Any]) -> None:
    with pytest.raises(FaultError, match=r"pass the sqlite3.Connection or DatabaseManager .*dbfault.disk_full\(conn\)"):
        get_fault_class("disk_full")(targets["path"])


def test_a_path_for_disconnect_close_lists_the_modes_that_work_on_a_file(targets: dict[str, Any]) -> None:
    with pytest.raises(FaultError, match="delete, rename, replace, replace_for_good, readonly, truncate"):
        get_fault_class("disconnect")(targets["path"])
    fault = get_fault_class("disconnect")(targets["path"], mode="rename")  # a file mode takes the path
    with fault:
        assert not targets["path"].exists()
    assert targets["path"].exists()


def test_a_connection_for_an_io_fault_names_the_path_to_pass(targets: dict[str, Any]) -> None:
    with pytest.raises(FaultError, match=f"pass the database file \\({re.escape(str(targets['path']))}\\)"):
        get_fault_class("io_error")(targets["connection"])


# -- repr -----------------------------------------------------------------------------------------------
def injectable(name: str, tmp_path: Path, make_db: Callable[..., Path], keep: list[Any]) -> tuple[Any, dict]:
    """A target and parameters with which ``name`` really injects."""
    if name == "busy_snapshot":
        conn = sqlite3.connect(make_db("wal.db", journal_mode="wal"), isolation_level=None)
        keep.append(conn)
        return conn, {}
    if name in ("disk_full", "disconnect"):
        conn = sqlite3.connect(make_db("victim.db"), isolation_level=None)
        keep.append(conn)
        return conn, {}
    if name == "file_full":
        side = tmp_path / "side.log"
        keep.append(open(side, "ab"))  # noqa: SIM115 - the fault needs a descriptor open on it
        return side, {}
    if name == "crash":
        return tmp_path / "crash.db", {}
    return make_db(f"{name}.db"), NEEDS.get(name, {})


@pytest.mark.parametrize("name", fault_names())
def test_repr_never_breaks_before_and_after_inject_and_heal(allowed: Path, tmp_path: Path,
                                                           make_db: Callable[..., Path], name: str) -> None:
    cls = get_fault_class(name)
    bare = repr(cls.__new__(cls))  # what a debugger shows for `self` before __init__ ran
    assert bare.startswith(f"<{cls.__name__} ") and "raised in repr" not in bare
    keep: list[Any] = []
    try:
        target, params = injectable(name, tmp_path, make_db, keep)
        fault = cls(target, **params)
        seen = [repr(fault)]
        try:
            fault.inject()
        except VfsUnavailable as exc:  # the shim cannot live in this libsqlite3: repr after a failed inject
            seen.append(repr(fault))
            pytest.skip(f"{name} cannot be injected here ({exc}); repr checked before and after the attempt")
        seen.append(repr(fault))
        fault.heal()
        seen.append(repr(fault))
    finally:
        for thing in keep:
            thing.close()
    assert [bool(BROKEN_REPR.search(r)) for r in seen] == [False] * len(seen), seen
    assert seen[0].endswith("idle>") and seen[1].endswith("active>") and seen[2].endswith("idle>")


def test_repr_of_a_fault_whose_constructor_raised_is_readable(make_db: Callable[..., Path]) -> None:
    # Issue 19.5: `<[AttributeError(...) raised in repr()] CorruptFault>` in pytest's traceback of this call.
    with pytest.raises(FaultError, match="needs table=") as info:
        CorruptFault(make_db())
    frame_self = next(tb.frame.f_locals["self"] for tb in info.traceback if "self" in tb.frame.f_locals)
    assert repr(frame_self) == "<CorruptFault corrupt (not initialised)>"


def test_the_catalog_parameters_are_the_constructor_parameters() -> None:
    # What scenarios and the schema check is read from the signature, not written twice.
    params, is_open = fault_params(get_fault_class("locked"))
    assert not is_open
    by_name = {p.name: p for p in params}
    assert by_name["mode"].default == "exclusive" and by_name["mode"].choices == ("write", "exclusive")
    assert by_name["duration"].types == ("number", "null")
    assert by_name["mode"].accepts("writ") == "expected one of write, exclusive; did you mean 'write'?"
    crash, crash_open = fault_params(get_fault_class("crash"))
    assert not crash_open and "kill_at" in {p.name for p in crash}  # run_and_kill's options, through options_of
