"""The dbfault terminal summary, the JSON report, JUnit properties, and all of it under xdist."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from pytest_dbfault.report import build_report, render_summary
from pytest_dbfault.stats import Stats


def build_prefix() -> str:
    """How the replay line starts in this environment: a tox cell's other SQLite build is named first."""
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip()
    return f"RELIABILITY_SQLITE_MODULE={module} " if module and module != "sqlite3" else ""


CHECKING_TESTS = """
    import sqlite3
    import pytest
    from pytest_dbfault.stats import record_check, record_violation

    def test_atomicity_under_query_only(dbfault):
        conn = sqlite3.connect(dbfault.new_db())
        dbfault.query_only(conn)
        record_check(6, ["query_only"])
        record_violation(6, ["query_only"])

    def test_logging_without_faults(dbfault):
        record_check(9)
"""


def test_the_summary_shows_checks_faults_and_violations_per_property(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile(CHECKING_TESTS)
    result = query_only_project.runpytest("--dbfault", "--dbfault-seed=8")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*= dbfault =*",
        f"seed 8 (replay with: {build_prefix()}pytest --dbfault --dbfault-seed=8*), SQLite *",
        "faults injected: query_only 1 (1 in total)",
        "property * none * locked * disk_full * corrupt * disconnect * other",
        "p06_transaction_atomicity * - * - * - * - * - * 1/0!1",
        "p09_technical_logging * 1 * - * - * - * - * -",
        "other fault kinds (U/A per property):",
        "  query_only: p06 1/0!1",
        "NOT EXERCISED under any fault: p01_connection_recovery, *",
        "VIOLATIONS: 1: p06_transaction_atomicity under query_only (1)",
        "verdict: pass (the violations above were recorded by tests that passed: they expected them)",
    ])
    assert "violations: none" not in result.stdout.str()


def test_the_json_report_holds_the_same_data(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile(CHECKING_TESTS)
    result = query_only_project.runpytest("--dbfault", "--dbfault-seed=8", "--dbfault-report=out/dbfault.json")
    result.assert_outcomes(passed=2)
    data = json.loads((query_only_project.path / "out" / "dbfault.json").read_text())
    assert {"seed", "sqlite_version", "python", "faults", "properties", "violations", "tests"} <= set(data)
    assert data["seed"] == 8
    assert data["faults"]["query_only"] == {"injected": 1, "selected": True, "family": None, "checks_under": 1,
                                           "checks_after": 0}
    assert data["faults"]["locked"]["injected"] == 0
    p06 = data["properties"]["p06_transaction_atomicity"]
    assert (p06["checks"], p06["violations"], p06["exercised_under_fault"]) == (
        {"query_only": 1}, {"query_only": 1}, True)
    assert data["properties"]["p09_technical_logging"]["exercised_under_fault"] is False
    assert data["violations"] == [{"property": "p06_transaction_atomicity", "fault": "query_only", "count": 1}]
    tests = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    assert tests["test_atomicity_under_query_only"] == {
        "nodeid": tests["test_atomicity_under_query_only"]["nodeid"], "outcome": "passed", "seed": 8,
        "kind": None, "faults": ["query_only"], "type": "test"}
    assert tests["test_logging_without_faults"]["faults"] == []
    assert data["matrix"]["p06_transaction_atomicity"]["other"] == {
        "query_only": {"under": 1, "after": 0, "violations": 1}}
    assert data["families"]["locked"] == ["busy_commit", "busy_snapshot", "locked"]


def test_the_json_report_records_failed_tests_and_their_faults(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import sqlite3

        def test_fails(dbfault):
            dbfault.query_only(sqlite3.connect(dbfault.new_db()))
            assert False, "the application lost a write"
    """)
    result = query_only_project.runpytest("--dbfault", "--dbfault-report=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- dbfault faults -*", "<QueryOnlyFault query_only() active>", "  inject"])
    (test,) = json.loads((query_only_project.path / "r.json").read_text())["tests"]
    assert (test["outcome"], test["faults"]) == ("failed", ["query_only"])


def test_each_test_reports_its_faults_as_junit_properties(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import sqlite3
        import pytest

        @pytest.mark.dbfault("query_only")
        def test_kind(dbfault, dbfault_kind):
            dbfault.make(dbfault_kind, sqlite3.connect(dbfault.new_db()))
    """)
    query_only_project.runpytest("--dbfault", "--dbfault-seed=5", "--junitxml=junit.xml").assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value")
             for p in ET.parse(query_only_project.path / "junit.xml").iter("property")}
    assert props == {"dbfault_seed": "5", "dbfault_kind": "query_only", "dbfault_faults": "query_only"}


def test_xdist_workers_share_the_seed_and_their_stats_are_merged(query_only_project: pytest.Pytester) -> None:
    query_only_project.makeini("[pytest]\ntestpaths = tests\n")
    query_only_project.mkdir("tests")
    scenarios = query_only_project.mkdir("scenarios")
    (scenarios / "test_many.py").write_text(
        "import sqlite3\n"
        "import pytest\n"
        "from pytest_dbfault.stats import record_check\n\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "def test_check(dbfault, n):\n"
        "    dbfault.query_only(sqlite3.connect(dbfault.new_db()))\n"
        "    record_check(1, ['query_only'])\n"
    )
    # Plugins this run does not need are left out: each of the three interpreters would import them.
    quiet = ("-p", "no:faker", "-p", "no:hypothesispytest", "-p", "no:pytest_cov")
    result = query_only_project.runpytest_subprocess("--dbfault", "-n", "2", "--dbfault-seed=42",
                                                     "--dbfault-report=r.json", *quiet)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["dbfault: Using --dbfault-seed=42", "faults injected: query_only 6 (6 in total)"])
    data = json.loads((query_only_project.path / "r.json").read_text())
    assert data["properties"]["p01_connection_recovery"]["checks"] == {"query_only": 6}
    assert data["faults"]["query_only"]["injected"] == 6
    assert len(data["tests"]) == 6 and {t["seed"] for t in data["tests"]} == {42}


def test_a_report_path_that_cannot_be_written_is_reported_not_a_crash(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(dbfault): pass")
    (pytester.path / "blocker").write_text("a file where a directory should be")
    result = pytester.runpytest("--dbfault", "--dbfault-report=blocker/r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["dbfault: could not write the JSON report to *blocker/r.json*"])


# -- rendering on its own ------------------------------------------------------------------------
def test_a_matrix_too_wide_for_the_terminal_becomes_one_line_per_property() -> None:
    stats = Stats()
    for kind in ("busy_snapshot", "busy_commit", "disk_full", "io_error", "power_loss", "short_read", "corrupt"):
        stats.record_check(1, [kind])
    data = build_report(stats, seed=1)
    wide = render_summary(data, width=400)
    narrow = render_summary(data, width=60)
    assert any(line.startswith("property ") for line in wide)
    assert not any(line.startswith("property ") for line in narrow)
    assert "p01_connection_recovery: locked 2/0, disk_full 1/0, corrupt 2/0, other 2/0" in narrow
    assert "  io_error: p01 1/0" in narrow and "  power_loss: p01 1/0" in narrow


def test_with_no_checks_the_summary_says_no_property_was_exercised() -> None:
    lines = render_summary(build_report(Stats(), seed=3))
    assert lines[-1] == "property checks: none recorded, so none of the 17 properties was exercised"
