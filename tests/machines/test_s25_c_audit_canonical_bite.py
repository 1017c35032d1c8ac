"""The audit machine's rule ``record_entry`` judges the stored form of an entry's details (module docstring of
``reliability.audit``: the chain covers the *canonical* JSON of the details): the same object as given, its keys in
sorted order whatever order the caller's dict lists them in (session 25 surviving mutant ``audit.py:164``,
``sort_keys`` turned off in the canonical form). Called directly on a fresh machine: it passes on the runtime, and
fails against a runtime whose canonical form keeps the caller's key order."""

from __future__ import annotations

import json

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import audit as audit_module


def run_rule(tmp_path, times: int) -> None:
    machine = started_machine("audit", tmp_path, frozenset({"audit", "fault:locked"}))

    def call(m):
        for _ in range(times):
            m.record_entry(4)
        m.p15_audit_retry()

    run_and_tear_down(machine, call)


@pytest.mark.parametrize("times", [1, 3])
def test_the_rule_passes_on_the_runtime(tmp_path, times):
    run_rule(tmp_path, times)


def test_it_bites_details_stored_in_the_callers_order(tmp_path, monkeypatch):
    monkeypatch.setattr(audit_module, "_canonical_details", lambda details: json.dumps(
        details, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    with pytest.raises(AssertionError, match=r"p15_\w+ violated .*not the canonical form"):
        run_rule(tmp_path, 1)
