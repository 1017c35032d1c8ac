"""The dbfault, dbfault_kind, fault_db_path and reliable_db fixtures, end to end through pytester."""

from __future__ import annotations

import json
import tempfile

import pytest


def test_the_factory_makes_a_registered_fault_that_really_breaks_sqlite(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import sqlite3
        import pytest

        def test_writes_are_refused(dbfault):
            conn = sqlite3.connect(dbfault.new_db())
            conn.execute("CREATE TABLE t (x)")
            fault = dbfault.query_only(conn)
            assert fault.active and dbfault.active == [fault]
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                conn.execute("INSERT INTO t VALUES (1)")
            fault.heal()
            conn.execute("INSERT INTO t VALUES (1)")
            assert dbfault.injected == ["query_only"]
    """)
    query_only_project.runpytest().assert_outcomes(passed=1)


def test_it_heals_faults_the_test_forgot(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import sqlite3

        conn = None

        def test_forgets_to_heal(dbfault):
            global conn
            conn = sqlite3.connect(dbfault.new_db())
            dbfault.make("query_only", conn)

        def test_the_connection_is_writable_again():
            assert conn.execute("PRAGMA query_only").fetchone()[0] == 0
            conn.execute("CREATE TABLE t (x)")
    """)
    query_only_project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_fault_used_as_a_context_manager_is_healed_at_the_end_of_the_block(
    query_only_project: pytest.Pytester,
) -> None:
    query_only_project.makepyfile("""
        import sqlite3
        import pytest

        def test_block(dbfault):
            conn = sqlite3.connect(dbfault.new_db())
            with dbfault.query_only(conn) as fault:
                with pytest.raises(sqlite3.OperationalError):
                    conn.execute("CREATE TABLE t (x)")
            assert not fault.active
            conn.execute("CREATE TABLE t (x)")
    """)
    query_only_project.runpytest().assert_outcomes(passed=1)


def test_an_unknown_fault_name_says_which_names_exist(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        def test_typo(dbfault):
            dbfault.query_onyl("x")
    """)
    result = query_only_project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown fault 'query_onyl'; did you mean 'query_only'?*"])


def test_new_db_hands_out_fresh_paths_under_the_tests_tmp_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_paths(dbfault, tmp_path, fault_db_path):
            first, second = dbfault.new_db(), dbfault.new_db()
            assert (first.name, second.name) == ("test.db", "test-2.db")
            assert first.parent == second.parent == tmp_path == fault_db_path.parent
            assert dbfault.new_db("orders.db").name == "orders.db"
            assert not fault_db_path.exists()
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_each_test_gets_a_seeded_rng_that_does_not_depend_on_the_order_of_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import json, pathlib

        def record(dbfault, name):
            out = pathlib.Path(__file__).parent / "draws.jsonl"
            with out.open("a") as f:
                f.write(json.dumps([name, dbfault.seed, dbfault.rng.random()]) + "\\n")

        def test_a(dbfault):
            record(dbfault, "a")

        def test_b(dbfault):
            record(dbfault, "b")
    """)
    pytester.runpytest("--dbfault-seed=11", "-p", "no:randomly").assert_outcomes(passed=2)
    pytester.runpytest("--dbfault-seed=11", "-p", "no:randomly", "-k", "test_b").assert_outcomes(passed=1)
    pytester.runpytest("--dbfault-seed=12", "-p", "no:randomly", "-k", "test_b").assert_outcomes(passed=1)
    rows = [json.loads(line) for line in (pytester.path / "draws.jsonl").read_text().splitlines()]
    (a, seed_a, draw_a), (b, _, draw_b), (b_alone, _, draw_b_alone), (_, seed_12, draw_12) = rows
    assert (a, b, b_alone) == ("a", "b", "b")
    assert seed_a == 11 and seed_12 == 12
    assert draw_b == draw_b_alone  # same seed, same test: same draw, whatever ran before
    assert draw_a != draw_b  # the test id is part of the derivation
    assert draw_12 != draw_b  # and so is the seed


def test_faults_that_take_a_seed_get_one_derived_from_the_run_seed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_dbfault.faults.base import Fault

        class Seeded(Fault):
            name = "seeded_example"

            def __init__(self, path, *, seed=0):
                super().__init__(path=str(path), seed=seed)

            def _inject(self):
                pass

        def pytest_dbfault_register_faults(register):
            register(Seeded)
    """)
    pytester.makepyfile("""
        import pathlib

        def test_seeds(dbfault, tmp_path):
            derived = dbfault.seeded_example(tmp_path / "x.db").params["seed"]
            explicit = dbfault.seeded_example(tmp_path / "x.db", seed=5).params["seed"]
            with (pathlib.Path(__file__).parent / "seeds.txt").open("a") as f:
                f.write(f"{derived}\\n")
            assert explicit == 5
    """)
    for seed in ("3", "3", "4"):
        pytester.runpytest(f"--dbfault-seed={seed}").assert_outcomes(passed=1)
    first, second, other = (pytester.path / "seeds.txt").read_text().split()
    assert first == second != other


def test_a_failing_test_shows_the_seed_that_replays_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_fails(dbfault):
            assert False
    """)
    result = pytester.runpytest("--dbfault-seed=321")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*seed 321: replay with --dbfault-seed=321*"])


def test_reliable_db_is_a_database_manager_on_the_fault_db_path_with_fast_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from reliability import DatabaseManager

        def test_db(reliable_db, fault_db_path):
            assert isinstance(reliable_db, DatabaseManager)
            assert str(reliable_db.path) == str(fault_db_path)
            cfg = reliable_db.config
            assert (cfg.busy_timeout_ms, cfg.retry_attempts, cfg.backup_interval) == (50, 3, 0)
            assert cfg.health_check_interval == cfg.integrity_check_interval == cfg.config_reload_interval == 0
            reliable_db.execute("CREATE TABLE t (x)")
            reliable_db.execute("INSERT INTO t VALUES (1)")
            assert reliable_db.fetch_one("SELECT x FROM t")[0] == 1
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_reliable_db_is_closed_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import sqlite3
        import pytest

        kept = []

        def test_uses_it(reliable_db):
            reliable_db.execute("CREATE TABLE t (x)")
            kept.append(reliable_db.connection)

        def test_it_was_closed():
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                kept[0].execute("SELECT 1")
    """)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_reliable_db_config_can_be_overridden_by_a_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_dbfault import fast_test_config

        @pytest.fixture
        def reliable_db_config(fault_db_path):
            return fast_test_config(fault_db_path, journal_mode="DELETE")

        def test_db(reliable_db):
            assert reliable_db.fetch_one("PRAGMA journal_mode")[0] == "delete"
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_factory_lets_faults_act_under_a_basetemp_outside_the_system_temp_dir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("""
        import sqlite3, tempfile
        import pytest
        from pytest_dbfault.faults import LockedFault, FaultError

        def test_tmp_path_is_allowed_without_the_fixture_and_the_system_temp_dir_is_not(tmp_path):
            sqlite3.connect(tmp_path / "x.db").close()
            fault = LockedFault(tmp_path / "x.db")
            fault.inject()
            fault.heal()
            outside = tempfile.mkdtemp()  # the system temp dir: another program's files may be there
            with pytest.raises(FaultError, match="outside the allowed roots"):
                LockedFault(outside + "/x.db").inject()

        def test_lock(dbfault, tmp_path):
            assert not tmp_path.is_relative_to(tempfile.gettempdir())
            path = dbfault.new_db()
            sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
            dbfault.locked(path, mode="write")
            victim = sqlite3.connect(path, timeout=0.01)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                victim.execute("INSERT INTO t VALUES (1)")
    """)
    monkeypatch.setattr(tempfile, "tempdir", str(pytester.mkdir("system-tmp")))
    result = pytester.runpytest(f"--basetemp={pytester.path / 'basetemp'}", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
