"""The under-fault machine's ``replay_while_damaged`` (and the sweep's corruption round): with corruption in force and
seen by the runtime, a write command queues and ``db.commands.replay()`` applies nothing, its report saying exactly
that (nothing applied, skipped or failed, every write remaining, the error ``corrupt``) with the queue file unchanged.
The rule is called directly with fixed arguments (no Hypothesis search)."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.degraded import commands as commands_module
from reliability.degraded.queue import ReplayReport


def run_rule(tmp_path) -> None:
    machine = started_machine("under_fault", tmp_path, frozenset({"corrupt_in_force", "commands"}))

    def call(m) -> None:
        m.upsert(1)
        m.corrupt_in_force(5)
        assert "corrupt" in m.faults, "the corruption was not put in force: nothing to judge"
        m.replay_while_damaged()
        m.replay_while_damaged()  # (two writes waiting the second time)

    run_and_tear_down(machine, call)


def test_the_rule_passes_on_the_runtime(tmp_path):
    run_rule(tmp_path)


def test_it_bites_a_refused_replay_that_counts_a_write_skipped(tmp_path, monkeypatch):
    # A refactor that reports the refused replay as "every queued write skipped" (skipped means already applied).
    real = commands_module.CommandRegistry.replay

    def skipped_all(self):
        got = real(self)
        if got.error == "corrupt":
            return ReplayReport(0, got.remaining, 0, got.remaining, got.error, list(got.failures))
        return got

    monkeypatch.setattr(commands_module.CommandRegistry, "replay", skipped_all)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated \(faults: corrupt\): "
                                             r"db\.commands\.replay\(\) with 1 write\(s\) queued"):
        run_rule(tmp_path)


def test_it_bites_a_refused_replay_that_sets_the_writes_aside(tmp_path, monkeypatch):
    # A refactor that treats the damaged file like a write the database refused for good: each queued write is
    # recorded as failed in the queue file (it would never be replayed).
    real = commands_module.CommandRegistry.replay

    def set_aside(self):
        got = real(self)
        if got.error == "corrupt":
            for write in self.queue.pending():
                self.queue.mark_failed(write.key, "database damaged")
        return got

    monkeypatch.setattr(commands_module.CommandRegistry, "replay", set_aside)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated.*the queue file changed"):
        run_rule(tmp_path)
