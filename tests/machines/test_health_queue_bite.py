"""What the health machine and the degradation machine judge beside a queue and a file's length: stray bytes after
the database file's last page are reported by the quick integrity check as by the full one (rule
``file_changed_while_stopped``, P11); a database missing at start stays ``unavailable`` when a write command is queued
(the same rule, P10); a read command after an outage sees the write queued during it
(rule ``read_once_the_outage_is_over``, P14). Each check fails against a runtime with one realistic defect there."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import bite_settings, run_and_tear_down, started_machine

from pytest_dbfault.machines import MACHINES, run_machine
from reliability import health as health_module
from reliability.degraded import Needs
from reliability.degraded.commands import CommandRegistry
from reliability.health import HealthStatus
from reliability.manager import DatabaseManager

BITE = bite_settings(max_examples=40, steps=15)


def test_it_bites_a_length_check_that_only_sees_a_cut(tmp_path, monkeypatch):
    # The file's length compared with the header's page count: a file cut short is reported, one that goes on
    # past its last page (stray bytes appended) passes, although it too ends inside a page.
    def cut_short_only(db_path, page_size):
        size = health_module.files.file_size(db_path)
        if size is None or page_size <= 0:
            return []
        with open(db_path, "rb") as fh:
            pages = int.from_bytes(fh.read(32)[28:32], "big")
        if size < pages * page_size:
            return [f"the database file ends inside a page: {size} bytes, the header says {pages} pages"]
        return []

    monkeypatch.setattr(health_module, "cut_off_problems", cut_short_only)
    with pytest.raises(AssertionError, match=r"stray byte\(s\) after the last page .* not flagged: "
                                             r"check_integrity\(full=False\)"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_it_bites_a_backlog_that_means_degraded(tmp_path, monkeypatch):
    # "Writes are queued: the runtime is in its degraded mode", whatever else health found.
    real = DatabaseManager.health

    def health(self):
        report = real(self)
        if len(self.commands.queue):
            return dataclasses.replace(report, status=HealthStatus.DEGRADED)
        return report

    monkeypatch.setattr(DatabaseManager, "health", health)
    # (the rule called directly since session 24: the health machine's new rules moved its search off this case)
    machine = started_machine("health_integrity", tmp_path, frozenset({"integrity", "fault:locked"}))
    with pytest.raises(AssertionError, match=r"a write command was queued, and health says 'degraded'"):
        run_and_tear_down(machine, lambda m: m.file_changed_while_stopped("file_away", 5, 3))


def test_it_bites_a_read_command_that_skips_the_backlog(tmp_path, monkeypatch):
    # A fast path for reads ("a read changes nothing, the backlog can wait"): served before the replay.
    real = CommandRegistry.run

    def run(self, name, /, *args, idempotency_key=None, **kwargs):
        cmd = self.get(name)
        if cmd is not None and cmd.needs is Needs.READ and not cmd.admin:
            return self._read(cmd, args, kwargs)
        return real(self, name, *args, idempotency_key=idempotency_key, **kwargs)

    monkeypatch.setattr(CommandRegistry, "run", run)
    # The rule called with fixed arguments (session 24: a new rule of the machine moved its derandomized search).
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))
    with pytest.raises(AssertionError, match=r"a read command of 'user-\d+' answered .* the write acknowledged "
                                             r"during the outage is"):
        run_and_tear_down(machine, lambda m: m.read_once_the_outage_is_over("locked", 3, 0, 0.0))
