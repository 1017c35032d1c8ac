"""Every class of mistake in a scenario file gives one clear message with file:line and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_dbfault.scenarios.errors import ScenarioError
from pytest_dbfault.scenarios.loader import load_text
from pytest_dbfault.scenarios.parse import BrokenScenario, Scenario, parse_document, parse_file

SHIPPED = sorted((Path(__file__).parents[2] / "scenarios").glob("*.dbfault.yaml"))


def parse(text: str) -> object:
    text = textwrap.dedent(text)
    return parse_document(load_text(text, "s.dbfault.yaml"), Path("s.dbfault.yaml"), text)


def first_error(text: str) -> ScenarioError:
    parsed = parse(text)
    if parsed.error is not None:
        return parsed.error
    if parsed.file_error is not None:
        return parsed.file_error
    broken = [s for s in parsed.scenarios if isinstance(s, BrokenScenario)]
    assert broken, "expected an error"
    return broken[0].error


@pytest.mark.parametrize(("body", "line", "message"), [
    # unknown key, with a near-miss suggestion
    ("""
     scenarios:
       - name: a
         stpes: []
     """, 4, "scenarios[0].stpes: unknown key 'stpes'; did you mean 'steps'?"),
    # wrong type
    ("""
     scenarios:
       - name: a
         steps: {command: ping}
     """, 4, "scenarios[0].steps: expected a list of steps, got a mapping"),
    # missing required field
    ("""
     scenarios:
       - steps: [{command: ping}]
     """, 3, "scenarios[0]: missing required key 'name'"),
    # unknown command
    ("""
     scenarios:
       - name: a
         steps:
           - command: bakup
     """, 5, "scenarios[0].steps[0].command: unknown command 'bakup'; did you mean 'backup'?"),
    # unknown fault
    ("""
     scenarios:
       - name: a
         steps:
           - fault: disk_ful
     """, 5, "scenarios[0].steps[0].fault: unknown fault 'disk_ful'; did you mean 'disk_full'?"),
    # unknown fault parameter
    ("""
     scenarios:
       - name: a
         steps:
           - fault: corrupt
             params: {part: btree, tabel: flags}
     """, 6, "unknown parameter 'tabel' for fault 'corrupt'; did you mean 'table'?"),
    # unknown command argument
    ("""
     scenarios:
       - name: a
         steps:
           - command: sql
             args:
               sq: SELECT 1
     """, 7, "unknown argument 'sq' for command 'sql'; did you mean 'sql'?"),
    # missing command argument
    ("""
     scenarios:
       - name: a
         steps:
           - command: sql
     """, 5, "command 'sql' needs argument(s) sql under `args:`"),
    # heal of something never injected
    ("""
     scenarios:
       - name: a
         steps:
           - fault: locked
           - heal: lockd
     """, 6, "no fault labelled 'lockd' was injected before this step; did you mean 'locked'?"),
    # a step with two types
    ("""
     scenarios:
       - name: a
         steps:
           - command: ping
             fault: locked
     """, 6, "a step has exactly one of command, fault, heal; this one has command and fault"),
    # an unknown expectation word
    ("""
     scenarios:
       - name: a
         steps:
           - command: ping
             expect: busyy
     """, 6, "unknown value 'busyy'; did you mean 'busy'?"),
    # an unknown check
    ("""
     scenarios:
       - name: a
         steps:
           - expect: {integrty: ok}
     """, 5, "unknown key 'integrty'; did you mean 'integrity'?"),
    # unknown setting
    ("""
     scenarios:
       - name: a
         config: {busy_timeout: 10}
         steps: [{command: ping}]
     """, 4, "unknown setting 'busy_timeout'; did you mean 'busy_timeout_ms'?"),
    # invalid setting value
    ("""
     scenarios:
       - name: a
         config:
           retry_attempts: -1
         steps: [{command: ping}]
     """, 5, "invalid value -1 for setting 'retry_attempts'"),
    # duplicate scenario name
    ("""
     scenarios:
       - name: a
         steps: [{command: ping}]
       - name: a
         steps: [{command: ping}]
     """, 5, "duplicate scenario name 'a' (first used on line 3)"),
    # unknown Faker provider
    ("""
     scenarios:
       - name: a
         setup:
           data:
             users:
               generate: 2
               columns: {email: emial}
         steps: [{command: ping}]
     """, 8, "unknown Faker provider 'emial'; did you mean 'email'?"),
    # the top level
    ("""
     scenario:
       - name: a
     """, 2, "missing required key 'scenarios' (found 'scenario' on line 2; did you mean 'scenarios'?)"),
    ("", 1, "the file is empty"),
])
def test_each_mistake_gets_its_line_and_message(body: str, line: int, message: str) -> None:
    error = first_error(body)
    assert error.line == line, str(error)
    assert message in str(error)
    assert str(error).startswith(f"s.dbfault.yaml:{line}: ")


def test_the_offending_line_is_quoted_with_a_caret() -> None:
    error = first_error("""
        scenarios:
          - name: a
            steps:
              - fault: disk_ful
        """)
    assert "     5 |       - fault: disk_ful\n" in str(error)
    assert "^" in error.snippet


def test_a_broken_scenario_does_not_hide_the_valid_ones() -> None:
    parsed = parse("""
        scenarios:
          - name: good
            steps: [{command: ping}]
          - name: bad
            steps: [{command: nope}]
          - name: also good
            steps: [{command: ping}]
        """)
    kinds = [(s.name, type(s).__name__) for s in parsed.scenarios]
    assert kinds == [("good", "Scenario"), ("bad", "BrokenScenario"), ("also good", "Scenario")]


def test_a_top_level_mistake_is_reported_and_the_scenarios_still_load() -> None:
    parsed = parse("""
        seeed: 3
        scenarios:
          - name: good
            steps: [{command: ping}]
        """)
    assert parsed.file_error is not None and "did you mean 'seed'?" in str(parsed.file_error)
    assert [type(s) for s in parsed.scenarios] == [Scenario]


def test_x_prefixed_keys_hold_anchors_and_are_not_errors() -> None:
    parsed = parse("""
        x-steps: &ping {command: ping}
        scenarios:
          - name: good
            steps: [*ping]
        """)
    assert parsed.file_error is None and isinstance(parsed.scenarios[0], Scenario)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_scenario_file_is_valid(path: Path) -> None:
    parsed = parse_file(path)
    assert parsed.error is None and parsed.file_error is None
    broken = [s.error for s in parsed.scenarios if isinstance(s, BrokenScenario)]
    assert not broken, "\n".join(str(e) for e in broken)


# -- Hypothesis: malformed documents always give our error, never a crash ------------------------------
_words = st.sampled_from(["scenarios", "name", "steps", "command", "fault", "heal", "expect", "args", "params",
                          "setup", "data", "migrations", "config", "seed", "as", "rows", "ok", "sql", "locked",
                          "disk_full", "generate", "columns", "property", "x", ""])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=False), _words,
                     st.text(max_size=5))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_words, inner, max_size=4)), max_leaves=25)


@given(doc=st.one_of(_values, st.fixed_dictionaries({"scenarios": st.lists(_values, max_size=3)}),
                     st.fixed_dictionaries({"scenarios": st.lists(st.dictionaries(_words, _values, max_size=5),
                                                                  max_size=3)})))
def test_random_documents_give_scenarios_or_our_errors_never_a_crash(doc: object) -> None:
    text = yaml.safe_dump(doc)
    parsed = parse_document(_load_or_none(text), Path("r.dbfault.yaml"), text)
    for item in parsed.scenarios:
        assert isinstance(item, (Scenario, BrokenScenario))
        if isinstance(item, BrokenScenario):
            assert all(p.line >= 1 for p in item.error.problems)


@given(text=st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n ,?<")), max_size=60))
def test_random_text_gives_our_error_never_a_crash(text: str) -> None:
    try:
        doc = load_text(text, "r.dbfault.yaml")
    except ScenarioError as exc:
        assert exc.line >= 1
        return
    parse_document(doc, Path("r.dbfault.yaml"), text)


def _load_or_none(text: str) -> object:
    try:
        return load_text(text, "r.dbfault.yaml")
    except ScenarioError:
        return None
