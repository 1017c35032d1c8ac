"""The degradation machine's rule ``a_read_refused_degrades_the_registry``: after a read command answers
``unavailable`` under a real exclusive lock (a rollback-journal database), the registry's public surface says it is
degraded the same way everywhere (``degraded``, ``fault``, ``health().extra['degraded_by']``, the next write queued),
and is healthy again once the lock is released. Called with fixed arguments on a fresh machine, the rule passes on the
runtime and fails against a runtime with one realistic defect of that class."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.degraded import commands as commands_module
from reliability.errors import DatabaseError, RecoveryAction


def run_rule(base: Path, n: int, queued_first: bool, then: str, journal_mode: str = "DELETE") -> None:
    """The rule once on a fresh degradation machine in a rollback-journal mode, then its invariants and teardown."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["degradation_queue"], None, base_dir=str(base), enforce={14})()
    machine.start(random.Random(0), {**{k: v[0] for k, v in CONFIG_SPACE.items()}, "journal_mode": journal_mode},
                  frozenset({"commands", "outage", "fault:locked"}))
    try:
        machine.a_read_refused_degrades_the_registry(n, queued_first, then)
        machine.p14_command_continuity()
    finally:
        machine.teardown()


CASES = [(0, False, "none", "DELETE"), (3, True, "write", "DELETE"), (5, False, "read", "TRUNCATE"),
         (7, True, "read", "DELETE"), (9, False, "write", "TRUNCATE")]


@pytest.mark.parametrize(("n", "queued_first", "then", "mode"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, n, queued_first, then, mode):
    run_rule(tmp_path, n, queued_first, then, mode)


def test_it_bites_degraded_meaning_only_writes_waiting(tmp_path, monkeypatch):
    # ``degraded`` read as "writes are waiting": a known fault with nothing queued yet is not reported.
    monkeypatch.setattr(commands_module.CommandRegistry, "degraded",
                        property(lambda self: self.waiting() or self._own_waiting() > 0))
    with pytest.raises(AssertionError, match=r"answered unavailable.*the public surface says \{'degraded': False"):
        run_rule(tmp_path, 2, False, "none")


def test_it_bites_a_read_failure_that_does_not_degrade(tmp_path, monkeypatch):
    # Reads taken for harmless: the error observer degrades on failed writes only, and the read command does not
    # degrade the registry itself (the reported mutant, no longer covered by the observer).
    real_failed = commands_module.CommandRegistry.failed

    def failed(self, op, sql, err, seconds, attempts):
        if op not in ("fetch_one", "fetch_all"):
            real_failed(self, op, sql, err, seconds, attempts)

    def read(self, cmd, args, kwargs):
        try:
            value = cmd.fn(self.app, *args, **kwargs)
        except DatabaseError as err:
            status = "error" if err.action is RecoveryAction.RAISE else "unavailable"
            return commands_module.CommandResult(status, err.user_message, fault=str(err.kind),
                                                 pending=len(self.queue))
        return commands_module.CommandResult("ok", "", value, pending=len(self.queue))

    monkeypatch.setattr(commands_module.CommandRegistry, "failed", failed)
    monkeypatch.setattr(commands_module.CommandRegistry, "_read", read)
    with pytest.raises(AssertionError, match=r"answered unavailable.*the public surface says \{'degraded': False, "
                                             r"'fault': None, 'degraded_by': None"):
        run_rule(tmp_path, 4, False, "write")


def test_it_bites_health_that_names_no_fault_without_a_backlog(tmp_path, monkeypatch):
    # health() names the fault only while writes wait: a read refused with nothing queued leaves it silent.
    real = commands_module.CommandRegistry.health_extra

    def health_extra(self):
        extra, reasons = real(self)
        if not len(self.queue):
            extra["degraded_by"] = None
        return extra, reasons

    monkeypatch.setattr(commands_module.CommandRegistry, "health_extra", health_extra)
    with pytest.raises(AssertionError, match=r"'degraded_by': None.*expected"):
        run_rule(tmp_path, 6, False, "read")
