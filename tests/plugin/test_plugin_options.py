"""Options: command line > environment > ini, usage errors for bad values, collection of dbfault_paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_dbfault.options import OptionError, resolve_options

SEED_PROBE = """
    def test_seed(dbfault):
        print("SEED", dbfault.seed)
        assert dbfault.seed == {expected}
"""


def test_the_header_shows_a_seed_to_paste_back(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--dbfault", "--dbfault-seed=1234")
    result.stdout.fnmatch_lines(["dbfault: Using --dbfault-seed=1234"])


def test_a_random_seed_is_chosen_and_shown_when_none_is_given(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--dbfault")
    result.stdout.re_match_lines([r"dbfault: Using --dbfault-seed=\d+$"])


def test_the_command_line_beats_the_environment_which_beats_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ndbfault_seed = 3\n")
    pytester.makepyfile(SEED_PROBE.format(expected=3))
    pytester.runpytest().assert_outcomes(passed=1)

    monkeypatch.setenv("DBFAULT_SEED", "2")
    pytester.makepyfile(SEED_PROBE.format(expected=2))
    pytester.runpytest().assert_outcomes(passed=1)

    pytester.makepyfile(SEED_PROBE.format(expected=1))
    pytester.runpytest("--dbfault-seed=1").assert_outcomes(passed=1)


def test_the_environment_and_the_ini_file_can_enable_dbfault(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_ok(): pass")
    monkeypatch.setenv("DBFAULT", "1")
    assert "dbfault: Using --dbfault-seed=" in pytester.runpytest().stdout.str()
    assert "dbfault: Using" not in pytester.runpytest("--no-dbfault").stdout.str()
    monkeypatch.delenv("DBFAULT")
    pytester.makeini("[pytest]\ndbfault = yes\n")
    assert "dbfault: Using --dbfault-seed=" in pytester.runpytest().stdout.str()


def test_seed_last_reuses_the_previous_runs_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    pytester.runpytest("--dbfault", "--dbfault-seed=777")
    result = pytester.runpytest("--dbfault", "--dbfault-seed=last")
    result.stdout.fnmatch_lines(["dbfault: Using --dbfault-seed=777", "dbfault: faults: all; seed from: last"])


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--dbfault-seed=abc"], {}, "ERROR: --dbfault-seed: invalid value 'abc' (from the command line); "
                                     "expected a whole number from 0 to 4294967295, 'random' or 'last'"),
        (["--dbfault-seed=-1"], {}, "ERROR: --dbfault-seed: invalid value '-1'*"),
        ([], {"DBFAULT_SEED": "1.5"}, "ERROR: DBFAULT_SEED: invalid value '1.5' (from the environment)*"),
        ([], {"DBFAULT": "maybe"}, "ERROR: DBFAULT: invalid value 'maybe' (from the environment); "
                                   "expected one of 1, true, yes, on, 0, false, no, off"),
        (["--dbfault-faults=lockd"], {}, "ERROR: --dbfault-faults: invalid value 'lockd' (from the command line); "
                                         "expected fault names among: all, *locked*"),
        (["--dbfault-faults=,"], {}, "ERROR: --dbfault-faults: invalid value ','*comma-separated list*"),
        (["--dbfault-report=."], {}, "ERROR: --dbfault-report: invalid value '.'*not a directory"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_option_the_value_and_what_is_allowed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_a_bad_ini_value_names_the_ini_key_and_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndbfault_seed = soon\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: dbfault_seed: invalid value 'soon' (from the ini file tox.ini)*"])


def test_dbfault_alone_collects_the_dbfault_paths_instead_of_testpaths(pytester: pytest.Pytester) -> None:
    _project_with_tests_and_scenarios(pytester)
    result = pytester.runpytest("--dbfault", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_scenario.py::test_scenario PASSED*"])


def test_explicit_paths_are_respected_with_dbfault(pytester: pytest.Pytester) -> None:
    _project_with_tests_and_scenarios(pytester)
    result = pytester.runpytest("--dbfault", "tests", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_unit.py::test_unit PASSED*"])


def test_without_dbfault_the_testpaths_are_collected(pytester: pytest.Pytester) -> None:
    _project_with_tests_and_scenarios(pytester)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_unit.py::test_unit PASSED*"])


def test_dbfault_seeds_hypothesis_with_the_same_seed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypothesis import core

    # The inner runs share this process: put Hypothesis' global seed back afterwards.
    monkeypatch.setattr(core, "global_force_seed", None)
    pytester.makepyfile("""
        import pathlib
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=10, database=None, derandomize=False)  # CI profiles derandomize
        @given(st.integers())
        def test_draws(n):
            with (pathlib.Path(__file__).parent / "draws.txt").open("a") as f:
                f.write(f"{n} ")

        def test_separator():
            with (pathlib.Path(__file__).parent / "draws.txt").open("a") as f:
                f.write("\\n")
    """)
    for seed in ("5", "5", "6"):
        pytester.runpytest("--dbfault", f"--dbfault-seed={seed}", "-p", "no:randomly").assert_outcomes(passed=2)
    first, second, other = (pytester.path / "draws.txt").read_text().splitlines()
    assert first == second
    assert first != other


# -- the merge rules on their own ----------------------------------------------------------------
def test_resolve_options_prefers_the_command_line_then_the_environment_then_the_ini_file() -> None:
    ini = {"dbfault": "false", "dbfault_seed": "3", "dbfault_faults": "locked"}
    assert resolve_options({}, {}, ini).seed == 3
    assert resolve_options({}, {"DBFAULT_SEED": "2"}, ini).seed == 2
    opts = resolve_options({"dbfault_seed": "1", "dbfault": True}, {"DBFAULT_SEED": "2"}, ini)
    assert (opts.seed, opts.seed_source, opts.enabled, opts.faults) == (1, "command line", True, ("locked",))


def test_resolve_options_reads_fault_lists_and_all() -> None:
    assert resolve_options({"dbfault_faults": "locked, disk_full locked"}, {}, {}).faults == ("locked", "disk_full")
    assert resolve_options({"dbfault_faults": "all"}, {}, {"dbfault_faults": "locked"}).faults is None


def test_resolve_options_takes_relative_report_paths_from_where_they_were_given(tmp_path: Path) -> None:
    here, ini_dir = tmp_path / "here", tmp_path / "project"
    opts = resolve_options({"dbfault_report": "out.json"}, {}, {}, invocation_dir=here, ini_dir=ini_dir)
    assert opts.report == here / "out.json"
    opts = resolve_options({}, {}, {"dbfault_report": "out.json"}, invocation_dir=here, ini_dir=ini_dir)
    assert opts.report == ini_dir / "out.json"


def test_resolve_options_asks_for_the_last_seed_only_when_told_to() -> None:
    def last() -> int:
        raise AssertionError("the cache was read although no one asked for the last seed")

    assert resolve_options({"dbfault_seed": "8"}, {}, {}, last_seed=last).seed == 8
    assert resolve_options({"dbfault_seed": "last"}, {}, {}, last_seed=lambda: 9).seed == 9
    opts = resolve_options({"dbfault_seed": "last"}, {}, {}, last_seed=lambda: None, random_seed=lambda: 4)
    assert (opts.seed, opts.seed_source) == (4, "random")


def test_an_option_error_keeps_the_setting_the_value_and_the_source() -> None:
    with pytest.raises(OptionError) as info:
        resolve_options({}, {"DBFAULT_SEED": "x"}, {})
    assert (info.value.setting, info.value.value, info.value.source) == ("DBFAULT_SEED", "x", "environment")


def _project_with_tests_and_scenarios(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    pytester.mkdir("tests")
    pytester.mkdir("scenarios")
    (pytester.path / "tests" / "test_unit.py").write_text("def test_unit(): pass\n")
    (pytester.path / "scenarios" / "test_scenario.py").write_text("def test_scenario(): pass\n")
