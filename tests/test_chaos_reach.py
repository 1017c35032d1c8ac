"""A chaos run says when nothing met chaos, instead of a green run that looks like fault tolerance."""

from __future__ import annotations

import json

import pytest

from pytest_dbfault._glue.chaos_run import render_chaos_summary


def test_a_suite_that_opens_no_connection_through_a_wrapped_connect_is_told_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app="def test_nothing_sqlite():\n    assert 1 + 1 == 2\n")
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("--dbfault-chaos", "--dbfault-seed=1", f"--dbfault-report={report}",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "NOTHING MET CHAOS: no test made a connection through a wrapped connect (" in out, out
    section = json.loads(report.read_text())["chaos"]
    assert section["connections"] and not any(section["connections"].values()), section["connections"]


def test_a_suite_whose_connections_were_wrapped_is_not_told_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app="""
        import sqlite3

        def test_writes(tmp_path):
            conn = sqlite3.connect(tmp_path / "app.db")
            conn.execute("CREATE TABLE t (x)")
            conn.close()
    """)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("--dbfault-chaos", "--dbfault-seed=1", "--dbfault-chaos-rate=0.000001",
                                           f"--dbfault-report={report}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "NOTHING MET CHAOS" not in result.stdout.str()
    assert json.loads(report.read_text())["chaos"]["connections"]["sqlite3"] == 1


def test_workers_connections_are_added_up_before_the_verdict() -> None:
    """Under xdist the controller opens no connection itself: only the merged count may decide."""
    base = {"seed": 1, "rate": 0.05, "faults": ["locked"], "notes": [], "tests": 0,
            "injections": {"total": 0, "by_kind": {}}, "without_effect": {}, "not_fault_tolerant": [],
            "hung": [], "skipped_under_chaos": [], "collateral": [], "failing_without_faults": [], "not_rerun": []}
    from pytest_dbfault._glue.chaos_run import ChaosRun

    controller = {**base, "connections": {"sqlite3": 0}}
    ChaosRun._merge_into(controller, {**base, "tests": 3, "connections": {"sqlite3": 4}})
    assert controller["connections"] == {"sqlite3": 4}
    assert not any(line.startswith("NOTHING MET CHAOS") for line in render_chaos_summary(controller))
    assert any(line.startswith("NOTHING MET CHAOS") for line in render_chaos_summary({**base, "connections": {
        "sqlite3": 0}}))
