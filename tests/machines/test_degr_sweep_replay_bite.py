"""The degradation machine's sweep of the command registry and the replay of queued writes (P14).

Rules ``refused_writes_queued_during_a_lock`` / ``refused_writes_queued_while_unavailable``: a burst of write
commands during one outage, a drawn mix the database will take and will refuse (UNIQUE, NOT NULL), judged against
a model after the replay (applied, set aside and reported, nothing pending). Rule
``the_registry_lists_its_commands``: the ``command`` decorator, ``names``/``get``/``in``, ``Needs``, ``admin``, and
an unknown name. Each check fails against a runtime with one realistic defect of that kind, and passes against the
real one (the degradation machine's passing run is tests/machines/test_degradation_bite.py's)."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import bite_settings, run_and_tear_down, started_machine

from pytest_dbfault.machines import MACHINES, run_machine
from reliability import errors
from reliability.degraded.commands import CommandRegistry
from reliability.degraded.queue import WriteQueue
from reliability.errors import ErrorKind, RecoveryAction

BITE = bite_settings(max_examples=90, steps=15)  # (30 until session 22: its rules moved the searches)


def test_it_bites_a_replay_that_never_records_a_refused_write(tmp_path, monkeypatch):
    # The set-aside is logged but not written to the queue file: the refused write stays pending, and every replay
    # meets it again (it never leaves the backlog, and writes queued after it keep waiting behind a degraded mode).
    monkeypatch.setattr(WriteQueue, "mark_failed", lambda self, key, reason: None)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated .*(still pending after the replay|"
                                             r"the next write command answered 'queued'|set aside)"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_a_replay_that_gives_up_at_the_first_refused_write(tmp_path, monkeypatch):
    # A constraint violation at replay is taken for unavailability: the replay stops there (as if the database were
    # down) and what was queued after the refused write is never applied.
    real = CommandRegistry._apply

    def apply(self, cmd, entry):
        try:
            return real(self, cmd, entry)
        except errors.DatabaseError as err:
            if err.kind is ErrorKind.CONSTRAINT:
                raise errors.DatabaseError(ErrorKind.UNAVAILABLE, str(err)) from err
            raise
    monkeypatch.setattr(CommandRegistry, "_apply", apply)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated .*(still pending after the replay|"
                                             r"the next write command answered 'queued'|a read command answered)"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_a_busy_database_taken_for_the_callers_mistake(tmp_path, monkeypatch):
    # A busy database classified as a refusal of the caller's input (RAISE): a write command meeting a lock is
    # answered "error" and dropped, instead of queued.
    monkeypatch.setitem(errors.KIND_INFO, ErrorKind.BUSY,
                        dataclasses.replace(errors.KIND_INFO[ErrorKind.BUSY], action=RecoveryAction.RAISE))
    # (Any command under the lock answered 'error': since session 28, served_once_the_outage_is_over runs the command
    # line's flags set in half its locks, which moved this search; it first met a full queue's write under a lock
    # answered 'error' (fault 'busy'), where it must be rejected with the outage's fault.)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated \(faults: [^)]*locked[^)]*\): "
                                             r"('(claim|store)'|.*during locked).* answered 'error'"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_a_command_decorator_that_swallows_the_function(tmp_path, monkeypatch):
    # The decorator registers the command but hands back None: the application's module-level name is gone.
    def command(self, name, needs, help="", *, actor_param=None, validate=None):
        def decorate(fn):
            self.register(name, needs, fn, help or (fn.__doc__ or "").strip().split("\n")[0],
                          actor_param=actor_param, validate=validate)
        return decorate
    monkeypatch.setattr(CommandRegistry, "command", command)
    with pytest.raises(AssertionError, match=r"the command decorator returned None"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_names_in_registration_order(tmp_path, monkeypatch):
    # names() promises the registered names sorted; this one lists them in the order they were registered.
    monkeypatch.setattr(CommandRegistry, "names", lambda self: list(self._commands))
    with pytest.raises(AssertionError, match=r"names\(\) gave"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_a_help_that_keeps_the_whole_docstring(tmp_path, monkeypatch):
    # The decorator's help is the whole docstring, not its first line.
    def command(self, name, needs, help="", *, actor_param=None, validate=None):
        def decorate(fn):
            self.register(name, needs, fn, help or (fn.__doc__ or "").strip(), actor_param=actor_param,
                          validate=validate)
            return fn
        return decorate
    monkeypatch.setattr(CommandRegistry, "command", command)
    with pytest.raises(AssertionError, match=r"help 'Echo a word\.\\n"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_a_left_behind_queue_counted_by_its_lines(tmp_path, monkeypatch):
    # The reason naming an old write-queue file is always in the plural: health says "1 queued writes wait in ...".
    from reliability.degraded import places

    monkeypatch.setattr(places.LeftBehind, "reason", lambda self: (
        f"{self.waiting} queued writes wait in {self.path!r}, which this runtime does not read "
        f"({self.setting} is now {self.now!r})"))
    with pytest.raises(AssertionError, match=r"restarted with write_queue_path .*the health reasons are"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})


def test_it_bites_a_queued_answer_that_counts_only_itself(tmp_path, monkeypatch):
    # The "queued" answer says how many changes wait, counted before its own write was added.
    real = CommandRegistry._enqueue

    def enqueue(self, cmd, args, kwargs, key):
        result = real(self, cmd, args, kwargs, key)
        if result.status != "queued":
            return result
        n = result.pending - 1
        return dataclasses.replace(result, pending=n, message=result.message.replace(
            f"({result.pending} change{'s' if result.pending != 1 else ''} waiting)",
            f"({n} change{'s' if n != 1 else ''} waiting)"))
    monkeypatch.setattr(CommandRegistry, "_enqueue", enqueue)
    # (Called directly since session 26: a check added to refused_writes_are_set_aside moved the derandomized
    # search, which then met this defect first through another rule's check.)
    machine = started_machine("degradation_queue", tmp_path)
    with pytest.raises(AssertionError, match=r"queued in this outage \(the queue was empty before it\) says pending"):
        run_and_tear_down(machine,
                          lambda m: m.refused_writes_queued_during_a_lock(["new", "taken", "new"], 0, "replay"))


def test_it_bites_health_that_forgets_the_refused_writes(tmp_path, monkeypatch):
    # Health counts the writes set aside on replay only until the queue file is compacted: it says none were refused.
    real = CommandRegistry.health_extra

    def health_extra(self):
        extra, reasons = real(self)
        extra["write_queue"]["failed"] = 0
        return extra, [r for r in reasons if "refused on replay" not in r]
    monkeypatch.setattr(CommandRegistry, "health_extra", health_extra)
    with pytest.raises(AssertionError, match=r"write\(s\) set aside in all, none pending; health says"):
        run_machine(MACHINES["degradation_queue"], settings_=BITE, base_dir=str(tmp_path), enforce={14})
