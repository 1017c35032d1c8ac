"""FailRule: which calls it matches and when it fails them; bad values are refused by name."""

from __future__ import annotations

import os

import pytest

from pytest_dbfault.vfs import FailRule, VfsUsageError


def _decisions(rule: FailRule, calls: int) -> list[bool]:
    return [rule.decide() for _ in range(calls)]


def test_a_transient_rule_fails_only_the_nth_call():
    assert _decisions(FailRule(ops={"write"}, nth=3), 6) == [False, False, True, False, False, False]


def test_a_persistent_rule_fails_every_call_from_the_nth_on():
    rule = FailRule(ops={"write"}, nth=3, persistent=True)
    assert _decisions(rule, 6) == [False, False, True, True, True, True]
    assert rule.failures == 4 and rule.tripped


def test_a_seeded_probability_replays_the_same_failures():
    first = _decisions(FailRule(ops={"read"}, probability=0.3, seed=7), 200)
    again = _decisions(FailRule(ops={"read"}, probability=0.3, seed=7), 200)
    assert first == again
    assert 20 < sum(first) < 120


def test_a_path_matches_the_database_its_journal_and_its_wal_only(tmp_path):
    db = str(tmp_path / "a.db")
    rule = FailRule(ops={"sync"}, path=db)
    real = os.path.realpath(db)
    assert all(rule.matches("sync", real + suffix, "main") for suffix in ("", "-journal", "-wal"))
    assert not rule.matches("sync", real + "-shm", "main")
    assert not rule.matches("sync", os.path.realpath(str(tmp_path / "b.db")), "main")
    assert not rule.matches("write", real, "main")


def test_kinds_narrow_a_rule_to_journal_files():
    rule = FailRule(ops={"write"}, kinds={"journal", "wal"})
    assert rule.matches("write", "/x.db-journal", "journal")
    assert not rule.matches("write", "/x.db", "main")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ops": {"scribble"}}, "ops .*'scribble'.* not in read, write"),
    ({"ops": set()}, r"ops \(empty\)"),
    ({"ops": {"write"}, "error": "melted"}, "error 'melted' unknown; known: io_error"),
    ({"ops": {"write"}, "error": "short_read"}, "'short_read' only applies to ops={'read'}"),
    ({"ops": {"write"}, "error": "busy"}, "'busy' only applies to lock operations"),
    ({"ops": {"write"}, "nth": 0}, "nth=0 must be an int >= 1"),
    ({"ops": {"write"}, "probability": 1.5}, r"probability 1.5 must be within \[0, 1\]"),
    ({"ops": {"write"}, "kinds": {"mainn"}}, r"kinds \['mainn'\] not in"),
])
def test_bad_rules_are_refused_with_a_message_naming_the_value(kwargs, message):
    with pytest.raises(VfsUsageError, match=message):
        FailRule(**kwargs)
