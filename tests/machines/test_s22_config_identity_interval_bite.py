"""The config machine's rule ``reads_follow_the_path_within_the_interval`` (the facade's ``identity_check_interval``:
"seconds between the checks reads make that the path still names their file (0 = every read)"). Called with fixed
arguments on a fresh machine, it fails against a runtime with one realistic defect of the interval, and passes on the
runtime (each journal mode)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import executor as executor_module

MACHINE = MACHINES["config"]


def run_rule(base: Path, cases: list[tuple[float | None, str]], journal_mode: str = "WAL") -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINE, None, base_dir=str(base), enforce={1})()
    drawn = {**{k: v[0] for k, v in CONFIG_SPACE.items()}, "journal_mode": journal_mode}
    machine.start(random.Random(0), drawn, frozenset({"fault:locked"}))
    try:
        for interval, op in cases:
            machine.reads_follow_the_path_within_the_interval(interval, op)
    finally:
        machine.teardown()


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE", "TRUNCATE"])
def test_the_rule_passes_on_the_runtime(tmp_path, journal_mode):
    run_rule(tmp_path, list(itertools.product((0.0, 0.01, 0.03, None), ("fetch_one", "fetch_all"))), journal_mode)


def test_it_bites_an_interval_never_shorter_than_the_default(tmp_path, monkeypatch):
    # "A stat per read is costly": the check is never made more often than every 50 ms, whatever was set.
    real = executor_module.Executor.reads_follow_the_path

    def reads_follow_the_path(self, t0):
        ok = real(self, t0)
        self._identity_due = t0 + max(self.identity_check_interval, 0.05)
        return ok

    monkeypatch.setattr(executor_module.Executor, "reads_follow_the_path", reads_follow_the_path)
    with pytest.raises(AssertionError, match=r"identity_check_interval 0.01 s: a read \(fetch_one\) .* gave 'old'"):
        run_rule(tmp_path, [(0.01, "fetch_one")])


def test_it_bites_zero_read_as_never(tmp_path, monkeypatch):
    # 0 read as "off" (as some settings use 0), not as "every read".
    real = executor_module.Executor.reads_follow_the_path

    def reads_follow_the_path(self, t0):
        ok = real(self, t0)
        if not self.identity_check_interval:
            self._identity_due = float("inf")
        return ok

    monkeypatch.setattr(executor_module.Executor, "reads_follow_the_path", reads_follow_the_path)
    with pytest.raises(AssertionError, match=r"identity_check_interval 0.0 s: a read \(fetch_all\) .* gave 'old'"):
        run_rule(tmp_path, [(0.0, "fetch_all")], "DELETE")
