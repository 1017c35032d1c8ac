"""The pytest_dbfault_* hooks: extra faults, the runtime under test, observing injections."""

from __future__ import annotations

import pytest

from pytest_dbfault.faults.registry import fault_names


def test_a_conftest_registers_a_fault_for_the_session_only(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        from pytest_dbfault.faults.registry import fault_names

        def test_known():
            assert "query_only" in fault_names()
    """)
    query_only_project.runpytest().assert_outcomes(passed=1)
    assert "query_only" not in fault_names()
    query_only_project.runpytest().assert_outcomes(passed=1)  # registering again is no clash


def test_registering_a_taken_name_is_a_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_dbfault.faults.base import Fault

        class MyLock(Fault):
            name = "locked"

        def pytest_dbfault_register_faults(register):
            register(MyLock)
    """)
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fault name 'locked' is already registered by LockedFault*replace=True*"])


def test_every_injection_is_observed_with_its_test(query_only_project: pytest.Pytester) -> None:
    query_only_project.makeconftest(query_only_project.path.joinpath("conftest.py").read_text() + """
SEEN = []

def pytest_dbfault_fault_injected(fault, item):
    SEEN.append((fault.name, item.name, fault.active))
""")
    query_only_project.makepyfile("""
        import sqlite3
        from conftest import SEEN

        def test_inject_twice(dbfault):
            fault = dbfault.query_only(sqlite3.connect(dbfault.new_db()))
            fault.inject()  # already active: not a new injection
            fault.heal()
            fault.inject()

        def test_seen():
            assert SEEN == [("query_only", "test_inject_twice", True)] * 2
    """)
    query_only_project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_plugin_can_provide_the_runtime_under_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import sqlite3

        class TinyRuntime:
            closed = False

            def __init__(self, config):
                self.config = config
                self.conn = sqlite3.connect(config.db_path)

            def close(self):
                self.conn.close()
                TinyRuntime.closed = True

        def pytest_dbfault_runtime_factory(config):
            return TinyRuntime
    """)
    pytester.makepyfile("""
        from conftest import TinyRuntime

        def test_uses_it(reliable_db, fault_db_path):
            assert isinstance(reliable_db, TinyRuntime)
            assert reliable_db.config.db_path == str(fault_db_path)
            assert reliable_db.config.busy_timeout_ms == 50

        def test_it_was_closed():
            assert TinyRuntime.closed
    """)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
