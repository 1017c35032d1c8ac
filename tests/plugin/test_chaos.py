"""Chaos mode: real transient faults in every connection an existing suite opens (pytest_dbfault.chaos)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pytest_dbfault.chaos import ChaosInjector, ChaosUsageError, blamed_injection, parse_kinds, parse_rate
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
    ("disk_full", "delete", "SQLITE_FULL"),
])
def test_each_chaos_kind_makes_sqlite_itself_fail(tmp_path: Path, kind: str, journal: str,
                                                  error: str) -> None:
    if kind in ("io_error", "disk_full") and not vfs_available()[0]:
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


def test_begin_immediate_in_wal_meets_the_lock_and_a_writer_meets_no_more_contention(tmp_path: Path) -> None:
    # WAL applications meet contention at BEGIN IMMEDIATE; once they hold the write lock no
    # contention fault can apply, so none is drawn (rate 1: every eligible statement is drawn).
    path = tmp_path / "app.db"
    _db(path, "wal")
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked", "busy_commit", "busy_snapshot"])
    with chaos.installed():
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
        chaos.begin("t")
        with pytest.raises(sqlite3.OperationalError) as info:
            conn.execute("BEGIN IMMEDIATE")
        assert error_name(info.value) == "SQLITE_BUSY"
        first = chaos.end()
        with chaos.paused():
            conn.execute("BEGIN IMMEDIATE")
        chaos.begin("t2")
        for i in range(5):
            conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
        assert chaos.end() == [] and chaos.without_effect == {}
    assert [(i.kind, i.sql) for i in first] == [("locked", "BEGIN IMMEDIATE")]


def test_only_faults_the_application_saw_are_counted(tmp_path: Path) -> None:
    # DROP TABLE IF EXISTS of a missing table takes no lock: a lock held elsewhere changes nothing.
    path = tmp_path / "app.db"
    _db(path)
    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked"])
    with chaos.installed():
        conn = sqlite3.connect(path, isolation_level=None)
        chaos.begin("t")
        conn.execute("DROP TABLE IF EXISTS missing")
        with pytest.raises(sqlite3.OperationalError) as info:
            conn.execute("INSERT INTO t VALUES (1)")
        seen = chaos.end()
    assert [i.sql for i in seen] == ["INSERT INTO t VALUES (1)"]
    assert chaos.without_effect == {"locked": 1}
    assert blamed_injection(RuntimeError("wrapped")) is None
    try:
        raise RuntimeError("the application's own error") from info.value
    except RuntimeError as wrapped:
        assert blamed_injection(wrapped) is seen[0]


def test_each_thread_draws_from_its_own_stream_so_a_seed_gives_the_same_faults(tmp_path: Path) -> None:
    import threading

    # The threads run one after the other, in start order or in reverse: with one generator shared
    # by all threads, the reverse order would hand each thread other draws.
    def run(name: str, reverse: bool) -> list[tuple[str, str, str]]:
        path = tmp_path / name
        _db(path, "wal")
        chaos = ChaosInjector(seed=5, rate=0.3, kinds=["locked"])
        with chaos.installed():
            chaos.begin("tests/test_app.py::test_threads")
            gates = [threading.Event() for _ in range(4)]

            def work(n: int) -> None:
                gates[n].wait()
                conn = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
                for i in range(15):
                    try:
                        conn.execute("INSERT INTO t VALUES (?)", (f"{n}-{i}",))
                    except sqlite3.OperationalError:
                        pass
                conn.close()

            threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            for n in (reversed(range(4)) if reverse else range(4)):
                gates[n].set()
                threads[n].join()
            return sorted((i.thread, i.kind, i.sql) for i in chaos.end())

    first, again = run("a.db", False), run("b.db", True)
    assert first == again
    assert {thread for thread, _k, _s in first} == {"thread-1", "thread-2", "thread-3", "thread-4"}


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

    from pytest_dbfault.faults.base import FaultEvent, subscribe, unsubscribe

    path = tmp_path / "app.db"
    _db(path)
    data = SqliteDb(str(tmp_path / ".coverage"), NoDebugging())
    written: list[str] = []

    def listener(event: FaultEvent) -> None:  # a subscriber that writes SQLite, like coverage's
        conn = sqlite3.connect(tmp_path / "listener.db")
        conn.execute("CREATE TABLE IF NOT EXISTS e (x)")
        conn.execute("INSERT INTO e VALUES (?)", (event.action,))
        conn.commit()
        conn.close()
        written.append(f"{event.action} {event.kind}")

    chaos = ChaosInjector(seed=1, rate=1.0, kinds=["locked"])
    subscribe(listener)
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
        unsubscribe(listener)
    assert [i.kind for i in injections] == ["locked"]
    assert written == ["injected chaos_locked", "healed chaos_locked"]


def test_bad_rates_and_names_say_what_was_wrong() -> None:
    assert parse_rate("5%") == pytest.approx(0.05)
    with pytest.raises(ChaosUsageError, match="--dbfault-chaos-rate: invalid value '1.5'"):
        parse_rate("1.5")
    with pytest.raises(ChaosUsageError, match="unknown chaos fault 'lockd'"):
        parse_kinds("lockd")
    assert parse_kinds(None) == parse_kinds("contention") == ("locked", "busy_commit", "busy_snapshot")
    assert set(parse_kinds("all")) == {"locked", "busy_commit", "busy_snapshot", "io_error", "disk_full", "closed"}
    assert parse_kinds("contention,io_error") == ("locked", "busy_commit", "busy_snapshot", "io_error")
    assert parse_kinds("hard") == ("io_error", "disk_full", "closed")


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
        "dbfault chaos: Using --dbfault-seed=3 --dbfault-chaos-rate=0.5 --dbfault-chaos-faults=locked,busy_commit",
        "*NOT FAULT-TOLERANT: 1 tests pass without faults and fail with them:",
        "  test_app.py::test_without_retry: * -> OperationalError: database is locked (SQLITE_BUSY)",
        "    replay: pytest test_app.py::test_without_retry --dbfault-chaos --dbfault-seed=3 "
        "--dbfault-chaos-rate=0.5 --dbfault-chaos-faults=locked,busy_commit",
        "failing without faults too (not counted): 1",
        "  test_app.py::test_broken_anyway",
    ])
    assert "test_with_retry:" not in result.stdout.str()
    # The failure itself names its fault and replay line (Python's own traceback: --tb not given).
    result.stdout.fnmatch_lines(["*Traceback (most recent call last):*", "*- dbfault chaos -*",
                                 "fault: * at 'INSERT INTO t VALUES (?)' on * -> *SQLITE_BUSY*",
                                 "replay: pytest test_app.py::test_without_retry --dbfault-chaos *"])


def test_the_json_report_lists_the_not_fault_tolerant_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP_TESTS)
    result = pytester.runpytest("test_app.py", "--dbfault", "--dbfault-chaos", "--dbfault-chaos-rate=0.5",
                                "--dbfault-seed=3", "--dbfault-chaos-faults=locked",
                                "--dbfault-report=r.json")
    result.assert_outcomes(passed=1, failed=2)
    chaos = json.loads((pytester.path / "r.json").read_text())["chaos"]
    assert [t["nodeid"] for t in chaos["not_fault_tolerant"]] == ["test_app.py::test_without_retry"]
    finding = chaos["not_fault_tolerant"][0]
    assert finding["blamed"]["kind"] == "locked" and finding["blamed_by"] == "exception chain"
    assert finding["blamed"] in finding["injections"]
    assert chaos["failing_without_faults"] == ["test_app.py::test_broken_anyway"]
    assert chaos["seed"] == 3 and chaos["injections"]["total"] > 0
    assert chaos["injections"]["total"] == sum(chaos["injections"]["by_kind"].values())


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
        def strip(i: dict) -> dict:
            return {k: v for k, v in i.items() if k != "database"}

        return [{**e, "blamed": strip(e["blamed"]), "injections": [strip(i) for i in e["injections"]]}
                for e in entries]

    assert same_run(two["not_fault_tolerant"]) == same_run(one["not_fault_tolerant"])
    assert two["failing_without_faults"] == one["failing_without_faults"] == ["test_app.py::test_broken_anyway"]
    assert two["injections"] == one["injections"] and one["injections"]["total"] > 0
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


# -- the situations of issue #18, made for real under pytester -----------------------------------
SHARED_CONNECTION_SUITE = '''
import sqlite3
import tempfile
from pathlib import Path
import pytest

class Store:
    """A module-level database object with a session flag, as many applications keep one."""
    def __init__(self, path):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        self.in_session = False
    def begin(self):
        if self.in_session:
            raise RuntimeError("already inside a session")
        self.in_session = True
    def end(self):
        self.in_session = False

STORE = Store(Path(tempfile.mkdtemp()) / "shared.db")  # at import: before any test, no chaos yet

@pytest.fixture
def session():
    STORE.begin()
    yield STORE
    STORE.end()

def test_0_plain_connect():
    # Fails under chaos although no fault was drawn for it: it checks the class of the connection.
    assert type(sqlite3.connect(":memory:")) is sqlite3.Connection

def test_1_writes():
    STORE.begin()
    STORE.conn.execute("INSERT INTO t VALUES (1)")   # meets the fault: the session is left open
    STORE.end()

def test_2_reads(session):
    assert session.conn.execute("SELECT 1").fetchone() == (1,)

def test_3_reads_too(session):
    assert session.conn.execute("SELECT 2").fetchone() == (2,)

def test_4_broken():
    assert False, "broken with or without faults"
'''


def _chaos_json(pytester: pytest.Pytester, name: str) -> dict:
    return json.loads((pytester.path / name).read_text())["chaos"]


def test_a_suite_sharing_a_module_level_object_gets_one_finding_and_its_collateral(
    pytester: pytest.Pytester,
) -> None:
    # test_1 dies inside a session of the shared object: test_2 and test_3 then fail in set-up with no
    # fault of their own. A rerun in the same process would fail them again and call them broken.
    pytester.makepyfile(test_suite=SHARED_CONNECTION_SUITE)
    result = pytester.runpytest("test_suite.py", "--dbfault-chaos", "--dbfault-chaos-rate=1", "--dbfault-seed=1",
                                "--dbfault-chaos-faults=locked", "--dbfault-report=r.json", "-p", "no:randomly")
    result.assert_outcomes(failed=3, errors=2)
    chaos = _chaos_json(pytester, "r.json")
    assert [t["nodeid"] for t in chaos["not_fault_tolerant"]] == ["test_suite.py::test_1_writes"]
    assert chaos["not_fault_tolerant"][0]["blamed"]["sql"] == "INSERT INTO t VALUES (1)"
    assert {t["nodeid"]: t["why"] for t in chaos["collateral"]} == {
        "test_suite.py::test_0_plain_connect": "failed before any fault could be drawn",
        "test_suite.py::test_2_reads": "collateral of test_suite.py::test_1_writes",
        "test_suite.py::test_3_reads_too": "collateral of test_suite.py::test_1_writes",
    }
    assert chaos["failing_without_faults"] == ["test_suite.py::test_4_broken"]
    result.stdout.fnmatch_lines([
        "NOT FAULT-TOLERANT: 1 tests pass without faults and fail with them:",
        "  test_suite.py::test_1_writes: locked at 'INSERT INTO t VALUES (1)' -> *SQLITE_BUSY*",
        "collateral (not counted): 3 tests *",
        "  test_suite.py::test_2_reads: collateral of test_suite.py::test_1_writes",
    ])


RETRYING_LIBRARY = '''
import sqlite3
import pytest

def transaction(path, work, tries=100):
    """What a library that retries contention by design does: rerun the whole transaction."""
    for _ in range(tries):
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            conn.execute("BEGIN IMMEDIATE")
            work(conn)
            conn.execute("COMMIT")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc).lower():
                raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
    raise AssertionError("no try succeeded")

@pytest.fixture(params=["wal", "delete"])
def db(request, tmp_path):
    path = tmp_path / "lib.db"
    def create(conn):
        conn.execute(f"PRAGMA journal_mode={request.param}")
    c = sqlite3.connect(path, isolation_level=None)
    c.execute(f"PRAGMA journal_mode={request.param}")
    c.close()
    transaction(path, lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS t (x)"))
    return path

@pytest.mark.parametrize("n", range(6))
def test_writes(db, n):
    for i in range(10):
        transaction(db, lambda conn: (conn.execute("SELECT count(*) FROM t").fetchone(),
                                      conn.execute("INSERT INTO t VALUES (?)", (i,))))
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (10,)
'''


def test_a_library_that_retries_contention_stays_green_under_the_default_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lib=RETRYING_LIBRARY)
    result = pytester.runpytest("--dbfault-chaos", "--dbfault-chaos-rate=0.3", "--dbfault-seed=4",
                                "--dbfault-report=r.json")
    result.assert_outcomes(passed=12)
    chaos = _chaos_json(pytester, "r.json")
    assert chaos["faults"] == ["locked", "busy_commit", "busy_snapshot"]
    assert chaos["injections"]["by_kind"]["locked"] > 0  # BEGIN IMMEDIATE met the lock, and the retry won
    assert chaos["not_fault_tolerant"] == [] and chaos["collateral"] == []
    result.stdout.fnmatch_lines(["dbfault chaos: Using --dbfault-seed=4 --dbfault-chaos-rate=0.3 "
                                 "--dbfault-chaos-faults=contention", "not fault-tolerant: none"])


HANGING_WORKERS = '''
import queue
import sqlite3
import threading

def test_workers(tmp_path):
    path = tmp_path / "app.db"
    sqlite3.connect(path).executescript("CREATE TABLE t (x);")  # executescript meets no chaos
    app_lock, done, holding = threading.Lock(), queue.Queue(), threading.Event()

    def worker(n):
        app_lock.acquire()        # the application's own lock around its transaction...
        holding.set()
        conn = sqlite3.connect(path, timeout=5)
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        conn.commit()
        app_lock.release()        # ...never released when the write raises
        done.put(n)

    for n in range(2):
        threading.Thread(target=worker, args=(n,)).start()
        holding.wait()  # thread-1 takes the app's lock first, whatever the scheduler does under load
    assert sorted(done.get() for _ in range(2)) == [0, 1]
'''


def test_a_worker_waiting_for_ever_on_a_lock_is_reported_hung_and_the_session_ends(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_hang=HANGING_WORKERS)
    result = pytester.runpytest_subprocess("--dbfault-chaos", "--dbfault-chaos-rate=1", "--dbfault-seed=1",
                                           "--dbfault-chaos-faults=locked", "--dbfault-chaos-timeout=3",
                                           "-p", "no:cacheprovider", timeout=240)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*ChaosHang: hung after locked at 'INSERT INTO t VALUES (?)' (thread-1 thread)*",
        "HUNG: 1 tests pass without faults and hang with them:",
        "  test_hang.py::test_workers: hung after locked at 'INSERT INTO t VALUES (?)' (thread-1 thread)*",
        '    | *test_hang.py", line 11 in worker',  # faulthandler's stacks: a worker waits on the app's lock
    ])
    result.stderr.fnmatch_lines(["dbfault chaos: threads of a hung test still stuck at exit*ending the process"])


def test_a_pass_that_turns_into_a_skip_under_chaos_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_probe='''
        import sqlite3
        import pytest

        def supports_triggers(path):  # a capability probe that takes any error for "unsupported"
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("CREATE TABLE probe (x)")
                conn.execute("DROP TABLE probe")
                return True
            except sqlite3.OperationalError:
                return False

        def test_triggers(tmp_path):
            if not supports_triggers(tmp_path / "a.db"):
                pytest.skip("triggers not supported")

        @pytest.mark.skip(reason="skipped with or without faults")
        def test_always_skipped():
            pass
    ''')
    result = pytester.runpytest("--dbfault-chaos", "--dbfault-chaos-rate=1", "--dbfault-seed=1",
                                "--dbfault-chaos-faults=locked", "--dbfault-report=r.json")
    result.assert_outcomes(skipped=2)
    chaos = _chaos_json(pytester, "r.json")
    assert [t["nodeid"] for t in chaos["skipped_under_chaos"]] == ["test_probe.py::test_triggers"]
    assert chaos["skipped_under_chaos"][0]["blamed"]["sql"] == "CREATE TABLE probe (x)"
    result.stdout.fnmatch_lines([
        "SKIPPED UNDER CHAOS: 1 tests pass without faults and skip with them:",
        "  test_probe.py::test_triggers: *triggers not supported; locked at 'CREATE TABLE probe (x)'*",
    ])


def test_the_printed_replay_line_reproduces_the_same_injection(pytester: pytest.Pytester) -> None:
    import shlex
    import subprocess
    import sys

    pytester.makepyfile(test_app=APP_TESTS + '''

import pytest

@pytest.mark.parametrize("name", ["it's"])
def test_quoted(tmp_path, name):
    assert _write(_new(tmp_path), retry=False) == 20
''')
    result = pytester.runpytest("--dbfault-chaos", "--dbfault-chaos-rate=0.3", "--dbfault-seed=8",
                                "--dbfault-chaos-faults=locked,busy_commit,io_error", "--dbfault-report=r.json",
                                "-p", "no:randomly")
    first = {t["nodeid"]: t for t in _chaos_json(pytester, "r.json")["not_fault_tolerant"]}
    quoted = first["test_app.py::test_quoted[it's]"]
    line = next(line.strip()[len("replay: "):] for line in result.stdout.lines
                if line.strip().startswith("replay: ") and "test_quoted" in line)
    assert line == quoted["replay"] and "--dbfault-chaos-faults=locked,busy_commit,io_error" in line
    argv = shlex.split(line)
    assert argv[:2] == ["pytest", "test_app.py::test_quoted[it's]"]
    subprocess.run([sys.executable, "-m", *argv, "--dbfault-report=again.json", "-p", "no:cacheprovider"],
                   cwd=pytester.path, capture_output=True, check=False, timeout=240)
    again = _chaos_json(pytester, "again.json")["not_fault_tolerant"]

    def key(t: dict) -> list[tuple]:
        return [(i["kind"], i["sql"], i["error"], i["thread"]) for i in t["injections"]]

    assert [t["nodeid"] for t in again] == ["test_app.py::test_quoted[it's]"]
    assert key(again[0]) == key(quoted) and again[0]["blamed"]["kind"] == quoted["blamed"]["kind"]


def test_chaos_settings_come_from_the_environment_and_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeini("[pytest]\ndbfault_chaos_faults = locked,io_error\ndbfault_chaos_rate = 0.2\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    monkeypatch.setenv("DBFAULT_CHAOS", "1")
    monkeypatch.setenv("DBFAULT_CHAOS_RATE", "0.4")  # the environment beats the ini file
    monkeypatch.setenv("DBFAULT_SEED", "12")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["dbfault chaos: Using --dbfault-seed=12 --dbfault-chaos-rate=0.4 "
                                 "--dbfault-chaos-faults=locked,io_error"])
    monkeypatch.setenv("DBFAULT_CHAOS_TIMEOUT", "soon")
    bad = pytester.runpytest()
    bad.stderr.fnmatch_lines(["*DBFAULT_CHAOS_TIMEOUT: invalid value 'soon' (from the environment)*"])
    monkeypatch.delenv("DBFAULT_CHAOS_TIMEOUT")
    off = pytester.runpytest("--no-dbfault-chaos")
    assert "dbfault chaos" not in off.stdout.str()
