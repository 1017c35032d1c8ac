"""The main job's verdict tells the truth (issue 14 items 1, 5, 6; issue 19 items 7, 8).

Failed scenarios and machines are violations in the footer, the JSON and the exit code; checks are
split into under-fault and after-heal counts per fault family; an applicable cell with no check
under its fault fails the run; injected kinds that fed no check are warned about; the replay line
reruns exactly what ran; the machines' Hypothesis profile is chosen the way Hypothesis chooses one.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import textwrap
from pathlib import Path

import pytest

from pytest_dbfault import profiles
from pytest_dbfault.report import build_report, render_summary
from pytest_dbfault.stats import FAMILIES, Stats, after, family, split_label

ROOT = Path(__file__).resolve().parents[2]
MACHINES_MODULE = (ROOT / "scenarios" / "test_property_machines.py").read_text()

FAILING_SCENARIOS = """
    scenarios:
      - name: {name}
        steps:
          - fault: locked
            params: {{mode: exclusive}}
          - command: sql
            args: {{sql: "CREATE TABLE t (x)"}}
            expect: ok
"""


@pytest.fixture(autouse=True)
def _not_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner runs choose the machines' profile from the environment: start from a neutral one (.ci/run
    exports HYPOTHESIS_PROFILE, CI services set CI); tests that need these set them."""
    for name in ("CI", "HYPOTHESIS_PROFILE", *profiles.VENDOR_CI):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_hypothesis_profile():  # type: ignore[no-untyped-def]
    """Hypothesis' plugin loads --hypothesis-profile process-wide in an in-process run: put it back."""
    from hypothesis import settings

    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


def build_prefix() -> str:
    """How the replay line starts in this environment: a tox cell's other SQLite build is named first."""
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip()
    return f"RELIABILITY_SQLITE_MODULE={module} " if module and module != "sqlite3" else ""


def write(pytester: pytest.Pytester, name: str, text: str) -> Path:
    path = pytester.path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- labels and families -------------------------------------------------------------------------
def test_every_label_is_exactly_one_of_none_under_and_after() -> None:
    assert split_label("none") == ("none", None)
    assert split_label("busy_commit") == ("under", "busy_commit")
    assert split_label(after("disk_full")) == ("after", "disk_full")
    assert family("busy_snapshot") == "locked" and family("after:enospc") == "disk_full"
    assert family("short_read") == "corrupt" and family("disconnect_replace") == "disconnect"
    assert family("power_loss") is None
    assert set(FAMILIES) == {"locked", "disk_full", "corrupt", "disconnect"}


def test_after_heal_checks_are_counted_apart_and_do_not_count_as_exercised_under_a_fault() -> None:
    stats = Stats()
    stats.record_check(1, ["busy_commit"])
    stats.record_check(1, [after("locked")])
    stats.record_check(1, [after("locked")])
    stats.record_check(11, [after("corrupt")])
    stats.record_check(2, ["power_loss"])
    data = build_report(stats, seed=1)
    assert data["matrix"]["p01_connection_recovery"]["locked"] == {
        "under": 1, "after": 2, "violations": 0, "applicable": False}
    assert data["matrix"]["p11_integrity_checking"]["corrupt"]["under"] == 0
    assert data["properties"]["p11_integrity_checking"]["exercised_under_fault"] is False
    assert data["matrix"]["p02_graceful_degradation"]["other"] == {
        "power_loss": {"under": 1, "after": 0, "violations": 0}}
    assert "locked" in data["faults"] and "after:locked" not in data["faults"]
    lines = render_summary(data, width=120)
    assert any(line.startswith("p01_connection_recovery") and " 1/2 " in f"{line} " for line in lines)
    assert "NOT EXERCISED under any fault: " in "\n".join(lines) and "p11_integrity_checking" in lines[-2]


def test_each_injected_kind_that_fed_no_check_is_warned_about() -> None:
    stats = Stats()
    stats.record_fault("io_error")
    stats.record_fault("enospc")
    stats.record_fault("locked")
    stats.record_check(6, ["locked"])
    stats.record_check(6, [after("enospc")])
    data = build_report(stats, seed=1)
    assert data["unchecked_faults"] == ["enospc", "io_error"]
    lines = render_summary(data)
    assert "WARNING: io_error was injected 1x but no property was checked while it was in force" in lines
    assert ("WARNING: enospc was injected 1x but no property was checked while it was in force "
            "(1 after it healed)") in lines


# -- failed scenarios are never a clean verdict ----------------------------------------------------
def test_two_failing_scenario_files_fail_the_footer_the_json_and_the_exit_code(pytester: pytest.Pytester) -> None:
    write(pytester, "a.dbfault.yaml", FAILING_SCENARIOS.format(name="first"))
    write(pytester, "b.dbfault.yaml", FAILING_SCENARIOS.format(name="second"))
    result = pytester.runpytest("--dbfault", "--dbfault-seed=3", "--dbfault-report=r.json",
                                "a.dbfault.yaml", "b.dbfault.yaml")
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "violations: none" not in out
    result.stdout.fnmatch_lines([
        "FAILED: 2: a.dbfault.yaml::first (failed), b.dbfault.yaml::second (failed)",
        "VERDICT: FAIL (2 failed tests)",
    ])
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["verdict"] == "fail" and data["problems"] == ["2 failed tests"]
    assert [t["nodeid"] for t in data["failed_tests"]] == ["a.dbfault.yaml::first", "b.dbfault.yaml::second"]
    scenarios = {t["nodeid"]: t for t in data["tests"]}
    assert scenarios["a.dbfault.yaml::first"]["faults"] == ["locked"]
    assert scenarios["a.dbfault.yaml::first"]["type"] == "scenario"


def test_a_passing_scenario_lists_its_faults_in_the_json(pytester: pytest.Pytester) -> None:
    write(pytester, "ok.dbfault.yaml", """
        scenarios:
          - name: writes wait for the lock
            steps:
              - fault: disk_full
              - command: sql
                args: {sql: "SELECT 1"}
                expect: ok
        """)
    result = pytester.runpytest("--dbfault", "--dbfault-report=r.json", "ok.dbfault.yaml")
    result.assert_outcomes(passed=1)
    (test,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert (test["type"], test["faults"], test["outcome"]) == ("scenario", ["disk_full"], "passed")


# -- the machines: listed, and their applicable cells enforced ----------------------------------
FAKE_MACHINES_CONFTEST = """
    from pathlib import Path

    from hypothesis.stateful import RuleBasedStateMachine, rule

    import pytest_dbfault.machines as machines
    from pytest_dbfault.stats import record_check, record_fault


    class FakeMachine(RuleBasedStateMachine):
        # Checks P1 while a lock is in force, and P1 after a disk-full fault healed.

        @rule()
        def check(self):
            record_fault("locked")
            record_check(1, ["locked"])
            record_check(1, ["after:disk_full"])


    def run_machine(machine, factory, *, settings_, base_dir):
        Path("examples.txt").write_text(str(settings_.max_examples))
        return _saved["run_machine"](machine, factory, settings_=settings_, base_dir=base_dir)


    # Set at import (before the test module imports these names), put back when the inner run ends.
    _saved = {name: getattr(machines, name, None) for name in ("MACHINES", "APPLICABLE", "run_machine")}
    machines.MACHINES = %s
    machines.APPLICABLE = {1: frozenset(%s)}
    machines.run_machine = run_machine


    def pytest_unconfigure(config):
        for name, value in _saved.items():
            setattr(machines, name, value)
"""


def machines_project(pytester: pytest.Pytester, families: set[str],
                     names: str = '{"fake": FakeMachine}') -> pytest.Pytester:
    pytester.makeconftest(textwrap.dedent(FAKE_MACHINES_CONFTEST % (names, sorted(families))))
    # The shipped module, unchanged, under another basename: a run that also collects scenarios/ (the CI
    # coverage gate) has imported the shipped one as `test_property_machines` already.
    pytester.makepyfile(test_shipped_property_machines=MACHINES_MODULE)
    return pytester


def test_an_applicable_cell_with_no_check_under_its_fault_fails_the_run(pytester: pytest.Pytester) -> None:
    machines_project(pytester, {"locked", "disk_full"})
    result = pytester.runpytest("--dbfault", "--dbfault-seed=5", "--dbfault-report=r.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "p01_connection_recovery * 0/*[*]*",
        "EMPTY CELLS: 1 declared applicable with no check under the fault: p01_connection_recovery x disk_full",
        "VERDICT: FAIL (1 empty applicable cell)",
    ])
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["empty_cells"] == [{"property": "p01_connection_recovery", "family": "disk_full"}]
    assert data["matrix"]["p01_connection_recovery"]["disk_full"]["after"] >= 1
    assert data["verdict"] == "fail" and data["cells_enforced"] is True
    (machine,) = data["tests"]
    assert (machine["type"], machine["machine"], machine["faults"], machine["seed"]) == (
        "machine", "fake", ["locked"], 5)


def test_with_every_applicable_cell_checked_under_its_fault_the_run_passes(pytester: pytest.Pytester) -> None:
    machines_project(pytester, {"locked"})
    result = pytester.runpytest("--dbfault", "--dbfault-report=r.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["violations: none"])
    assert json.loads((pytester.path / "r.json").read_text())["empty_cells"] == []


def test_cells_are_not_enforced_when_not_every_machine_ran(pytester: pytest.Pytester) -> None:
    machines_project(pytester, {"disk_full"}, names='{"fake": FakeMachine, "other": FakeMachine}')
    result = pytester.runpytest("--dbfault", "-k", "fake")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["applicable cells not enforced: machines other did not run"])


# -- the Hypothesis profile ------------------------------------------------------------------------
@pytest.mark.parametrize(("cli", "env", "loaded", "expected"), [
    (None, {}, "default", "dbfault"),
    (None, {"CI": "true"}, "ci", "dbfault-ci"),
    (None, {"CI": "false"}, "ci", "dbfault"),
    (None, {"CI": "0"}, "ci", "dbfault"),
    (None, {"GITHUB_ACTIONS": "true"}, "ci", "dbfault-ci"),
    ("ci", {}, "ci", "dbfault-ci"),
    ("default", {"CI": "1"}, "default", "dbfault"),
    ("dbfault-ci", {}, "dbfault-ci", "dbfault-ci"),
    ("mine", {"CI": "1"}, "mine", "mine"),
    (None, {"HYPOTHESIS_PROFILE": "ci"}, "default", "dbfault-ci"),
    (None, {"CI": "true"}, "thorough", "thorough"),
])
def test_the_machines_profile_is_chosen_as_hypothesis_chooses_one(cli, env, loaded, expected) -> None:  # type: ignore[no-untyped-def]
    assert profiles.choose_profile(cli, env, loaded)[0] == expected


def test_collect_only_names_the_profile_the_machines_will_run(pytester: pytest.Pytester,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    machines_project(pytester, {"locked"})
    result = pytester.runpytest("--dbfault", "--co", "-v")
    result.stdout.fnmatch_lines(["dbfault: Hypothesis profile of the property machines: dbfault-ci (on CI (CI=true))",
                                 "*test_property_machine[[]fake[]]*"])
    monkeypatch.setenv("CI", "false")
    result = pytester.runpytest("--dbfault", "--co", "-v")
    result.stdout.fnmatch_lines(["dbfault: Hypothesis profile of the property machines: dbfault "
                                 "(not on CI (CI=false))"])


def test_hypothesis_profile_option_reaches_the_machines_the_header_and_the_json(pytester: pytest.Pytester,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    machines_project(pytester, {"locked"})
    result = pytester.runpytest("--dbfault", "--hypothesis-profile=dbfault-ci", "--dbfault-report=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["dbfault: Hypothesis profile of the property machines: dbfault-ci "
                                 "(--hypothesis-profile=dbfault-ci)"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["hypothesis_profile"] == {"name": "dbfault-ci", "source": "--hypothesis-profile=dbfault-ci"}
    assert "--hypothesis-profile=dbfault-ci" in data["replay"]
    from hypothesis import settings

    import pytest_dbfault.machines  # noqa: F401  (registers the machines' profiles)

    assert (pytester.path / "examples.txt").read_text() == str(settings.get_profile("dbfault-ci").max_examples)


# -- exact replay ------------------------------------------------------------------------------------
SEED_CONFTEST = """
    def note_seed(ctx):
        '''Append this scenario's seed to seeds.txt.'''
        with open(ctx.scenario_dir / "seeds.txt", "a") as fh:
            fh.write(f"{ctx.seed}\\n")
        return ctx.seed

    def pytest_dbfault_register_commands(register):
        register("note_seed", note_seed)
"""


def test_the_footer_replay_line_reruns_the_same_seeds_and_keeps_a_files_own_seed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(textwrap.dedent(SEED_CONFTEST))
    pytester.mkdir("sc")
    write(pytester, "sc/pinned.dbfault.yaml", """
        seed: 7
        scenarios:
          - name: pinned
            steps:
              - command: note_seed
        """)
    write(pytester, "sc/free.dbfault.yaml", """
        scenarios:
          - name: free
            steps:
              - command: note_seed
        """)
    seeds = pytester.path / "sc" / "seeds.txt"
    first = pytester.runpytest("--dbfault", "--dbfault-report=r1.json", "sc")
    first.assert_outcomes(passed=2)
    line = next(x for x in first.stdout.lines if x.startswith("seed "))
    replay = line.split("(replay with: ", 1)[1].rsplit("), SQLite", 1)[0]
    argv = shlex.split(replay)
    env = [argv.pop(0) for _ in range(len(build_prefix().split()))]  # this run's environment already has them
    assert env == build_prefix().split()
    assert argv[:2] == ["pytest", "--dbfault"] and "sc" in argv and not any("report" in a for a in argv)
    ran = sorted(seeds.read_text().split())
    seeds.unlink()
    again = pytester.runpytest(*argv[1:])
    again.assert_outcomes(passed=2)
    assert sorted(seeds.read_text().split()) == ran
    # The file's seed: 7 pins its scenario whatever the run seed: a run with another seed keeps it.
    seeds.unlink()
    other = int(argv[2].split("=")[1]) ^ 1
    pytester.runpytest("--dbfault", f"--dbfault-seed={other}", "sc").assert_outcomes(passed=2)
    assert len(set(seeds.read_text().split()) & set(ran)) == 1


def test_the_replay_line_carries_options_from_the_environment(pytester: pytest.Pytester,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_ok(dbfault): pass")
    monkeypatch.setenv("DBFAULT_FAULTS", "locked,disk_full")
    monkeypatch.setenv("RELIABILITY_SQLITE_MODULE", "sqlean")
    result = pytester.runpytest("--dbfault", "--dbfault-seed", "11", "-k", "ok")
    result.stdout.fnmatch_lines(["seed 11 (replay with: RELIABILITY_SQLITE_MODULE=sqlean pytest --dbfault "
                                 "--dbfault-seed=11 --dbfault-faults=locked,disk_full -k ok*), SQLite *"])


# -- every build -----------------------------------------------------------------------------------
def test_the_machines_build_their_runtime_on_the_sqlite_module_of_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_dbfault.machines import ConnectionMachine

    monkeypatch.setenv("RELIABILITY_SQLITE_MODULE", "pysqlite3.dbapi2")
    machine = ConnectionMachine()
    try:
        assert machine.make_config().sqlite_module == "pysqlite3.dbapi2"
        monkeypatch.delenv("RELIABILITY_SQLITE_MODULE")
        assert machine.make_config().sqlite_module == "sqlite3"
    finally:
        machine.teardown()


def test_every_tox_cell_runs_the_main_job_as_well_as_the_tests() -> None:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    commands = [c.strip() for c in tox["testenv"]["commands"].strip().splitlines()]
    assert commands == ["python -m pytest -n 2 -q {posargs}", "python -m pytest --dbfault -q -p no:cacheprovider"]


def test_the_benchmark_check_runs_in_the_bench_env_and_ci_not_in_the_readme_test_command() -> None:
    assert not (ROOT / "tests" / "test_benchmarks_run.py").exists()
    testpaths = re.search(r"^testpaths = (.*)$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert testpaths is not None and json.loads(testpaths.group(1)) == ["tests"]  # benchmarks/ is not collected
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    assert "benchmarks/test_quick_run.py" in tox["testenv:bench"]["commands"]
    assert (ROOT / "benchmarks" / "test_quick_run.py").exists()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\ntox -q -e bench || exit 1\n" in ci


BUILD_CONFTEST = """
    import os

    def which_build(ctx):
        '''The SQLite build of the scenario's runtime, and the one faults aimed at a path use.'''
        return [ctx.config.sqlite_module, os.environ.get("DBFAULT_SQLITE_MODULE")]

    def pytest_dbfault_register_commands(register):
        register("which_build", which_build)
"""


def test_scenarios_and_path_faults_run_on_the_sqlite_build_of_the_environment(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another "build" of SQLite: the stdlib's module under another name, so the test needs no extra package.
    pytester.makepyfile(stdlib_alias="from sqlite3 import *  # noqa: F403\n")
    monkeypatch.syspath_prepend(str(pytester.path))
    pytester.makeconftest(textwrap.dedent(BUILD_CONFTEST))
    write(pytester, "b.dbfault.yaml", """
        scenarios:
          - name: build
            steps:
              - fault: locked
              - command: which_build
                expect: {result: [stdlib_alias, stdlib_alias]}
        """)
    monkeypatch.setenv("RELIABILITY_SQLITE_MODULE", "stdlib_alias")
    monkeypatch.delenv("DBFAULT_SQLITE_MODULE", raising=False)
    pytester.runpytest("--dbfault", "b.dbfault.yaml").assert_outcomes(passed=1)
    assert "DBFAULT_SQLITE_MODULE" not in os.environ  # put back when the run ends


def test_shipped_scenarios_with_a_vfs_shim_fault_run_their_runtime_on_the_stdlib_build() -> None:
    # On a tox cell with sqlean or pysqlite3 such a fault would not reach the runtime and the scenario
    # would fail (or, for power_loss, pass without a fault): those scenarios pin the stdlib's build.
    from pytest_dbfault.scenarios.parse import parse_file
    from pytest_dbfault.scenarios.registry import default_registry

    shim = {"io_error", "enospc", "short_read", "power_loss"}
    seen = set()
    for path in sorted((ROOT / "scenarios").glob("*.dbfault.yaml")):
        for scenario in parse_file(path, default_registry()).scenarios:
            kinds = {step.data.get("fault") for step in getattr(scenario, "steps", ()) if step.kind == "fault"}
            if kinds & shim:
                seen |= kinds & shim
                assert scenario.config.get("sqlite_module") == "sqlite3", f"{path.name}: {scenario.name}"
    assert seen == shim


def test_a_file_that_cannot_be_collected_is_never_a_clean_verdict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken="def test_x(:\n    pass\n", test_fine="def test_ok(dbfault): pass\n")
    result = pytester.runpytest("--dbfault", "--dbfault-report=r.json")
    assert result.ret != pytest.ExitCode.OK
    assert "violations: none" not in result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED: 1: test_broken.py (error)", "VERDICT: FAIL (1 failed test)"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["failed_tests"][0]["nodeid"] == "test_broken.py" and data["verdict"] == "fail"


def test_a_run_that_collected_nothing_is_never_a_clean_verdict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="from pytest_dbfault.stats import record_check\n"
                                 "def test_ok():\n    record_check(1)\n")
    result = pytester.runpytest("--dbfault", "-k", "nothing_matches_this")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "violations: none" not in result.stdout.str()
    result.stdout.fnmatch_lines(["VERDICT: FAIL (pytest exit status 5 (no tests collected))"])


def test_without_hypothesis_plugin_the_replay_line_names_the_profile_in_the_environment(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_ok(dbfault): pass")
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    result = pytester.runpytest_subprocess("--dbfault", "--dbfault-seed=4", "-p", "no:hypothesispytest")
    result.stdout.fnmatch_lines([f"seed 4 (replay with: HYPOTHESIS_PROFILE=dbfault-ci {build_prefix()}pytest --dbfault "
                                 "--dbfault-seed=4 * -p no:hypothesispytest), SQLite *"])
    # CI=false chose the profile: the replay pins it, so a replay on a CI machine runs the same examples.
    monkeypatch.setenv("CI", "false")
    result = pytester.runpytest("--dbfault", "--dbfault-seed=4")
    result.stdout.fnmatch_lines([f"seed 4 (replay with: {build_prefix()}pytest --dbfault --dbfault-seed=4 "
                                 "--hypothesis-profile=dbfault "
                                 "--basetemp=*), SQLite *"])
    monkeypatch.delenv("CI")
    result = pytester.runpytest("--dbfault", "--dbfault-seed=4")
    result.stdout.fnmatch_lines([f"seed 4 (replay with: {build_prefix()}pytest --dbfault --dbfault-seed=4 "
                                 "--basetemp=*), SQLite *"])
