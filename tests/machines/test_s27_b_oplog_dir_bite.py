"""The config machine's rule ``operation_log_forms`` names the file of its second form in a directory that does not
exist yet (session 27 surviving mutant ``oplog.py:146``, the operation log's ``mkdir`` dropped): the runtime makes
that directory, as it makes those of its other files, and every statement's record is in the file.

The rule is called directly with chosen arguments (no Hypothesis search order involved), once against the real
runtime (it passes) and once against a runtime whose operation log opens its file without making the directory
(it fails: the manager does not start)."""

from __future__ import annotations

import os

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import files
from reliability.oplog import OperationLog


def forms(tmp_path, json_first: bool, ops: list[str]) -> None:
    machine = started_machine("config", tmp_path, frozenset({"fault:locked"}))
    run_and_tear_down(machine, lambda m: m.operation_log_forms(json_first, ops, 1, 0))


@pytest.mark.parametrize("json_first", [True, False])
def test_the_real_runtime_makes_the_operation_log_directory(tmp_path, json_first):
    forms(tmp_path, json_first, ["insert", "all"])


@pytest.mark.parametrize("json_first", [True, False])
def test_it_bites_an_operation_log_that_does_not_make_its_directory(tmp_path, monkeypatch, json_first):
    # The file is opened where it is named; a directory that is not there yet is not made.
    def _open(self):
        fd = files.open_private(self.path, what="operation log (operation_log_path)")
        return os.fdopen(fd, "a", encoding="utf-8")

    monkeypatch.setattr(OperationLog, "_open", _open)
    with pytest.raises(AssertionError, match=r"in a directory not made yet.*did not start"):
        forms(tmp_path, json_first, ["insert", "all"])
