"""The errors-logging machine's sweep (``sweep_one``, run by ``caller_error_sweep``) judges the SQLite code name the
runtime gives a driver error (``reliability.errors.error_name``): the driver's own name (the extended one, Python >=
3.11), else the primary name SQLite's message gives (3.10), never the number. Called with fixed arguments on a fresh
machine, it passes on the runtime and fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import errors as errors_module

MACHINE = MACHINES["errors_logging"]
#: constraint situations: each has a code and a name on every build
SITUATIONS = ("unique", "not_null", "check", "datatype_mismatch")


def run_sweep(base: Path, situations: tuple[str, ...] = SITUATIONS) -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINE, None, base_dir=str(base), enforce={8, 9})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset())
    try:
        for sql in (machine.SWEEP_TABLE, "INSERT OR IGNORE INTO errsweep (k, n) VALUES (?, 1)"):
            assert machine.call("execute", machine.db.execute, sql, (machine.SWEEP_TAKEN,) if "?" in sql else ()).ok
        for i, situation in enumerate(situations):
            write_sql = machine.SWEEP[situation][2]
            assert machine.sweep_one(situation, "execute", write_sql, f"bite_{i}", False)
    finally:
        machine.teardown()


def test_the_sweep_passes_on_the_runtime(tmp_path):
    run_sweep(tmp_path)


def test_it_bites_an_error_name_that_gives_the_code(tmp_path, monkeypatch):
    # The (code, name) pair read at the wrong index: the number where the name belongs.
    monkeypatch.setattr(errors_module, "error_name", lambda exc: errors_module.sqlite_code(exc)[0])
    with pytest.raises(AssertionError, match=r"p09_technical_logging violated .*error_name\(\) of the driver's "
                                             r"IntegrityError.* says \d+"):
        run_sweep(tmp_path, ("unique",))

