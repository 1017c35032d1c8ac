"""The config machine's rule ``operation_log_forms``: the operation log file holds one record per statement with every
field, in the JSON form and in the ``key=value`` text form alike. Called with fixed arguments on a fresh machine, it
fails against a runtime with one realistic defect of the text form (or of both), and passes on the runtime."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.oplog import OperationLog

EVERY_OP = ["insert", "many", "one", "none", "all", "refused"]


def run_rule(base: Path, json_first: bool, ops: list[str], many: int = 2, slow_at: int = 5) -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["config"], None, base_dir=str(base), enforce={17})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:locked"}))
    try:
        machine.operation_log_forms(json_first, ops, many, slow_at)
    finally:
        machine.teardown()


@pytest.mark.parametrize("json_first", [True, False])
@pytest.mark.parametrize(("ops", "slow_at"), [(EVERY_OP, 3), (["refused"], 0), (["none", "many"], 5), ([], 0)])
def test_the_rule_passes_on_the_runtime(tmp_path, json_first, ops, slow_at):
    run_rule(tmp_path, json_first, ops, 0 if ops == ["none", "many"] else 2, slow_at)


def test_it_bites_a_text_form_without_the_rows(tmp_path, monkeypatch):
    # The text line written from an older field list: no rows (the JSON form has them).
    def text_line(self, rec):
        ts, op, sql, duration, rows, attempts, outcome, error_kind = rec
        return (f"ts={ts:.6f} operation_id={self._next_id()} kind={op} duration_ms={duration * 1000.0:.4f} "
                f"attempts={attempts} outcome={outcome} error_kind={error_kind or '-'} sql={self._quoted_sql(sql)}\n")

    monkeypatch.setattr(OperationLog, "_text_line", text_line)
    with pytest.raises(AssertionError, match=r"operation log in text .*record 1 reads 'ts=.*expected the fields"):
        run_rule(tmp_path, False, ["insert"])


def test_it_bites_a_text_form_with_the_duration_in_seconds(tmp_path, monkeypatch):
    # duration_ms written as the seconds measured, in the text form only (three orders too small).
    def text_line(self, rec):
        ts, op, sql, duration, rows, attempts, outcome, error_kind = rec
        return (f"ts={ts:.6f} operation_id={self._next_id()} kind={op} duration_ms={duration:.4f} "
                f"rows={rows} attempts={attempts} outcome={outcome} error_kind={error_kind or '-'} "
                f"sql={self._quoted_sql(sql)}\n")

    monkeypatch.setattr(OperationLog, "_text_line", text_line)
    with pytest.raises(AssertionError, match=r"operation log in text .*record 3 reads .*WITH RECURSIVE"):
        run_rule(tmp_path, True, [], slow_at=0)


def test_it_bites_a_text_form_that_drops_the_error_kind(tmp_path, monkeypatch):
    # The text form writes the outcome only: a refused statement's kind of error is lost.
    real = OperationLog._text_line

    def text_line(self, rec):
        return real(self, (*rec[:-1], None))

    monkeypatch.setattr(OperationLog, "_text_line", text_line)
    with pytest.raises(AssertionError, match=r"operation log in text .*'error_kind': 'constraint'"):
        run_rule(tmp_path, False, ["insert", "refused"])


def test_it_bites_an_operation_log_that_loses_the_buffer_at_close(tmp_path, monkeypatch):
    # close() stops the flusher without writing what is still buffered (both forms).
    def close(self):
        self.closed = True
        self._stop.set()

    monkeypatch.setattr(OperationLog, "close", close)
    with pytest.raises(AssertionError, match=r"one record per statement was expected"):
        run_rule(tmp_path, False, ["insert", "all"])
