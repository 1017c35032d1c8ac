"""The YAML loader keeps line numbers and refuses what PyYAML would accept silently."""

from __future__ import annotations

import pytest

from pytest_dbfault.scenarios.errors import ScenarioError
from pytest_dbfault.scenarios.loader import load_text


def test_it_records_the_line_of_every_key_and_list_item() -> None:
    doc = load_text("scenarios:\n  - name: a\n    steps:\n      - command: ping\n")
    assert doc.key_at("scenarios") == (1, 1)
    assert doc["scenarios"].item_at(0)[0] == 2
    assert doc["scenarios"][0]["steps"].item_at(0)[0] == 4


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first given on line 1)"),
    ("a: [1, 2\nb: 3\n", 2, "invalid YAML"),
    ("a: 1\n---\nb: 2\n", 3, "a scenario file holds one YAML document"),
    ("a: !custom 1\n", 1, "cannot read this value (could not determine a constructor for the tag '!custom')"),
    ("a: &x [*x]\n", 1, "recursive alias"),
    ("? [1, 2]\n: 3\n", 1, "a key must be a plain word"),
    ("a: 2021-02-30\n", 1, "cannot read this value (day is out of range for month)"),
])
def test_it_reports_bad_yaml_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(text, "x.dbfault.yaml")
    assert info.value.line == line
    assert message in info.value.message
    assert str(info.value).startswith(f"x.dbfault.yaml:{line}: ")


def test_it_merges_anchored_mappings_without_overriding_explicit_keys() -> None:
    doc = load_text("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n")
    assert doc["item"] == {"x": 1, "y": 3}
    assert doc["item"].key_at("x")[0] == 1  # where the merged value was written


def test_an_empty_document_is_none() -> None:
    assert load_text("# only a comment\n") is None
