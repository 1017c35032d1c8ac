"""The reload machine's ``reload_synchronous`` with the redo journal on judges a change from NORMAL to FULL or EXTRA
whatever level the example started at: an application running at FULL or EXTRA restarts at NORMAL first (session 28,
rare draws: from a start at a level the journal already flushes for, a journal that ignores reloads looked right, so
planted bug ``p16_journal_ignores_synchronous_reload`` was missed by default runs). The rule is called directly on a
machine started at each level: it passes on the runtime and bites a journal that keeps the level it started with."""

from __future__ import annotations

import sys

import pytest
from bite_settings import run_and_tear_down, started_machine

from pytest_dbfault.machines.powerloss import supported
from reliability.redo import RedoJournal

LEVELS = ("NORMAL", "FULL", "EXTRA")


def run_rule(tmp_path, start: str, other: int, journal_off: bool) -> None:
    machine = started_machine("reload_effects", tmp_path, frozenset({"reload"}), synchronous=start,
                              redo_journal=True)
    run_and_tear_down(machine, lambda m: m.reload_synchronous(other, 7, journal_off))


@pytest.mark.parametrize("journal_off", [False, True])
@pytest.mark.parametrize("other", [0, 1])
@pytest.mark.parametrize("start", LEVELS)
def test_the_rule_passes_on_the_runtime(tmp_path, start, other, journal_off):
    run_rule(tmp_path, start, other, journal_off)


@pytest.mark.skipif(not supported(), reason="the power-loss model needs Linux")
@pytest.mark.parametrize("journal_off", [False, True])
@pytest.mark.parametrize("other", [0, 1])
@pytest.mark.parametrize("start", LEVELS)
def test_it_bites_a_journal_that_ignores_a_reload(tmp_path, monkeypatch, start, other, journal_off):
    # The planted bug's behaviour: a reload never hands the new level to the journal (it keeps flushing as it
    # started; the start itself still sets the journal's level).
    real = RedoJournal.follow_synchronous

    def ignoring_reloads(self, level: str) -> None:
        if sys._getframe(1).f_globals.get("__name__") != "reliability.reload":
            real(self, level)

    monkeypatch.setattr(RedoJournal, "follow_synchronous", ignoring_reloads)
    with pytest.raises(AssertionError, match=r"p16_\w+ violated .*synchronous reloaded to (FULL|EXTRA): the "
                                             r"(journal record|committed mark)"):
        run_rule(tmp_path, start, other, journal_off)
