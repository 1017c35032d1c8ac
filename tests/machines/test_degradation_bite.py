"""The degradation machine judges two outages of the write path that leave the database itself sound: a database
that turns read-only under the running runtime (rule ``write_to_a_read_only_database``: a write command is queued
and replayed once writable, never answered as an error) and a shared queue file holding a write of a command this
runtime does not register (rule ``write_of_a_command_not_registered_here``: it waits, and this runtime's own queued
writes replay past it). Each check fails against a runtime with one realistic defect of that kind, and passes
against the real one."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import bite_settings, run_and_tear_down, started_machine

from pytest_dbfault.machines import MACHINES, run_machine
from reliability import errors
from reliability.degraded.queue import WriteQueue
from reliability.errors import ErrorKind

BITE = bite_settings(max_examples=30, steps=15)


def test_it_bites_a_read_only_database_classified_as_a_permission_error(tmp_path, monkeypatch):
    # The code table maps SQLITE_READONLY (8) to the kind of SQLITE_AUTH, a refusal of the caller: a write command
    # meeting a read-only database is then answered "You are not allowed to do that" and the write is dropped.
    # (Where a renamed file also reads as SQLITE_READONLY (Python 3.10's sqlite3: no extended code to tell
    # READONLY_DBMOVED), the machine's older check of a write command under that fault meets it first: the same
    # defect, the same answer, so either check's message is a catch.)
    # Called directly (session 28: the Hypothesis search this bite used moved when other rules of the machine changed,
    # and no longer met the rule within its examples).
    monkeypatch.setitem(errors._BY_PRIMARY, 8, ErrorKind.AUTH)
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:disconnect"}))
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated \(faults: [^)]*\): .*answered 'error'"):
        run_and_tear_down(machine, lambda m: m.write_to_a_read_only_database(3, False))


@pytest.mark.parametrize(("n", "read"), [(3, False), (4, True)])
def test_a_read_only_database_is_waited_out_by_the_real_runtime(tmp_path, n, read):
    machine = started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:disconnect"}))
    run_and_tear_down(machine, lambda m: m.write_to_a_read_only_database(n, read))


def test_it_bites_a_queue_that_takes_every_write_for_its_own(tmp_path, monkeypatch):
    # Entries read back from the shared file lose their origin: every write looks like one this runtime accepted,
    # so a write of a command it does not register stops the replay ("not registered") and its own writes wait.
    real = WriteQueue.pending
    monkeypatch.setattr(WriteQueue, "pending",
                        lambda self: [dataclasses.replace(e, origin=self.origin) for e in real(self)])
    with pytest.raises(AssertionError, match=r"another program queued a write of its command 'legacy'.* this "
                                             r"runtime's own queued write must not wait behind one it cannot run"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_the_degradation_machine_passes_on_the_real_runtime(tmp_path):
    run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})
