"""The degradation machine judges the order of writes across an outage (rule ``the_later_write_wins``): a write
acknowledged as queued during an outage, then a later write of the same row once it healed (a write command, or a
direct ``db.execute`` / ``db.transaction()`` / ``db.run_in_transaction``, which the README says replay the backlog
first), must leave the later value in the file, whatever replays the backlog. Each check fails against a runtime
with one realistic defect of that kind, and passes against the real one."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.degraded.commands import CommandRegistry
from reliability.executor import Executor

LATER_LANDS_FIRST = (r"p14_command_continuity violated \(faults: [^)]*\): during .*"
                     r"a write answered later must land later")


def test_it_bites_a_backlog_port_that_only_sees_other_processes_writes(tmp_path, monkeypatch):
    # The executor's question "must a backlog be replayed first?" answers only for writes another process appended
    # to the shared file: this runtime's own queued writes are left to the next command, so a direct write made
    # once the outage is over lands first and the replay then overwrites it with the older value.
    def waiting(self):
        return bool(self.queue.refresh_if_changed()
                    and any(e.command in self._commands for e in self.queue.pending()))

    monkeypatch.setattr(CommandRegistry, "waiting", waiting)
    # The rule called with fixed arguments (session 24: a new rule of the machine moved its derandomized search, which
    # then missed this defect on the pysqlite3 build).
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))
    with pytest.raises(AssertionError, match=LATER_LANDS_FIRST):
        run_and_tear_down(machine, lambda m: m.the_later_write_wins("locked", 3, [], "execute", "nothing", 0, False))


def test_it_bites_transactions_that_do_not_replay_the_backlog_first(tmp_path, monkeypatch):
    # Only ``db.execute`` replays the backlog first; ``db.transaction()`` and ``db.run_in_transaction`` skip it, so
    # a change made in a transaction after the outage is overwritten by the queued one replayed after it.
    real = Executor.replay_backlog

    def replay_backlog(self, op, sql, params):
        if op == "execute":
            real(self, op, sql, params)

    monkeypatch.setattr(Executor, "replay_backlog", replay_backlog)
    # The rule called with fixed arguments (session 24: a new rule of the machine, which meets this defect first with
    # its own message, moved the derandomized search).
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))
    with pytest.raises(AssertionError, match=LATER_LANDS_FIRST):
        run_and_tear_down(machine, lambda m: m.the_later_write_wins("locked", 3, [], "transaction", "nothing", 0,
                                                                     False))
