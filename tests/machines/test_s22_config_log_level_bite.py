"""The config machine's rule ``log_level_threshold`` (README: ``log_level`` is for
``reliability.oplog.configure_logging(config)``, and the runtime never changes the application's logging set-up).
Called with fixed arguments on a fresh machine, each check fails against a runtime with one realistic defect of the
logging threshold, and passes on the runtime."""

from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import manager as manager_module
from reliability import oplog as oplog_module

MACHINE = MACHINES["config"]


def run_rule(base: Path, cases: list[tuple[tuple[str, int], bool, bool]]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINE, None, base_dir=str(base), enforce={9, 17})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:locked"}))
    try:
        for level, as_json, refused in cases:
            machine.log_level_threshold(level, as_json, refused)
    finally:
        machine.teardown()


def test_the_rule_passes_on_the_runtime(tmp_path):
    run_rule(tmp_path, list(itertools.product(MACHINE.LOG_LEVELS, (True, False), (True, False))))


def test_it_bites_a_threshold_fixed_at_info(tmp_path, monkeypatch):
    # configure_logging sets INFO whatever the setting says ("the operation log needs INFO").
    real = oplog_module.configure_logging

    def configure_logging(config, stream=None):
        handler = real(config, stream)
        logging.getLogger("reliability").setLevel(logging.INFO)
        return handler

    monkeypatch.setattr(oplog_module, "configure_logging", configure_logging)
    with pytest.raises(AssertionError, match=r"log_level='ERROR'.*records below the threshold"):
        run_rule(tmp_path, [(("ERROR", logging.ERROR), False, True)])


def test_it_bites_a_manager_that_applies_log_level_itself(tmp_path, monkeypatch):
    # The manager applies its configuration's log_level to the 'reliability' logger when it starts.
    real = manager_module.DatabaseManager.__init__

    def init(self, config=None, *args, **kwargs):
        real(self, config, *args, **kwargs)
        logging.getLogger("reliability").setLevel(self.config.log_level.upper())

    monkeypatch.setattr(manager_module.DatabaseManager, "__init__", init)
    with pytest.raises(AssertionError, match=r"changed the application's logging set-up"):
        run_rule(tmp_path, [(("Warning", logging.WARNING), True, False)])


def test_it_bites_an_operation_log_installed_when_warnings_are_enabled(tmp_path, monkeypatch):
    # "Errors are logged at WARNING": the operation log without a file installed when the logger takes WARNING,
    # so with the threshold at WARNING it logs the refused statements though INFO is off (the README: not installed).
    def from_config(cls, config, **kwargs):
        if not config.operation_log:
            return None
        path = config.operation_log_path or None
        if path is None and not (kwargs.get("logger") or oplog_module.oplog_logger).isEnabledFor(logging.WARNING):
            return None
        return cls(path, json_lines=config.log_json, **kwargs)

    monkeypatch.setattr(oplog_module.OperationLog, "from_config", classmethod(from_config))
    with pytest.raises(AssertionError, match=r"1 refused-insert operation record\(s\) \(WARNING\).*"
                                             r"expected \(0, 0, 1\)"):
        run_rule(tmp_path, [(("warning", logging.WARNING), False, True)])
