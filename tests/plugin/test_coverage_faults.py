"""Which fault kinds reached which error handler (pytest_dbfault.coverage_faults, --dbfault-coverage)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_dbfault.coverage_faults import fault_label, find_handlers, kinds_in_context

APP = '''
import sqlite3


def write(path):
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    except sqlite3.OperationalError:
        conn.rollback()
        return "busy"
    finally:
        conn.close()
    return "ok"


def parse(text):
    try:
        return int(text)
    except ValueError:
        return None


def optional():
    try:
        import not_a_real_module  # noqa: F401
    except ImportError:  # dbfault: no fault
        return False
'''

TESTS = '''
import app
from pytest_dbfault.faults.base import Fault


class Leaked(Fault):
    name = "leaked"

    def _inject(self):
        pass


def test_a_fault_left_active_by_a_test():
    Leaked().inject()  # never healed: must not be credited with what later tests reach


def test_write_under_a_lock(dbfault, tmp_path):
    path = tmp_path / "app.db"
    assert app.write(path) == "ok"
    with dbfault.locked(path, mode="write"):
        assert app.write(path) == "busy"


def test_parse():
    assert app.parse("x") is None
    app.optional()
'''


def test_labels_carry_the_fault_kinds_on_top_of_the_previous_context() -> None:
    label = fault_label(["locked", "disk_full"], "tests/t.py::test_a|run")
    assert label == "tests/t.py::test_a|run|dbfault:disk_full+locked"
    assert kinds_in_context(label) == {"locked", "disk_full"}
    assert kinds_in_context("tests/t.py::test_a|run") == set()


def test_it_finds_except_handlers_and_raise_branches_with_their_functions(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP + "\n\ndef check(x):\n    if x < 0:\n        raise ValueError(x)\n")
    found = [(h.kind, h.function, h.catches, h.opted_out) for h in find_handlers(tmp_path)]
    assert found == [
        ("except", "write", "sqlite3.OperationalError", False),
        ("except", "parse", "ValueError", False),
        ("except", "optional", "ImportError", True),
        ("raise", "check", "ValueError", False),
    ]


def test_a_file_that_does_not_parse_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def f(:\n")
    with pytest.raises(ValueError, match=r"cannot parse .*bad\.py"):
        find_handlers(tmp_path)


def _project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=APP, test_app=TESTS)
    pytester.makeini("[pytest]\n")


def test_the_report_names_the_fault_kinds_that_reached_each_handler(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest_subprocess(
        "test_app.py", "--cov=app", "--cov-branch", "--cov-context=test", "--dbfault", "--dbfault-coverage",
        f"--dbfault-coverage-root={pytester.path / 'app.py'}", "--dbfault-report=r.json", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*dbfault coverage of error handlers*",
        "error-handler coverage of *app.py: branch coverage *%; 1 of 2 except handlers reached under a fault",
        "  app.py:10 write except sqlite3.OperationalError: locked",
        "NOT REACHED BY ANY FAULT: 1 except handlers",
        "  app.py:21 parse except ValueError (reached without a fault)",
    ])
    assert result.ret == 0
    data = json.loads((pytester.path / "r.json").read_text())["coverage"]
    by_line = {h["line"]: h for h in data["handlers"]}
    assert by_line[10]["faults"] == ["locked"]
    assert by_line[21] == {**by_line[21], "faults": [], "reached": True, "checked": True}
    assert by_line[28]["checked"] is False  # opted out with "# dbfault: no fault"
    assert data["unreached_by_fault"] == ["app.py:21"]


def test_under_xdist_the_workers_labels_reach_the_one_report(pytester: pytest.Pytester) -> None:
    # pytest-cov combines the workers' data on the controller; the labels made on the workers survive it.
    _project(pytester)
    result = pytester.runpytest_subprocess(
        "test_app.py", "-n", "2", "--cov=app", "--cov-branch", "--dbfault", "--dbfault-coverage",
        f"--dbfault-coverage-root={pytester.path / 'app.py'}", "--dbfault-report=r.json")
    result.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "r.json").read_text())["coverage"]
    by_line = {h["line"]: h for h in data["handlers"]}
    assert by_line[10]["faults"] == ["locked"]
    assert data["unreached_by_fault"] == ["app.py:21"]
    assert data["metric"] == "branch" and data["percent"] is not None


def test_a_handler_reacting_to_a_chaos_fault_is_labelled_with_its_kind(pytester: pytest.Pytester) -> None:
    # Chaos heals each fault right after the statement it broke; the application's except clause runs
    # after that, so the kind must stay in the label until the test ends.
    pytester.makepyfile(app=APP, test_chaos_app="""
        import sqlite3
        import app

        def test_write_meets_chaos(tmp_path):
            path = tmp_path / "db.sqlite"
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.close()
            assert app.write(path) in ("ok", "busy")
    """)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(
        "test_chaos_app.py", "--cov=app", "--dbfault", "--dbfault-chaos", "--dbfault-chaos-rate=1",
        "--dbfault-chaos-faults=locked", "--dbfault-seed=1", "--dbfault-coverage",
        f"--dbfault-coverage-root={pytester.path / 'app.py'}", "--dbfault-report=r.json")
    result.assert_outcomes(passed=1)
    by_line = {h["line"]: h for h in json.loads((pytester.path / "r.json").read_text())["coverage"]["handlers"]}
    assert by_line[10]["faults"] == ["chaos_locked"]  # chaos faults carry their own kind names
    assert by_line[21]["reached"] is False


def test_the_fault_label_composes_with_pytest_cov_test_contexts(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.runpytest_subprocess("test_app.py", "--cov=app", "--cov-context=test", "--dbfault-coverage",
                                  f"--dbfault-coverage-root={pytester.path / 'app.py'}")
    from coverage import CoverageData

    data = CoverageData(str(pytester.path / ".coverage"))
    data.read()
    assert "test_app.py::test_write_under_a_lock|run|dbfault:locked" in data.measured_contexts()
    assert "test_app.py::test_write_under_a_lock|run" in data.measured_contexts()


def test_fail_under_fails_the_run_when_a_handler_is_reached_by_no_fault(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest_subprocess(
        "test_app.py", "--cov=app", "--cov-branch", "--dbfault-coverage-fail-under=50",
        f"--dbfault-coverage-root={pytester.path / 'app.py'}")
    result.stdout.fnmatch_lines(["FAILED: 1 of 2 except handlers in *app.py were reached by no fault"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_without_coverage_running_the_report_says_so(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest_subprocess("test_app.py", "--dbfault-coverage",
                                           f"--dbfault-coverage-root={pytester.path / 'app.py'}")
    result.stdout.fnmatch_lines(["error-handler coverage: not measured: coverage was not running*"])
    assert result.ret == 0


def test_a_bad_fail_under_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--dbfault-coverage-fail-under=lots")
    result.stderr.fnmatch_lines(["*--dbfault-coverage-fail-under: invalid value 'lots'*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_the_handler_source_is_read_as_written(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(textwrap.dedent('''
        try:
            x = 1
        except (OSError, ValueError) as exc:
            raise RuntimeError("wrapped") from exc
    '''))
    [handler] = find_handlers(tmp_path)  # the raise inside the handler belongs to the handler
    assert handler.kind == "except"
    assert (handler.catches, handler.function) == ("(OSError, ValueError)", "<module>")
