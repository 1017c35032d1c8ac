"""The health machines' P10 invariant (``p10_health_monitoring``, its ``check_latency``) holds ``db.health()`` to its
own shape: "a status, the reasons for it" (reliability/health.py), so a status other than healthy comes with a reason.
The one situation where the only reason is the connection check's (the database file moved away or deleted under the
open connection: state ``connected``, the check finds ``readonly_dbmoved``) is reached in the main job only when a
draw leaves that fault in force at an invariant; here it is pinned with direct calls: the invariant passes on the
runtime and fails against a health report that keeps the status but drops the connection check's reason (session 26,
helper E: the surviving mutant manager.py:559 drop-call)."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import manager as manager_module

KINDS = ("disconnect_rename", "disconnect_delete")


def with_the_file_away(kind: str) -> Any:
    def call(machine: Any) -> None:
        machine.put(1)
        assert machine.inject(kind, 0), f"{kind} could not be injected"
        report = machine.db.health()
        assert str(report.status) != "healthy" and report.connection_state == "connected", report
        machine.p10_health_monitoring()
        machine.heal_all()
        machine.p10_health_monitoring()
    return call


def plant_health(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    fn = manager_module.DatabaseManager.health
    source = textwrap.dedent(inspect.getsource(fn))
    assert source.count(old) == 1, f"the planted bug's site occurs {source.count(old)} times"
    namespace: dict[str, Any] = {}
    code = compile(source.replace(old, new), inspect.getsourcefile(fn) or "health", "exec",
                   flags=annotations.compiler_flag, dont_inherit=True)
    exec(code, fn.__globals__, namespace)
    monkeypatch.setattr(manager_module.DatabaseManager, "health", namespace["health"])


@pytest.mark.parametrize("kind", KINDS)
def test_the_invariant_passes_with_the_file_away(tmp_path, kind):
    run_and_tear_down(started_machine("health_integrity", tmp_path, frozenset({f"fault:{kind}"})),
                      with_the_file_away(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_it_bites_a_status_without_its_reason(tmp_path, monkeypatch, kind):
    plant_health(monkeypatch, 'reasons.append(f"connection check found: {problem}"',
                 'str(f"connection check found: {problem}"')  # (the reason made, then dropped)
    with pytest.raises(AssertionError, match=r"p10_health_monitoring violated .*health status 'unavailable' with "
                                             r"reasons \[\]"):
        run_and_tear_down(started_machine("health_integrity", tmp_path, frozenset({f"fault:{kind}"})),
                          with_the_file_away(kind))
