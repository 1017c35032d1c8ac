"""Two checks of the errors-and-logging machine bite, each on a defect planted for the length of one test (the
passing run of the same machine, ``test_property_machine[errors_logging]`` in the main job, shows they do not fail
on the real runtime):

* ``retried_write_log_levels`` (P9): a write that meets a lock held by another connection logs each retried attempt
  at WARNING and only the failure its caller gets at ERROR: the levels tell an operator which errors were absorbed;
* the judge of each statement's operation record (P17): a failed statement's record names the kind of its error
  (``constraint``, ``schema``, ``busy`` …), which is what an operator counts failures by.

The defects are of the class of the planted bugs y09 and y17 of ``benchmarks/bug_finding.py``, written apart from
them (the error handler that drops the level it is given, the record that names the SQLite code instead of the
kind).
"""

from __future__ import annotations

import logging

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite

BITE = bite_settings(max_examples=30, steps=15)


def test_the_errors_logging_machine_bites_retries_logged_at_error(tmp_path, monkeypatch):
    # The error handler "always logs a database error as an error": the level its caller asks for (WARNING for an
    # attempt that will be retried) is dropped, so every absorbed retry reads as a failure.
    from reliability.errors import ErrorHandler

    real = ErrorHandler.log

    def log(self, err, *, level=logging.ERROR, **kw):
        return real(self, err, **kw)

    monkeypatch.setattr(ErrorHandler, "log", log)
    with pytest.raises(AssertionError, match=rf"{property_id(9)}.*a write that met a lock and retried [1-9]\d* "
                                             r"time\(s\) .*(each retried attempt must have one WARNING record|an "
                                             r"error absorbed by a retry is no ERROR record)"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={9})


def test_the_errors_logging_machine_bites_an_error_record_naming_the_sqlite_code(tmp_path, monkeypatch):
    # A failed statement's record names the SQLite code (SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR) instead of the
    # runtime's error kind.
    from reliability.observers import OperationRecords

    def failed(self, op, sql, err, seconds, attempts):
        if self.log is not None:
            self.log.record(op, sql, seconds, 0, attempts, "error", err.code_name or str(err.kind))

    monkeypatch.setattr(OperationRecords, "failed", failed)
    # (or the caller-error sweep's records first: it met the defect first on Python 3.10 once the sweep judged
    # error_name() there too, session 24)
    with pytest.raises(AssertionError, match=rf"{property_id(17)}.*(the operation record of a (execute|fetch_one|"
                                             r"fetch_all) that failed with a \w+ error says error_kind='SQLITE_|"
                                             r"made the operation records \[.*'error', 'SQLITE_)"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={17})
