"""The degradation machine's ``set_flag`` with the application's permission callback (P14, authorization).

``admin.register(db, permission=fn)``: an actor not in ``RELIABILITY_ADMIN_ACTORS`` is authorized when the
application's ``fn(actor, command)`` says so, and only then (reliability/admin.py, README "admin_actors"). The main
job never registered a callback (session 28's coverage: ``CommandRegistry.is_authorized`` never consulted one), so a
runtime that ignored the callback's answer, or never installed it, was invisible. Called directly, every entry
point: passes on the runtime; bites a runtime that allows any actor once a callback is given, and one that drops
the callback.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import admin
from reliability.degraded import commands as commands_module

VIAS = ["api", "registry", "run_as"]


def machine(tmp_path):
    return started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("allowed,n", [(True, 3), (False, 3), (True, 0), (False, 1), (False, 2)])
def test_passes_on_the_runtime(tmp_path, via, allowed, n):
    run_and_tear_down(machine(tmp_path), lambda m: m.set_flag(allowed, n, 4, via, True))


@pytest.mark.parametrize("via", VIAS)
def test_bites_a_callback_whose_no_is_not_heard(tmp_path, monkeypatch, via):
    def widened(self, actor, command):
        return self.permission is not None or actor in self.app.config.admin_actor_set

    monkeypatch.setattr(commands_module.CommandRegistry, "is_authorized", widened)
    with pytest.raises(AssertionError, match="p14_command_continuity violated.*no administrator, answered 'ok'"):
        run_and_tear_down(machine(tmp_path), lambda m: m.set_flag(False, 1, 4, via, False))


@pytest.mark.parametrize("via", VIAS)
def test_bites_a_callback_never_installed(tmp_path, monkeypatch, via):
    real_register = admin.register
    monkeypatch.setattr(admin, "register", lambda db, permission=None: real_register(db))
    with pytest.raises(AssertionError, match="p14_command_continuity violated.*'delegate-3', an administrator, "
                                             "answered 'denied'"):
        run_and_tear_down(machine(tmp_path), lambda m: m.set_flag(True, 3, 4, via, False))



@pytest.mark.parametrize("via", VIAS)
def test_bites_an_invalid_actor_name_answered_as_a_plain_denial(tmp_path, monkeypatch, via):
    """An actor name longer than an actor may have is refused as ``rejected`` (bad input), its name stored nowhere; a
    runtime that answers it ``denied`` tells the caller the name is valid and merely not allowed."""
    real = commands_module.CommandRegistry.authorize

    def authorize(self, cmd, args, kwargs):
        out = real(self, cmd, args, kwargs)
        return out if out is None or out.status != "rejected" else commands_module.CommandResult("denied", out.message)

    monkeypatch.setattr(commands_module.CommandRegistry, "authorize", authorize)
    with pytest.raises(AssertionError, match="p14_command_continuity violated.*actor name of 201 characters"):
        run_and_tear_down(machine(tmp_path), lambda m: m.set_flag(False, 3, 4, via, False))


@pytest.mark.parametrize("fault", ["disconnect_delete", "disconnect_rename", "locked"])
def test_an_invalid_actor_name_under_a_fault_passes(tmp_path, fault):
    """Under an outage the refusal is judged, the audit log (which may not be readable) is not."""
    def call(m) -> None:
        assert m.inject(fault, 0)
        try:
            m.set_flag(False, 3, 0, "api", False)
        finally:
            m.heal(fault)
    run_and_tear_down(machine(tmp_path), call)
