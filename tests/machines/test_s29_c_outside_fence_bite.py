"""The data-loss machine's ``another_application_opens_after_removal`` (session 29): the ``-wal`` and ``-shm`` removed
under the live managers while the tables live only in the removed WAL, then another application opens the database.
Every connection of this process reads through the removed WAL's index then, so recovery's fence against writers
meets a disk I/O error and must fence from a helper process (``reliability/durability/outside_fence.py``); no default
run reached that path before. The rule is called directly (no Hypothesis search): it passes on the runtime, and bites
a recovery that treats the fence's I/O error as any other (planted bug ``s29_c_no_outside_fence``: recover() raises
ioerr, as it did before the helper fence)."""

from __future__ import annotations

import re

import pytest
from bite_settings import run_and_tear_down, started_machine
from runtime_helpers import SQLITE_MODULE_NAME

from reliability.durability import outside_fence, recovery


def run_rule(tmp_path, peer: bool) -> None:
    machine = started_machine("dataloss", tmp_path)

    def call(m):
        if peer:
            m.open_second_manager()
        m.another_application_opens_after_removal()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("peer", [False, True])
def test_the_rule_passes_on_the_runtime_and_reaches_the_helper_fence(tmp_path, monkeypatch, peer):
    taken = []
    real = outside_fence.OutsideFence.take.__func__

    def take(cls, *args, **kwargs):
        fence = real(cls, *args, **kwargs)
        taken.append(fence is not None)
        return fence

    monkeypatch.setattr(outside_fence.OutsideFence, "take", classmethod(take))
    run_rule(tmp_path, peer)
    if SQLITE_MODULE_NAME == "sqlite3":
        # The path the rule is for, met on the stdlib's build (another build may let the fence connection read).
        assert taken == [True]
    assert all(taken)


@pytest.mark.parametrize("peer", [False, True])
def test_it_bites_a_recovery_without_the_helper_fence(tmp_path, monkeypatch, peer):
    # The fence's disk I/O error taken as any other (the runtime before the helper fence): recover() raises it.
    asked = []
    monkeypatch.setattr(recovery.OutsideFence, "take", classmethod(lambda cls, *a, **k: asked.append(1)))
    try:
        run_rule(tmp_path, peer)
    except AssertionError as exc:
        assert re.search(r"p13_\w+ violated .*recover\(\) after the -wal was removed raised", str(exc)), exc
        return
    assert not asked, "the helper fence was refused, and the machine judged nothing wrong"
    assert SQLITE_MODULE_NAME != "sqlite3", "the stdlib's build meets the helper fence here"
    pytest.skip("this SQLite build's fence connection did not fail: the helper fence is not asked for")
