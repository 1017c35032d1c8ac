"""Without --dbfault the plugin stays out of the way: no output, no heavy imports, no side effects."""

from __future__ import annotations

import pytest


def test_without_dbfault_nothing_is_printed_imported_or_cached(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import sys

        def test_nothing_heavy_was_imported():
            # The libraries, and dbfault's own injectors (which pull in sqlite3), load on first use only.
            heavy = {"reliability", "yaml", "faker", "hypothesis", "sqlite3", "pytest_dbfault.per_test",
                     "pytest_dbfault.report", "pytest_dbfault.faults", "pytest_dbfault.vfs"}
            assert sorted(heavy & set(sys.modules)) == []
    """)
    # Other plugins that import their own libraries are left out, so only dbfault's imports count.
    result = pytester.runpytest_subprocess("-p", "no:faker", "-p", "no:hypothesispytest", "-p", "no:pytest_cov")
    result.assert_outcomes(passed=1)
    assert "dbfault:" not in result.stdout.str()
    assert not (pytester.path / ".pytest_cache" / "v" / "dbfault").exists()


def test_without_dbfault_the_summary_and_report_are_left_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import sqlite3

        def test_uses_the_fixture(dbfault):
            dbfault.locked(dbfault.new_db(), mode="write")
    """)
    result = pytester.runpytest("--dbfault-report=r.json", "--junitxml=j.xml")
    result.assert_outcomes(passed=1)
    assert "dbfault:" not in result.stdout.str() and "= dbfault =" not in result.stdout.str()
    assert not (pytester.path / "r.json").exists()
    assert "dbfault_faults" not in (pytester.path / "j.xml").read_text()
