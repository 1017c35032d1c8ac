"""The degradation machine's ``set_flag`` asks the public authorization question as well (P14, authorization).

``admin.is_authorized(db, actor, command)`` is what an application asks before an admin action of its own; it must
answer as the commands decide. Session 29's mutant sample found that a runtime whose ``is_authorized`` says yes to an
*invalid* actor name (too long, empty, not text) went unseen: every command validates the name first, so only the
public question showed it. Called directly: passes on the runtime; bites a runtime that authorizes invalid names.
"""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.degraded import commands as commands_module
from reliability.names import validate_actor


def machine(tmp_path):
    return started_machine("degradation_queue", tmp_path, frozenset({"commands", "outage", "fault:locked"}))


@pytest.mark.parametrize("allowed,n", [(True, 3), (True, 0), (False, 1), (False, 3)])
def test_passes_on_the_runtime(tmp_path, allowed, n):
    run_and_tear_down(machine(tmp_path), lambda m: m.set_flag(allowed, n, 4, "api", False))


@pytest.mark.parametrize("allowed,n", [(False, 3), (True, 0), (False, 1)])  # (asked on every call, whoever acts)
def test_bites_an_invalid_actor_name_that_is_an_administrator(tmp_path, monkeypatch, allowed, n):
    real = commands_module.CommandRegistry.is_authorized

    def is_authorized(self, actor, command):
        return True if validate_actor(actor) is not None else real(self, actor, command)

    monkeypatch.setattr(commands_module.CommandRegistry, "is_authorized", is_authorized)
    with pytest.raises(AssertionError, match=r"p14_command_continuity violated.*admin\.is_authorized\(an actor name "
                                             r"of 201 characters, 'flags.set'\) answered True"):
        run_and_tear_down(machine(tmp_path), lambda m: m.set_flag(allowed, n, 4, "registry", False))
