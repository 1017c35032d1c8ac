"""A write whose SQL starts with a block comment is journaled like any other (session 28, surviving mutant
``executor.py:583``: the comment stripper kept the text *before* ``*/``, so ``/* tag */ INSERT ...`` read as an empty
statement, took the raw path outside the redo journal, and a later recovery left the acknowledged write out).

The workload mixin's ``upsert`` (the write rules use before damage and power loss) tags every odd key's statement
with a leading comment; the backup machine's ``recover_past_an_unverified_backup`` then damages the database and
recovers: a recovery reporting ok must hold every acknowledged write. Called directly (no Hypothesis search)."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import executor


def recover_after_tagged_writes(tmp_path, how: str = "manifest_lost", part: str = "btree_root") -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset({"recover", "fault:corrupt"}))
    run_and_tear_down(machine, lambda m: m.recover_past_an_unverified_backup(how, part, 7, [1, 2, 3]))


@pytest.mark.parametrize(("how", "part"), [("manifest_lost", "btree_root"), ("marked_unverified", "header"),
                                           ("extended", "truncate")])
def test_the_real_runtime_recovers_tagged_writes(tmp_path, how, part):
    recover_after_tagged_writes(tmp_path, how, part)


def test_it_bites_a_comment_stripper_that_keeps_the_comment(tmp_path, monkeypatch):
    # A leading block comment read as the whole statement: what is left of it is empty.
    real = executor._strip_sql
    monkeypatch.setattr(executor, "_strip_sql", lambda sql: "" if sql.lstrip().startswith("/*") else real(sql))
    monkeypatch.setattr(executor, "_ROUTES", {})
    monkeypatch.setattr(executor, "_READS", {})
    with pytest.raises(AssertionError, match="p13_corruption_recovery violated.*left the redo journal"):
        recover_after_tagged_writes(tmp_path)
