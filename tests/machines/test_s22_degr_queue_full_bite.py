"""The degradation machine's rule ``a_full_write_queue_refuses`` (README: ``write_queue_max``, "a full queue refuses
with a clear error"): called with fixed arguments on a fresh machine, each check fails against a runtime with one
realistic defect at the queue's bound, and passes on the runtime."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.degraded import commands as commands_module
from reliability.degraded import queue as queue_module
from reliability.degraded.queue import QueueFullError, WriteQueue


def run_rule(base: Path, limit: int, extra: int, outage: str) -> None:
    """``a_full_write_queue_refuses`` once on a fresh degradation machine, then its invariants (the replay) and
    teardown; raises the first violation."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["degradation_queue"], None, base_dir=str(base), enforce={14})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()},
                  frozenset({"commands", "outage", "fault:locked"}))
    try:
        machine.a_full_write_queue_refuses(limit, extra, 3, outage, 0)
        machine.p14_command_continuity()
    finally:
        machine.teardown()


CASES = [(0, 1, "locked"), (2, 2, "locked"), (1, 1, "disconnect_rename"), (3, 1, "disconnect_delete")]


@pytest.mark.parametrize(("limit", "extra", "outage"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, limit, extra, outage):
    run_rule(tmp_path, limit, extra, outage)


def bound_checked_after_the_append(self, command, args=(), kwargs=None, key=None, auth=None):
    # The bound checked once the record is safely on disk ("never lose a write we were given"): the refused write
    # stays in the file, where the next process that reads it (a restart, another worker) replays it.
    key = key or "k-" + str(len(self._pending)) + "-" + str(self._seq)
    record = {"op": "put", "key": key, "seq": self._seq + 1, "command": command, "args": list(args),
              "kwargs": dict(kwargs or {}), "queued_at": 0.0, "origin": self.origin}
    with self._exclusive(create=True) as fd:
        self._append(fd, json.dumps(record))
        if len(self._pending) >= self.max_entries:
            raise QueueFullError(f"the write queue {self.path} is full")
        self._seq += 1
        entry = queue_module.QueuedWrite(key, self._seq, command, record["args"], record["kwargs"], 0.0, auth,
                                         self.origin)
        self._pending[key] = entry
        return entry


def test_it_bites_a_bound_checked_after_the_write_is_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(WriteQueue, "put", bound_checked_after_the_append)
    with pytest.raises(AssertionError, match=r"the queue was full, yet it holds 2 write\(s\) \(was 2\) and its file "
                                             r"3 queued write\(s\) \(was 2\)"):
        run_rule(tmp_path, 2, 1, "locked")


def test_it_bites_a_full_queue_answered_as_an_error(tmp_path, monkeypatch):
    # The refusal reported as the outage's error (the caller cannot tell "not saved, the queue is full" from a
    # failing database it may simply retry against), instead of ``rejected``.
    real = commands_module.CommandResult

    def result(status, message="", *args, **kwargs):
        if status == "rejected" and "too many changes" in message:
            status = "error"
        return real(status, message, *args, **kwargs)

    monkeypatch.setattr(commands_module, "CommandResult", result)
    with pytest.raises(AssertionError, match=r"answered 'error'.*the queue is full: the write must be rejected"):
        run_rule(tmp_path, 0, 1, "disconnect_rename")


def test_it_bites_a_queue_that_takes_one_past_its_bound(tmp_path, monkeypatch):
    # ``len(pending) > max`` for ``>=``: one write more than write_queue_max waits.
    real = WriteQueue.put

    def put(self, *args, **kwargs):
        self.max_entries += 1
        try:
            return real(self, *args, **kwargs)
        finally:
            self.max_entries -= 1

    monkeypatch.setattr(WriteQueue, "put", put)
    with pytest.raises(AssertionError, match=r"write_queue_max=1, during locked: .*sent with 1 write\(s\) waiting, "
                                             r"answered 'queued'"):
        run_rule(tmp_path, 1, 2, "locked")
