"""Scenario authors: the schema editors use is the parser's, every mistake is reported at once, hostile
YAML is bounded, and a missing plugin extra is one line saying what to install."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_dbfault.faults.catalog import fault_params
from pytest_dbfault.faults.registry import fault_names, get_fault_class
from pytest_dbfault.scenarios import parse_file
from pytest_dbfault.scenarios.loader import MAX_BYTES, MAX_VALUES
from pytest_dbfault.scenarios.parse import BrokenScenario
from pytest_dbfault.scenarios.schema import json_schema

ROOT = Path(__file__).parents[2]
SHIPPED_SCHEMA = ROOT / "pytest_dbfault" / "scenario.schema.json"
SHIPPED_FILES = sorted((ROOT / "scenarios").glob("*.dbfault.yaml"))


@pytest.fixture(scope="module")
def validator() -> Any:
    # In the `test` extra; a venv installed before it was added lacks it (pip install -e '.[test]').
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed in this venv; "
                                     "pip install -e '.[test]' installs it")
    schema = json.loads(SHIPPED_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def scenario_file(tmp_path: Path, text: str, name: str = "s.dbfault.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def parser_problems(path: Path) -> list[str]:
    parsed = parse_file(path)
    errors = [e for e in (parsed.error, parsed.file_error) if e is not None]
    errors += [s.error for s in parsed.scenarios if isinstance(s, BrokenScenario)]
    return [p.message for e in errors for p in e.problems]


# -- item 10: one definition for the parser and the schema ---------------------------------------------
def test_the_shipped_schema_is_regenerated_from_the_registries() -> None:
    assert json.loads(SHIPPED_SCHEMA.read_text()) == json_schema(), (
        "regenerate it: python -m pytest_dbfault.scenarios.schema > pytest_dbfault/scenario.schema.json")


def test_the_schema_names_every_registered_fault_and_its_parameters() -> None:
    step = next(s for s in json_schema()["properties"]["scenarios"]["items"]["properties"]["steps"]["items"]["anyOf"]
                if "fault" in s["properties"])
    assert step["properties"]["fault"]["enum"] == fault_names()
    for rule in step["allOf"]:
        name = rule["if"]["properties"]["fault"]["const"]
        declared, _open = fault_params(get_fault_class(name))
        schema_params = set(rule["then"]["properties"]["params"]["properties"])
        assert schema_params == {p.name for p in declared} - {"allow_unsafe"}, name


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.name)
def test_every_shipped_scenario_file_validates(validator: Any, path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert parser_problems(path) == []


def test_the_shipped_files_use_x_anchor_keys_which_both_accept() -> None:
    # Issue 19.10: the files with `x-...` anchors were the ones the old schema rejected.
    assert any(k.startswith("x-") for p in SHIPPED_FILES for k in yaml.safe_load(p.read_text()))


@pytest.mark.parametrize("name", fault_names())
def test_every_registered_fault_validates_as_a_step(validator: Any, tmp_path: Path,
                                                   name: str) -> None:
    declared, _open = fault_params(get_fault_class(name))
    params = {p.name: (p.choices[0] if p.choices else "x") for p in declared if p.required}
    # Values that must come together (the parser checks them, scenarios/fault_values.py; the schema cannot).
    params.update({"corrupt": {"table": "t"}, "file_full": {"sidecar": ".redo"}}.get(name, {}))
    doc = {"scenarios": [{"name": "s", "steps": [{"fault": name, "params": params}, {"heal": "all"}]}]}
    assert list(validator.iter_errors(doc)) == []
    path = scenario_file(tmp_path, yaml.safe_dump(doc))
    assert parser_problems(path) == []


# Each document: what both the schema and the parser must say (accept, or reject).
VERDICTS = [
    ("fault: locked", True),
    ("fault: disk_ful", False),
    ("{fault: locked, params: {mode: write, duration: 0.5}}", True),
    ("{fault: locked, params: {mode: writ}}", False),
    ("{fault: locked, params: {duration: soon}}", False),
    ("{fault: locked, params: {moed: write}}", False),
    ("{fault: locked, params: {duration: -1}}", False),
    ("{fault: io_error, params: {nth: 0}}", False),
    ("{fault: io_error, params: {probability: 0.5, seed: 3}}", True),
    ("{fault: io_error, params: {probability: 1.5}}", False),
    ("{fault: io_error, params: {ops: [sync, write], persistent: true}}", True),
    ("{fault: io_error, params: {ops: [sync, wrte]}}", False),
    ("{fault: corrupt, params: {part: btree, table: t}}", True),
    ("{fault: corrupt, params: {part: bteee, table: t}}", False),
    ("{fault: disconnect, params: {mode: delete}}", True),
    ("{fault: crash, params: {kill_at: commit, occurrence: 2}}", True),
    ("{fault: crash, params: {kil_at: commit}}", False),
    ("{command: sql, args: {sql: SELECT 1}}", True),
    ("{command: sql, args: {sqll: SELECT 1}}", False),
    ("{command: sqll}", False),
    ("{command: ping, expect: {outcome: ok}}", True),
    ("{command: ping, expect: {outcom: ok}}", False),
]


@pytest.mark.parametrize(("step", "accepted"), VERDICTS, ids=[s for s, _ in VERDICTS])
def test_the_schema_and_the_parser_agree(validator: Any, tmp_path: Path,
                                         step: str, accepted: bool) -> None:
    text = f"x-note: anchors live here\nscenarios:\n  - name: s\n    steps:\n      - {step}\n"
    schema_ok = not list(validator.iter_errors(yaml.safe_load(text)))
    parser_ok = not parser_problems(scenario_file(tmp_path, text))
    assert (schema_ok, parser_ok) == (accepted, accepted)


# -- item 11: every mistake at once, values at collection, our own YAML wording ---------------------------
def test_a_step_reports_its_misspelled_argument_and_its_misspelled_expectation_together(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, """
        scenarios:
          - name: two mistakes
            steps:
              - command: sql
                args: {sqll: "SELECT 1"}
                expect: {outcom: ok}
    """)
    text = str(parse_file(path).scenarios[0].error)
    assert "s.dbfault.yaml:5: scenarios[0].steps[0].args.sqll: unknown argument 'sqll'" in text
    assert "did you mean 'sql'?" in text
    assert "s.dbfault.yaml:6: scenarios[0].steps[0].expect.outcom: unknown key 'outcom'" in text


def test_a_bad_fault_parameter_value_fails_at_collection_with_its_line(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, """
        scenarios:
          - name: bad mode
            steps:
              - fault: locked
                params: {mode: writ}
              - command: ping
    """)
    scenario = parse_file(path).scenarios[0]
    assert isinstance(scenario, BrokenScenario)  # nothing runs: the error is known before the first step
    text = str(scenario.error)
    assert ("s.dbfault.yaml:5: scenarios[0].steps[0].params.mode: invalid value 'writ' for parameter 'mode' of "
            "fault 'locked': expected one of write, exclusive; did you mean 'write'?") in text
    assert "     5 |         params: {mode: writ}\n       |                        ^" in text


def test_a_bad_parameter_value_is_a_collection_error_in_pytest(pytester: pytest.Pytester) -> None:
    (pytester.path / "s.dbfault.yaml").write_text(
        "scenarios:\n  - name: bad mode\n    steps:\n      - fault: locked\n        params: {mode: writ}\n")
    result = pytester.runpytest("--dbfault", "-p", "no:cacheprovider", ".")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*s.dbfault.yaml:5: *invalid value 'writ' for parameter 'mode'*"])
    assert "lock held" not in result.stdout.str()  # the fault was never injected


@pytest.mark.parametrize(("text", "line", "what"), [
    ("scenarios:\n  - name: x\n    steps:\n      - command: ping\n     expect: ok\n", 5,
     "mapping that starts on line 2"),
    ("scenarios:\n  - name: x\n    steps:\n    - command: ping\n   - command: ping\n", 5, "list that starts on line"),
])
def test_wrong_indentation_is_said_in_our_words_with_line_and_caret(tmp_path: Path, text: str, line: int,
                                                                    what: str) -> None:
    error = parse_file(scenario_file(tmp_path, text)).error
    assert error is not None
    report = str(error)
    assert f"s.dbfault.yaml:{line}: wrong indentation: this line does not line up with the {what}" in report
    assert "^" in report.splitlines()[2]
    assert "<block end>" not in report and "expected <" not in report


# -- #15.14: hostile YAML is bounded ------------------------------------------------------------------------
BOMB = "\n".join(["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
                 + ["scenarios: [{name: b, steps: [{command: ping}]}]"]) + "\n"


def test_an_alias_bomb_is_refused_with_file_and_line(tmp_path: Path) -> None:
    # 10**10 values in 600 bytes. Run in a subprocess so that a regression (no bound) fails on the
    # timeout instead of hanging the suite; the assertion is the error, not the time.
    path = scenario_file(tmp_path, BOMB, "bomb.dbfault.yaml")
    code = ("import sys; from pytest_dbfault.scenarios import parse_file; "
            "print(parse_file(sys.argv[1]).error)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"bomb.dbfault.yaml:1: the document expands to more than {MAX_VALUES:,} values through its aliases" \
        in done.stdout


def test_a_file_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, "scenarios: [{name: b, steps: [{command: ping}]}]\n"
                         + "# padding\n" * (MAX_BYTES // 10 + 1), "big.dbfault.yaml")
    error = parse_file(path).error
    assert error is not None and f"larger than {MAX_BYTES:,} characters" in error.message


def test_many_aliases_within_the_bound_still_work(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, """
        x-step: &ping {command: ping}
        scenarios:
          - name: aliases
            steps: [*ping, *ping, *ping, *ping, *ping]
    """)
    scenario = parse_file(path).scenarios[0]
    assert not isinstance(scenario, BrokenScenario) and len(scenario.steps) == 5


# -- item 6: without the plugin extra -----------------------------------------------------------------------
BLOCK_YAML = """
import sys

class _NoYaml:
    def find_spec(self, name, path=None, target=None):
        if name == "yaml" or name.startswith("yaml."):
            raise ModuleNotFoundError("No module named 'yaml'", name="yaml")
        return None

sys.meta_path.insert(0, _NoYaml())
"""


def test_without_pyyaml_a_scenario_file_is_a_usage_error_naming_the_extra(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCK_YAML)
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.dbfault.yaml").write_text("scenarios: [{name: a, steps: [{command: ping}]}]\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    env["PYTHONPATH"] = str(shim)
    probe = subprocess.run([sys.executable, "-c", "import yaml"], env=env, capture_output=True, text=True)
    assert "No module named 'yaml'" in probe.stderr  # the shim really hides PyYAML
    done = subprocess.run([sys.executable, "-m", "pytest", "--dbfault", "-p", "no:cacheprovider", "."],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == ["ERROR: a.dbfault.yaml: scenario files need PyYAML, from the plugin extra: "
                      "pip install 'dbfault[plugin]'"]
    assert "Traceback" not in done.stdout + done.stderr and "No module named" not in done.stdout + done.stderr
