"""The audit machine's sweep of invalid ``db.audit.record`` arguments (issue #14, s22) bites, its rule called
directly on a fresh machine (fixed arguments: no dependence on the Hypothesis search order of the class), first on
the real runtime (it must pass), then with a defect planted for the length of the call.

``record_an_invalid_entry`` (P15) tries every kind of invalid argument the validator refuses (names, targets, details
JSON cannot hold or UTF-8 cannot encode): each must raise ``ValueError('invalid audit entry: ...')`` naming the
argument at fault, and the log must be as it was (same stored entries, fallback files untouched, verify() unchanged).

The defects are of the class of the mutant that showed the gap (``audit.py:409``, the details' problem dropped by
the validator), written apart from it: details canonicalised as ASCII JSON (a lone surrogate then passes the
validator as an escape and is stored), and a validator that only asks whether the details are a dict.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite


def run_rule(base: Path, plant_bug: Any = None) -> str:
    """``record_an_invalid_entry`` (then the audit invariant) on a fresh audit machine: the first line of the
    violation it raises, '' when none. The machine is torn down."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["audit"], None, base_dir=str(base))()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:locked"}))
    try:
        machine.record_entry(0)
        if plant_bug:
            plant_bug()
        machine.record_an_invalid_entry("an empty actor")
        machine.p15_audit_retry()
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def bites(plant_bug: Any, says: str, base: Path) -> None:
    assert run_rule(base / "good") == ""
    found = run_rule(base / "broken", plant_bug)
    assert property_id(15) in found and says in found, found


def test_details_canonicalised_as_ascii_json(tmp_path, monkeypatch):
    from reliability import audit

    def ascii_details(details):
        return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    bites(lambda: monkeypatch.setattr(audit, "_canonical_details", ascii_details),
          "details with a lone surrogate in a key: stored as", tmp_path)


def test_a_validator_that_only_asks_for_a_dict(tmp_path, monkeypatch):
    from reliability import audit

    real = audit.AuditLogger.new_entry

    def new_entry(actor, action, target="", details=None):
        if isinstance(details, dict):  # "a dict is valid details": the JSON check left to the INSERT
            return dataclasses.replace(real(actor, action, target, {}), details=dict(details))
        return real(actor, action, target, details)

    bites(lambda: monkeypatch.setattr(audit.AuditLogger, "new_entry", staticmethod(new_entry)),
          "details holding a set: TypeError(", tmp_path)
