"""The degradation machine's write queue lives two folders deep that do not exist yet (P14).

The queue makes its own folders at its first queued write (``WriteQueue``: ``mkdir(parents=True)``). Every machine
used a queue beside the database, so the ninth mutant sample's survivor ``degraded/queue.py:234`` (``parents=False``:
the first write queued in an outage fails) went unseen. Called directly: a write command under a lock passes on the
runtime; bites a queue that makes only its last folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bite_settings import run_and_tear_down, started_machine


def machine(tmp_path):
    return started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))


def test_passes_on_the_runtime(tmp_path):
    def call(m):
        assert not Path(m.config.write_queue_file).parent.parent.exists()  # (two folders deep, neither made yet)
        m.served_once_the_outage_is_over("locked", 1, 2, 0, 0.0)
        assert Path(m.config.write_queue_file).parent.is_dir()  # (the queue made them at its first queued write)

    run_and_tear_down(machine(tmp_path), call)


def test_bites_a_queue_that_makes_only_its_last_folder(tmp_path, monkeypatch):
    real = Path.mkdir

    def mkdir(self, mode=0o777, parents=False, exist_ok=False):
        return real(self, mode, False if self.name == "writes" else parents, exist_ok)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    # (The first queued write fails: the error escapes the command itself, which the main job reports as a failure.)
    with pytest.raises((AssertionError, FileNotFoundError), match=r"p14_command_continuity violated|queued/writes"):
        run_and_tear_down(machine(tmp_path), lambda m: m.served_once_the_outage_is_over("locked", 1, 2, 0, 0.0))
