"""The health machine judges an ``Inspector`` kept across a change of the file at its path (rule
``inspector_follows_the_path``; issue #14, surviving mutants ``inspection.py:155`` and ``inspection.py:305``): asked
again after the database was moved away or replaced by a file that is no database, it must report on what is at the
path now (health unavailable, the integrity checks failed), not on the file it read before. The rule is called
directly with chosen arguments: no Hypothesis search order involved."""

from __future__ import annotations

import os
import random

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import inspection


def started(tmp_path, journal_mode: str = "WAL"):
    machine = bind(MACHINES["health_integrity"], None, base_dir=str(tmp_path))()
    drawn = {k: v[0] for k, v in CONFIG_SPACE.items()}
    drawn["journal_mode"] = journal_mode
    machine.start(random.Random(0), drawn, frozenset({"fault:locked"}))
    return machine


def run(machine, *args) -> None:
    try:
        machine.inspector_follows_the_path(*args)
    finally:
        machine.teardown()


def by_path_name(monkeypatch) -> None:
    # "Same path, same file": the inspector compares the resolved path, which a move or a replacement never changes.
    def follow(self):
        if self._conn is not None and os.path.realpath(self.path) != os.path.realpath(self.config.db_path):
            conn, self._conn = self._conn, None
            conn.close()

    monkeypatch.setattr(inspection.Inspector, "follow_the_path", follow)


def health_never_looks(monkeypatch) -> None:
    # The health report trusts the connection it has: only the integrity check looks at the path again.
    real = inspection.Inspector.health

    def health(self):
        self.follow_the_path = lambda: None
        try:
            return real(self)
        finally:
            del self.follow_the_path

    monkeypatch.setattr(inspection.Inspector, "health", health)


CASES = [("disconnect_rename", "quick", "health"), ("disconnect_replace", "health", "full"),
         ("disconnect_rename", "full", "quick"), ("disconnect_replace", "quick", "health")]


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
@pytest.mark.parametrize("change,first,then", CASES)
def test_it_bites_an_inspector_that_keeps_reading_the_old_file(change, first, then, journal_mode, tmp_path,
                                                               monkeypatch):
    by_path_name(monkeypatch)
    with pytest.raises(AssertionError, match=rf"the read-only inspection \(an Inspector that read the intact file "
                                             rf"\({first}\), asked again \({then}\) after the file was .*\) still "
                                             r"reports on the old file"):
        run(started(tmp_path, journal_mode), change, first, then, 7)


@pytest.mark.parametrize("change", ["disconnect_rename", "disconnect_replace"])
@pytest.mark.parametrize("then", ["quick", "full"])
def test_it_bites_a_health_report_that_does_not_look_at_the_path(change, then, tmp_path, monkeypatch):
    # (Asked for an integrity check first, that inspector follows the path; the other one, asked for its health
    # first, does not.)
    health_never_looks(monkeypatch)
    with pytest.raises(AssertionError, match=r"p10_health_monitoring violated .*asked again \(health\) after the "
                                             r"file was .*\) still reports on the old file: health healthy"):
        run(started(tmp_path), change, "health", then, 3)


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
@pytest.mark.parametrize("change,first,then", CASES)
def test_the_same_calls_pass_on_the_runtime(change, first, then, journal_mode, tmp_path):
    run(started(tmp_path, journal_mode), change, first, then, 7)
