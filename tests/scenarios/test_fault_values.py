"""Fault parameter values checked together when a scenario file is loaded (``scenarios/fault_values.py``).

Each case is one step whose values pass the per-parameter checks (type, choices, bounds) but cannot work
as written; the error names the file, the line of the key at fault and the key, before anything runs.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_dbfault.scenarios.errors import ScenarioError
from pytest_dbfault.scenarios.loader import load_text
from pytest_dbfault.scenarios.parse import BrokenScenario, Scenario, parse_document


def parse_step(step: str) -> list[Scenario | BrokenScenario]:
    text = textwrap.dedent("""\
        scenarios:
          - name: a
            steps:
              - command: ping
              {step}
        """).format(step=step)
    return parse_document(load_text(text, "s.dbfault.yaml"), Path("s.dbfault.yaml"), text).scenarios


def error_of(step: str) -> ScenarioError:
    (scenario,) = parse_step(step)
    assert isinstance(scenario, BrokenScenario), f"expected {step!r} to be refused"
    return scenario.error


@pytest.mark.parametrize(("step", "line", "words"), [
    # corrupt: the default part (btree) names a table; part index names an index
    ("- fault: corrupt", 5, ["needs `table:`"]),
    ("- {fault: corrupt, params: {part: index}}", 5, ["part: index needs `index:`"]),
    ("- {fault: corrupt, params: {part: header, table: users}}", 5, ["'table' only applies", "part: btree"]),
    ("- {fault: corrupt, params: {part: truncate, fraction: 1.0}}", 5, ["fraction 1.0", "between 0 and 1"]),
    ("- {fault: corrupt, params: {part: header, length: 0}}", 5, ["length 0", "at least 1 byte"]),
    # disconnect: parameters their mode ignores, a fraction out of range, a replacement that is not there
    ("- {fault: disconnect, params: {mode: delete, fraction: 0.3}}", 5, ["'fraction' only applies",
                                                                          "mode: truncate, not 'delete'"]),
    ("- {fault: disconnect, params: {mode: rename, backup_before: true}}", 5, ["'backup_before' only applies"]),
    ("- {fault: disconnect, params: {mode: close, readonly_via: chmod}}", 5, ["'readonly_via' only applies"]),
    ("- {fault: disconnect, params: {mode: truncate, fraction: 1}}", 5, ["fraction 1 must be"]),
    ("- {fault: disconnect, params: {mode: replace, replacement: no/such/file.db}}", 5,
     ["replacement file 'no/such/file.db' not found"]),
    # file_full in a scenario: its target is the runtime, so it needs the suffix of the file to fill
    ("- fault: file_full", 5, ["needs `sidecar:`"]),
    ("- {fault: file_full, params: {sidecar: a/b}}", 5, ["sidecar 'a/b' must be a file name suffix"]),
    # VFS rules the shim refuses
    ("- {fault: io_error, params: {ops: [write], error: short_read}}", 5, ["'short_read' only applies"]),
])
def test_a_value_that_cannot_work_is_refused_at_load_with_file_line_and_key(step: str, line: int,
                                                                           words: list[str]) -> None:
    error = error_of(step)
    text = str(error)
    assert text.startswith(f"s.dbfault.yaml:{line}: "), text
    for word in words:
        assert word in text, text


def test_the_key_at_fault_is_the_line_reported() -> None:
    (scenario,) = parse_step("- fault: disconnect\n        params:\n          mode: delete\n"
                             "          fraction: 0.5")
    assert isinstance(scenario, BrokenScenario)
    assert scenario.error.line == 8 and "'fraction'" in scenario.error.message  # the line of `fraction:`


@pytest.mark.parametrize("step", [
    "- {fault: corrupt, params: {table: users}}",
    "- {fault: corrupt, params: {part: index, index: users_email}}",
    "- {fault: corrupt, params: {part: truncate, fraction: 0.5}}",
    "- {fault: disconnect, params: {mode: truncate, fraction: 0.25, backup_before: true}}",
    "- {fault: disconnect, params: {mode: readonly, readonly_via: chmod}}",
    "- {fault: file_full, params: {sidecar: .redo}}",
    "- {fault: io_error, params: {ops: [read], error: short_read}}",
    "- {fault: locked, params: {mode: write, duration: 0.5}}",
])
def test_values_that_work_together_load(step: str) -> None:
    (scenario,) = parse_step(step)
    assert isinstance(scenario, Scenario), getattr(scenario, "error", None)


def test_a_replacement_file_that_exists_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the fault opens it as given, relative to where pytest runs
    (tmp_path / "other.db").write_bytes(b"")
    (scenario,) = parse_step("- {fault: disconnect, params: {mode: replace, replacement: other.db}}")
    assert isinstance(scenario, Scenario), getattr(scenario, "error", None)
