"""Two checks of the errors-and-logging machine bite, each on a defect planted for the length of one test (the
passing run of the same machine, ``test_property_machine[errors_logging]`` in the main job, shows they do not fail
on the real runtime):

* ``failed_command_messages`` (P8): a command that fails on the database (a report of a table or column that does
  not exist, an import of a duplicate key) answers with the user message of its error's kind, never the driver's
  text;
* ``write_rows_are_counted`` (P17): a write's operation record counts the rows it changed (a multi-row ``INSERT``,
  an ``UPDATE`` and ``DELETE`` of several rows), as the caller's cursor does.

The defects are of the class of the planted bugs z08 and z17 of ``benchmarks/bug_finding.py``, written apart from
them (a command result that appends the reason of the error to its message; a record that counts one row per
statement).
"""

from __future__ import annotations

import sys

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite

BITE = bite_settings(max_examples=30, steps=15)


def test_the_errors_logging_machine_bites_a_command_error_carrying_the_driver_text(tmp_path, monkeypatch):
    # "Helpful" command errors: the reason of the database error (the driver's text: "no such table: …",
    # "UNIQUE constraint failed: kv.k") is appended to the user message of every failed command, read or write.
    from reliability.degraded import commands

    real = commands.CommandResult

    def result(status, message, *args, **kwargs):
        reason = sys.exc_info()[1]
        if status == "error" and reason is not None:
            message = f"{message} (reason: {getattr(reason, 'detail', reason)})"
        return real(status, message, *args, **kwargs)

    monkeypatch.setattr(commands, "CommandResult", result)
    # (Found first by the caller-error sweep's command entry, or by the report/import rule.)
    with pytest.raises(AssertionError, match=rf"{property_id(8)}.*(the (report reading|import of) .* failed \(error, "
                                             r"(schema|constraint)\) with the message .*reason: .*a failed command's "
                                             r"message is the user message of its kind|through command failed with the "
                                             r"user message .*\(reason: )"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={8})


def test_the_errors_logging_machine_bites_a_write_record_counting_statements_not_rows(tmp_path, monkeypatch):
    # The record of a db.execute says 1 row (one statement ran) instead of the rows the statement changed.
    from reliability.observers import OperationRecords

    real = OperationRecords.succeeded

    def succeeded(self, op, sql, seconds, rows, attempts):
        return real(self, op, sql, seconds, 1 if op == "execute" else rows, attempts)

    monkeypatch.setattr(OperationRecords, "succeeded", succeeded)
    with pytest.raises(AssertionError, match=rf"{property_id(17)}.*an (INSERT|UPDATE|DELETE) of \d+ row.* "
                                             r"through db.execute changed \d+ row\(s\) .*: rows must be \d+"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={17})
