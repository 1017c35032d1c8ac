"""The errors-and-logging machine's checks of issue #14 (s22) bite, each rule called directly on a fresh machine
(fixed arguments: no dependence on the Hypothesis search order of the class), first on the real runtime (it must
pass), then with a defect planted for the length of the call:

* ``retried_write_log_levels`` (P9): the ERROR record of a write that met a lock outlasting the retries says, field
  by field, what happened (the tries made, the seconds it took, the caller's error, the SQL, the parameters
  redacted);
* ``maintenance_is_logged`` through ``read_rows_are_counted`` (no fault) and ``retried_write_log_levels`` (under
  the lock) (P17): a backup / integrity check / schema validation makes exactly one operation record of its kind,
  ``ok`` when it returned, ``error`` naming its error's kind when it failed.

The defects are written apart from the mutants that showed the gaps (``executor.py:411``, ``durability/parts.py:142``)
but of their class: a record field in the wrong unit, a record of a successful or failed maintenance left out.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite


def run_rule(rule: str, args: tuple[Any, ...], base: Path, config: dict[str, Any], plant_bug: Any = None) -> str:
    """``rule(*args)`` on a fresh errors-and-logging machine (then its invariants): the first line of the violation
    it raises, '' when none. The machine is torn down."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["errors_logging"], None, base_dir=str(base))()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()} | config, frozenset({"fault:locked"}))
    try:
        if plant_bug:
            plant_bug()
        getattr(machine, rule)(*args)
        machine.p17_operation_logging()
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def bites(rule: str, args: tuple[Any, ...], config: dict[str, Any], plant_bug: Any, prop: int, says: str,
          base: Path) -> None:
    """The rule passes on the real runtime and fails naming P<prop> and ``says`` with the bug planted."""
    assert run_rule(rule, args, base / "good", config) == ""
    found = run_rule(rule, args, base / "broken", config, plant_bug)
    assert found.startswith(f"AssertionError: {property_id(prop)}") or property_id(prop) in found, found
    assert says in found, found


#: a lock outlasting the retries: 2 attempts (1 backoff sleep), the lock healed only after 5 sleeps
LOCKED = {"retry_attempts": 2, "journal_mode": "DELETE"}


def test_an_error_record_giving_its_elapsed_time_in_milliseconds(tmp_path, monkeypatch):
    from reliability.errors import ErrorHandler

    real = ErrorHandler.log

    def log(self, err, **kwargs):
        kwargs["elapsed"] = kwargs.get("elapsed", 0.0) * 1000.0  # "elapsed" in ms, the message's %.3fs aside
        return real(self, err, **kwargs)

    bites("retried_write_log_levels", (5, 0, 1), LOCKED, lambda: monkeypatch.setattr(ErrorHandler, "log", log),
          9, "the ERROR record of a write that failed as busy after 2 attempt(s)", tmp_path)


def test_an_error_record_showing_the_parameters(tmp_path, monkeypatch):
    from reliability import errors

    bites("retried_write_log_levels", (5, 0, 1), LOCKED,
          lambda: monkeypatch.setattr(errors, "redact", lambda params, show=False: params),
          9, "the ERROR record of a write that failed as busy", tmp_path)


def test_a_successful_maintenance_left_out_of_the_operation_log(tmp_path, monkeypatch):
    # Only statements are logged: a record without SQL text (a maintenance operation) is skipped when it succeeded.
    from reliability.observers import OperationRecords

    real = OperationRecords.succeeded

    def succeeded(self, op, sql, seconds, rows, attempts):
        if sql is None and op != "transaction":
            return None
        return real(self, op, sql, seconds, rows, attempts)

    for columns, count, kind in ((4, 0, "backup"), (1, 0, "check"), (1, 1, "check"), (1, 2, "schema_check")):
        bites("read_rows_are_counted", (columns, count), {},
              lambda: monkeypatch.setattr(OperationRecords, "succeeded", succeeded), 17,
              f"made the operation records []: exactly one {kind!r} record, outcome ok", tmp_path / f"{columns}{count}")
        monkeypatch.undo()


def test_a_failed_maintenance_left_out_of_the_operation_log(tmp_path, monkeypatch):
    # The failure of a maintenance operation under a lock is logged as an error record of another kind.
    from reliability.observers import OperationRecords

    real = OperationRecords.failed

    def failed(self, op, sql, err, seconds, attempts):
        return real(self, "execute" if sql is None and op != "transaction" else op, sql, err, seconds, attempts)

    bites("retried_write_log_levels", (5, 1, 0), LOCKED,
          lambda: monkeypatch.setattr(OperationRecords, "failed", failed), 17,
          "a check (db.check_integrity(False,)) that failed as busy", tmp_path)
