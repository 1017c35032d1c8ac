"""End to end through pytest: collection, ids, xdist, broken files, failure reports, extension commands."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

GOOD = """
seed: 5
scenarios:
  - name: first
    setup:
      migrations:
        - {version: 1, name: t, up: "CREATE TABLE t (x INTEGER)"}
      data:
        t:
          generate: 3
          columns: {x: {provider: pyint, args: {max_value: 9}}}
    steps:
      - command: sql
        args: {sql: "INSERT INTO t VALUES (42)"}
      - expect: {rows: {t: 4}, property: 6}
  - name: second one
    steps:
      - command: ping
        expect: {result: pong}
"""


def write(pytester: pytest.Pytester, name: str, text: str) -> Path:
    path = pytester.path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_each_scenario_is_an_item_with_a_stable_id(pytester: pytest.Pytester) -> None:
    write(pytester, "a.dbfault.yaml", GOOD)
    result = pytester.runpytest("--dbfault", "--collect-only", "-q", "a.dbfault.yaml")
    result.stdout.fnmatch_lines(["a.dbfault.yaml::first", "a.dbfault.yaml::second one"])


def test_scenario_files_are_not_collected_without_dbfault(pytester: pytest.Pytester) -> None:
    write(pytester, "a.dbfault.yaml", GOOD)
    result = pytester.runpytest("--collect-only", "-q", "a.dbfault.yaml")
    assert "a.dbfault.yaml::first" not in result.stdout.str()


def test_passing_scenarios_pass_and_count_their_property_checks(pytester: pytest.Pytester) -> None:
    write(pytester, "a.dbfault.yaml", GOOD)
    result = pytester.runpytest("--dbfault", "--dbfault-report=r.json", "a.dbfault.yaml")
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "r.json").read_text())
    assert "p06_transaction_atomicity" in json.dumps(report)


def test_a_broken_scenario_fails_alone_with_file_line_and_suggestion(pytester: pytest.Pytester) -> None:
    write(pytester, "b.dbfault.yaml", """
        scenarios:
          - name: fine
            steps: [{command: ping}]
          - name: typo
            steps:
              - fault: disk_ful
          - name: also fine
            steps: [{command: ping}]
        """)
    result = pytester.runpytest("--dbfault", "b.dbfault.yaml")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "b.dbfault.yaml:7: scenarios?1?.steps?0?.fault: unknown fault 'disk_ful'; did you mean 'disk_full'? *",
        "     7 |       - fault: disk_ful",
    ])
    assert "Traceback" not in result.stdout.str()


def test_bad_yaml_fails_one_file_item_and_the_run_goes_on(pytester: pytest.Pytester) -> None:
    write(pytester, "bad.dbfault.yaml", "scenarios:\n  - name: x\n    steps: [\n")
    write(pytester, "a.dbfault.yaml", GOOD)
    result = pytester.runpytest("--dbfault", ".")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*bad.dbfault.yaml:4: invalid YAML*", "FAILED bad.dbfault.yaml::[[]file[]]*"])
    assert "Traceback" not in result.stdout.str()


def test_a_failing_scenario_reports_step_expectation_faults_and_seed(pytester: pytest.Pytester) -> None:
    write(pytester, "f.dbfault.yaml", """
        seed: 77
        scenarios:
          - name: locked out
            setup:
              migrations:
                - {version: 1, name: t, up: "CREATE TABLE t (x INTEGER)"}
            steps:
              - fault: locked
                params: {mode: exclusive}
              - command: sql
                args: {sql: "INSERT INTO t VALUES (1)"}
        """)
    result = pytester.runpytest("--dbfault", "f.dbfault.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "scenario 'locked out' failed at f.dbfault.yaml:11",
        "  step:          command: sql {'sql': 'INSERT INTO t VALUES (1)'}",
        "  expected:      ok",
        "  got:           error (busy): *",
        "  active faults: locked(mode='exclusive', duration=None, holder='thread')",
        "  seed:          77 (replay with --dbfault-seed=77)",
    ])


def test_the_file_seed_pins_its_scenarios_whatever_the_run_seed(pytester: pytest.Pytester) -> None:
    # Like a marker's seed=: replaying a run with its --dbfault-seed must rerun the file's own values.
    write(pytester, "f.dbfault.yaml", """
        seed: 77
        scenarios:
          - name: fails
            steps:
              - command: ping
                expect: busy
        """)
    result = pytester.runpytest("--dbfault", "--dbfault-seed=123", "f.dbfault.yaml")
    result.stdout.fnmatch_lines(["  seed:          77 (replay with --dbfault-seed=77)"])


def test_an_application_registers_its_own_command_through_the_hook(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        def place_order(ctx, customer, total=0.0):
            '''Insert one order.'''
            ctx.db.execute("CREATE TABLE IF NOT EXISTS orders (customer TEXT, total REAL)")
            ctx.db.execute("INSERT INTO orders VALUES (?, ?)", (customer, total))
            return customer

        def pytest_dbfault_register_commands(register):
            register("place_order", place_order)
    """)
    write(pytester, "o.dbfault.yaml", """
        scenarios:
          - name: orders are placed
            steps:
              - command: place_order
                args: {customer: ada, total: 9.5}
                expect: {result: ada}
              - expect: {query: {sql: "SELECT customer, total FROM orders", result: [[ada, 9.5]]}}
          - name: a misspelt argument is caught before running
            steps:
              - command: place_order
                args: {custmer: ada}
        """)
    result = pytester.runpytest("--dbfault", "o.dbfault.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*o.dbfault.yaml:12: * unknown argument 'custmer' for command 'place_order';"
                                 " did you mean 'customer'? (accepted: customer, total)"])


def test_ids_are_the_same_on_every_xdist_worker(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed in this environment")
    write(pytester, "a.dbfault.yaml", GOOD)
    write(pytester, "c.dbfault.yaml", GOOD.replace("first", "third"))
    result = pytester.runpytest_subprocess("--dbfault", "-n", "2", "-p", "no:randomly", "-v", ".")
    result.assert_outcomes(passed=4)
    ids = sorted(set(re.findall(r"PASSED (\S+\.dbfault\.yaml::[^\n]+?)\s*$", result.stdout.str(), re.M)))
    assert ids == ["a.dbfault.yaml::first", "a.dbfault.yaml::second one", "c.dbfault.yaml::second one",
                   "c.dbfault.yaml::third"]
