"""Chaos mode: real transient faults in every connection an existing suite opens (pytest_dbfault.chaos)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pytest_dbfault.chaos import ChaosInjector, ChaosUsageError, parse_kinds, parse_rate
from pytest_dbfault.vfs import vfs_available
from reliability.errors import error_name


def _db(path: Path, journal: str = "delete") -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def _run_victim(path: Path, kind: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5)
    if kind == "busy_snapshot":
        conn.isolation_level = None
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM t").fetchall()
        conn.execute("INSERT INTO t VALUES (1)")
    else:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    return conn


@pytest.mark.parametrize(("kind", "journal", "error"), [
    ("locked", "delete", "SQLITE_BUSY"),
    ("busy_commit", "delete", "SQLITE_BUSY"),
    ("busy_snapshot", "wal", "SQLITE_BUSY_SNAPSHOT"),
    ("io_error", "delete", "SQLITE_IOERR_WRITE"),
])
def test_each_chaos_kind_makes_sqlite_itself_fail(tmp_path: Path, kind: str, journal: str,
                                                  error: str) -> None:
    if kind == "io_error" and not vfs_available()[0]:
        pytest.skip(f"the VFS shim cannot be registered in this Python's SQLite: {vfs_available()[1]}")
    path = tmp_path / "app.db"
    _db(path, journal)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=[kind])
    with chaos.installed():
        chaos.begin("t")
        with pytest.raises(sqlite3.OperationalError) as info:
            _run_victim(path, kind)
        injections = chaos.end()
    if getattr(info.value, "sqlite_errorcode", None) is None:
        error = "_".join(error.split("_")[:2])  # Python 3.10: only the primary code, read from SQLite's message
    assert error_name(info.value) == error
    assert [i.kind for i in injections] == [kind]
    assert injections[0].error is not None and error in injections[0].error


def test_busy_at_commit_leaves_the_transaction_open_and_a_retry_commits(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    _db(path)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["busy_commit"])
    with chaos.installed():
        conn = sqlite3.connect(path, timeout=5)
        conn.execute("INSERT INTO t VALUES (1)")
        chaos.begin("t")
        with pytest.raises(sqlite3.OperationalError):
            conn.commit()
        assert conn.in_transaction
        with chaos.paused():
            conn.commit()
        chaos.end()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_the_same_seed_and_test_id_meet_the_same_faults(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> list[tuple[str, str]]:
        path = tmp_path / name
        _db(path)
        chaos = ChaosInjector(seed=seed, rate=0.3, kinds=["locked"])
        with chaos.installed():
            conn = sqlite3.connect(path, isolation_level=None)
            chaos.begin("tests/test_app.py::test_x")
            for i in range(40):
                try:
                    conn.execute("INSERT INTO t VALUES (?)", (i,))
                except sqlite3.OperationalError:
                    pass
            conn.close()
            return [(i.kind, i.sql) for i in chaos.end()]

    first, again = run(7, "a.db"), run(7, "b.db")
    assert first == again and first


def test_connect_is_untouched_outside_install_and_between_tests(tmp_path: Path) -> None:
    original = sqlite3.connect
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked"])
    with chaos.installed():
        assert sqlite3.connect is not original
        path = tmp_path / "app.db"
        _db(path)  # no begin(): no test running, nothing injected
        assert chaos.end() == []
    assert sqlite3.connect is original


def test_an_in_memory_database_is_left_alone() -> None:
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked"])
    with chaos.installed():
        chaos.begin("t")
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        assert chaos.end() == []


def test_coverage_data_files_and_fault_lifecycle_listeners_never_meet_chaos(tmp_path: Path) -> None:
    # Found running the suite under --dbfault-coverage: coverage keeps its data in SQLite, and the
    # context switch made while a fault is injected wrote to it through the chaos connect.
    from coverage.debug import NoDebugging
    from coverage.sqlitedb import SqliteDb

    from pytest_dbfault.faults.base import LIFECYCLE_LISTENERS

    path = tmp_path / "app.db"
    _db(path)
    data = SqliteDb(str(tmp_path / ".coverage"), NoDebugging())
    written: list[str] = []

    def listener(fault: object, event: str) -> None:  # a listener that writes SQLite, like coverage's
        conn = sqlite3.connect(tmp_path / "listener.db")
        conn.execute("CREATE TABLE IF NOT EXISTS e (x)")
        conn.execute("INSERT INTO e VALUES (?)", (event,))
        conn.commit()
        conn.close()
        written.append(event)

    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked"])
    LIFECYCLE_LISTENERS.append(listener)
    try:
        with chaos.installed():
            chaos.begin("t")
            with data:
                data.execute_void("CREATE TABLE IF NOT EXISTS c (x)")
                data.execute_void("INSERT INTO c VALUES (1)")
                assert type(data.con) is sqlite3.Connection
            with pytest.raises(sqlite3.OperationalError):
                _run_victim(path, "locked")
            injections = chaos.end()
    finally:
        LIFECYCLE_LISTENERS.remove(listener)
    assert [i.kind for i in injections] == ["locked"]
    assert written == ["inject", "heal"]


def test_bad_rates_and_names_say_what_was_wrong() -> None:
    assert parse_rate("5%") == pytest.approx(0.05)
    with pytest.raises(ChaosUsageError, match="--dbfault-chaos-rate: invalid value '1.5'"):
        parse_rate("1.5")
    with pytest.raises(ChaosUsageError, match="unknown chaos fault 'lockd'"):
        parse_kinds("lockd")
    assert "closed" in parse_kinds("all") and "closed" not in parse_kinds(None)


# -- through pytest -----------------------------------------------------------------------------
APP_TESTS = '''
import sqlite3

def _write(path, retry):
    conn = sqlite3.connect(path, timeout=5)
    for i in range(20):
        for attempt in range(50):
            try:
                conn.execute("INSERT INTO t VALUES (?)", (i,))
                conn.commit()
                break
            except sqlite3.OperationalError:
                conn.rollback()
                if not retry:
                    raise
    n = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    conn.close()
    return n

def _new(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    while True:  # set-up that absorbs the faults, so only the writes below decide the outcome
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            break
        except sqlite3.OperationalError:
            pass
    conn.close()
    return path

def test_without_retry(tmp_path):
    assert _write(_new(tmp_path), retry=False) == 20

def test_with_retry(tmp_path):
    assert _write(_new(tmp_path), retry=True) == 20

def test_broken_anyway(tmp_path):
    _write(_new(tmp_path), retry=True)
    assert False, "this test fails with or without faults"
'''


def test_a_test_that_passes_clean_but_fails_under_chaos_is_reported_with_its_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_app=APP_TESTS)
    result = pytester.runpytest("--dbfault-chaos", "--dbfault-chaos-rate=0.5", "--dbfault-seed=3",
                                "--dbfault-chaos-faults=locked,busy_commit", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "dbfault chaos: seed 3, rate 0.5, faults locked, busy_commit",
        "*NOT FAULT-TOLERANT: 1 tests pass without faults and fail with them:",
        "  test_app.py::test_without_retry: * -> OperationalError: database is locked (SQLITE_BUSY)",
        "    replay: pytest --dbfault-chaos --dbfault-seed=3 --dbfault-chaos-rate=0.5 "
        "'test_app.py::test_without_retry'",
        "failing without faults too (not counted): 1",
    ])
    assert "test_with_retry:" not in result.stdout.str()


def test_the_json_report_lists_the_not_fault_tolerant_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP_TESTS)
    result = pytester.runpytest("test_app.py", "--dbfault", "--dbfault-chaos", "--dbfault-chaos-rate=0.5",
                                "--dbfault-seed=3", "--dbfault-chaos-faults=locked",
                                "--dbfault-report=r.json")
    result.assert_outcomes(passed=1, failed=2)
    chaos = json.loads((pytester.path / "r.json").read_text())["chaos"]
    assert [t["nodeid"] for t in chaos["not_fault_tolerant"]] == ["test_app.py::test_without_retry"]
    assert chaos["not_fault_tolerant"][0]["injections"][-1]["kind"] == "locked"
    assert chaos["failing_without_faults"] == ["test_app.py::test_broken_anyway"]
    assert chaos["seed"] == 3 and chaos["injections"] > 0


def test_under_xdist_the_workers_find_the_same_tests_and_one_merged_report_lists_them(
    pytester: pytest.Pytester,
) -> None:
    # Each test's faults come from the run seed and its own id, not from the worker that ran it.
    pytester.makepyfile(test_app=APP_TESTS)
    args = ("test_app.py", "--dbfault", "--dbfault-chaos", "--dbfault-chaos-rate=0.5", "--dbfault-seed=3",
            "--dbfault-chaos-faults=locked,busy_commit", "-p", "no:randomly", "-p", "no:cacheprovider")
    single = pytester.runpytest_subprocess(*args, "--dbfault-report=one.json")
    spread = pytester.runpytest_subprocess(*args, "-n", "2", "--dbfault-report=two.json")
    single.assert_outcomes(passed=1, failed=2)
    spread.assert_outcomes(passed=1, failed=2)
    one = json.loads((pytester.path / "one.json").read_text())["chaos"]
    two = json.loads((pytester.path / "two.json").read_text())["chaos"]
    assert [t["nodeid"] for t in two["not_fault_tolerant"]] == ["test_app.py::test_without_retry"]

    def same_run(entries: list[dict]) -> list[dict]:  # the tmp paths differ per worker, nothing else may
        return [{**e, "injections": [{k: v for k, v in i.items() if k != "database"} for i in e["injections"]]}
                for e in entries]

    assert same_run(two["not_fault_tolerant"]) == same_run(one["not_fault_tolerant"])
    assert two["failing_without_faults"] == one["failing_without_faults"] == ["test_app.py::test_broken_anyway"]
    assert two["injections"] == one["injections"] > 0
    spread.stdout.fnmatch_lines(["*NOT FAULT-TOLERANT: 1 tests pass without faults and fail with them:"])


def test_without_the_option_connections_are_plain(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="""
        import sqlite3
        def test_plain():
            assert type(sqlite3.connect(":memory:")) is sqlite3.Connection
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_bad_chaos_rate_stops_the_run_with_a_clear_message(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--dbfault-chaos", "--dbfault-chaos-rate=often")
    result.stderr.fnmatch_lines(["*--dbfault-chaos-rate: invalid value 'often'; expected a probability*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
