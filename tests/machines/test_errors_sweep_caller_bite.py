"""The caller-error sweep of the errors-and-logging machine (``caller_error_sweep``) bites, each check on a defect
planted for the length of one test (the passing run of the same machine, ``test_property_machine[errors_logging]``
in the main job, shows they do not fail on the real runtime). The sweep runs every error a user meets with a sound
database (a missing table or column, an INSERT naming a column the table lacks, a syntax error, a UNIQUE / NOT NULL
/ CHECK / FOREIGN KEY violation, a datatype mismatch, the wrong number of parameters …) through a drawn entry point
and judges it against the driver's own exception for the same statement on a plain connection:

* P8: the classifier forgets one family of SQLite's messages (syntax errors): they surface as ``unknown``;
* P9: the ERROR record's traceback holds the frames only, not the driver's exception it should end with;
* P10: an error raised inside a transaction is counted again when the transaction ends;
* P17: a failed transaction's operation record names no error kind; and (the per-call check of every read the
  workload makes) a ``fetch_all``'s record says 1 row for any rows returned.

The defects are of the class of the planted bugs w08, w09, w10 and w17 of ``benchmarks/bug_finding.py``, written
apart from them.
"""

from __future__ import annotations

import traceback
import types

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite

BITE = bite_settings(max_examples=20, steps=10)


def test_the_sweep_bites_a_classifier_that_forgets_syntax_errors(tmp_path, monkeypatch):
    # The SQL-mistake patterns lost the syntax-error alternatives (a refactor split the regex and dropped a part):
    # 'near ")": syntax error' is SQLITE_ERROR with no pattern, so unknown with the generic message.
    import re

    from reliability import errors

    kept = [(re.compile(p.pattern.replace('|^near \\"|syntax error', ""), re.I), k) for p, k in errors._BY_MESSAGE]
    assert kept != errors._BY_MESSAGE
    monkeypatch.setattr(errors, "_BY_MESSAGE", kept)
    with pytest.raises(AssertionError, match=rf"{property_id(8)}.*classify\(\) of the driver's OperationalError\("
                                             r".*syntax error\) says unknown .*a syntax_error is a schema error"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={8})


def test_the_sweep_bites_a_traceback_without_the_exception(tmp_path, monkeypatch):
    # The record's traceback made with format_tb: the frames, without the driver's exception type and text.
    from reliability import errors

    shim = types.SimpleNamespace(format_exception=lambda etype, value, tb: traceback.format_tb(tb))
    monkeypatch.setattr(errors, "traceback", shim)
    with pytest.raises(AssertionError, match=rf"{property_id(9)}.*the ERROR record of the \w+ .* has a db_traceback "
                                             r"ending .*: it must end with the driver's exception"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={9})


def test_the_sweep_bites_a_transaction_error_counted_twice(tmp_path, monkeypatch):
    # count_errors without its dedupe: a statement's error carried out of the transaction is counted at the
    # statement and again as the transaction's.
    from reliability.executor import Executor

    def count_errors(self, final):
        with self.lock:
            pending, self.tx_errors = self.tx_errors, []
        for err in pending + ([final] if final is not None else []):
            self.monitor.observe_error(str(err.kind), err.detail)

    monkeypatch.setattr(Executor, "count_errors", count_errors)
    with pytest.raises(AssertionError, match=rf"{property_id(10)}.* through (executemany|transaction|command|"
                                             r"run_in_transaction) failed once as \w+: health\(\).errors changed by "
                                             r"\{'\w+': 2\}"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={10})


def test_the_sweep_bites_a_failed_transaction_record_without_its_kind(tmp_path, monkeypatch):
    # A failed transaction is recorded as an error of no kind (only a statement's record names its error's kind).
    from reliability.observers import OperationRecords

    def failed(self, op, sql, err, seconds, attempts):
        if self.log is not None:
            self.log.record(op, sql, seconds, 0, attempts, "error", None if op == "transaction" else str(err.kind))

    monkeypatch.setattr(OperationRecords, "failed", failed)
    with pytest.raises(AssertionError, match=rf"{property_id(17)}.* through (executemany|transaction|command|"
                                             r"run_in_transaction) made the operation records .*; expected .*"
                                             r"\('transaction', None, 'error', '\w+'\)"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={17})



def test_every_read_record_counts_the_rows_returned(tmp_path, monkeypatch):
    # A fetch_all's record says whether rows came back (1) rather than how many (a truthiness slip).
    from reliability.observers import OperationRecords

    real = OperationRecords.succeeded

    def succeeded(self, op, sql, seconds, rows, attempts):
        return real(self, op, sql, seconds, int(bool(rows)) if op == "fetch_all" else rows, attempts)

    monkeypatch.setattr(OperationRecords, "succeeded", succeeded)
    with pytest.raises(AssertionError, match=rf"{property_id(17)}.*the operation record of a fetch_all that returned "
                                             r"\d+ row\(s\) says rows=1"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={17})
