"""A runtime that hangs fails the main job where it hangs (``pytest_dbfault.machines.watchdog``): the write queue
forgetting to close its descriptor keeps the file's ``flock`` held, so the next queue operation of the same
process waits forever. Before the watchdog the main job never ended on such a defect (two of the 40 mutants of
the seed-3 mutation sample ran into the sample's 900 s limit with no verdict)."""

from __future__ import annotations

import os
import time
import types

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.machines.watchdog import STEP_SECONDS_ENV, StepHung
from reliability.degraded import queue as queue_module


def test_a_queue_that_leaks_its_locked_descriptor_fails_the_run_where_it_hangs(tmp_path, monkeypatch):
    leaky = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    leaky.close = lambda fd: None  # the defect: the descriptor (and the flock held through it) is never released
    monkeypatch.setattr(queue_module, "os", leaky)
    monkeypatch.setenv(STEP_SECONDS_ENV, "3")
    t0 = time.monotonic()
    with pytest.raises(StepHung, match="degradation_queue machine did not return within 3 s"):
        run_machine(MACHINES["degradation_queue"], settings_=bite_settings(20, 15), base_dir=str(tmp_path))
    assert time.monotonic() - t0 < 300
