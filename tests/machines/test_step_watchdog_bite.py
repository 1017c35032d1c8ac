"""A runtime that hangs fails the main job where it hangs (``pytest_dbfault.hang``): the write queue
forgetting to close its descriptor keeps the file's ``flock`` held, so the next queue operation of the same
process waits forever. Before the watchdog the main job never ended on such a defect (two of the 40 mutants of
the seed-3 mutation sample ran into the sample's 900 s limit with no verdict)."""

from __future__ import annotations

import os
import types
from pathlib import Path

import pytest
from bite_settings import bite_settings

from pytest_dbfault.hang import STEP_SECONDS_ENV, StepHung
from pytest_dbfault.machines import MACHINES, run_machine
from reliability.degraded import queue as queue_module


def test_a_queue_that_leaks_its_locked_descriptor_fails_the_run_where_it_hangs(tmp_path, monkeypatch):
    leaky = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    leaky.close = lambda fd: None  # the defect: the descriptor (and the flock held through it) is never released
    monkeypatch.setattr(queue_module, "os", leaky)
    monkeypatch.setenv(STEP_SECONDS_ENV, "3")
    with pytest.raises(StepHung, match="degradation_queue machine did not return within 3 s"):
        run_machine(MACHINES["degradation_queue"], settings_=bite_settings(20, 15), base_dir=str(tmp_path))


def test_a_scenario_meeting_the_same_hang_fails_where_it_hangs(tmp_path, monkeypatch):
    # The shipped scenario that queues a flag change while the database is locked, then saves it: with the leaked
    # descriptor its second queue operation waits forever (the main job met it here first, before any machine ran).
    from pytest_dbfault.scenarios.errors import ScenarioFailure
    from pytest_dbfault.scenarios.parse import parse_file
    from pytest_dbfault.scenarios.runner import run_scenario

    scenarios = Path(__file__).resolve().parents[2] / "scenarios" / "connection.dbfault.yaml"
    scenario = next(s for s in parse_file(scenarios).scenarios if s.name.startswith("a flag change made while"))
    leaky = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    leaky.close = lambda fd: None
    monkeypatch.setattr(queue_module, "os", leaky)
    monkeypatch.setenv(STEP_SECONDS_ENV, "3")
    with pytest.raises(ScenarioFailure, match=r"a step of scenario 'a flag change made while.*did not return within 3"):
        run_scenario(scenario, tmp_path, seed=1)
