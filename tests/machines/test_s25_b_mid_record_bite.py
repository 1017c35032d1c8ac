"""The commit-path machine's kill point ``mid_record``: the process dies between the two system calls that write a
journal record (the record appended, the file's high-water mark not yet moved to it), before COMMIT. The restarted
runtime must take that record for what it is, an orphan of a transaction that never committed (marked aborted at
startup, its sequence reused), so the journals still merge into exactly what the database committed, and recovery
after damage brings back the acknowledged writes only. Called directly (FULL: the record is written before COMMIT):
passes on the runtime, bites a startup that looks for orphans only when the high-water mark is past the database."""

from __future__ import annotations

import random

import pytest
from bite_settings import run_and_tear_down

from reliability import redo as redo_mod


def _machine(tmp_path, sync: str):
    from pytest_dbfault.machines import MACHINES, bind
    from pytest_dbfault.machines.base import CONFIG_SPACE

    machine = bind(MACHINES["commit_path"], None, base_dir=str(tmp_path))()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset(), sync)
    return machine


def _call(m) -> None:
    m.write(keys=["k0"], point="none")
    m.write(keys=["k1", "k2"], point="mid_record")  # killed, restarted on what the kill left
    m.journals_agree_with_the_database()
    m.damage_and_recover()


@pytest.mark.parametrize("sync", ["FULL", "EXTRA", "NORMAL"])
def test_passes_on_the_runtime(tmp_path, sync):
    run_and_tear_down(_machine(tmp_path, sync), _call)


def test_bites_a_startup_that_trusts_the_high_water_mark(tmp_path, monkeypatch):
    real = redo_mod._reconcile_fd

    def reconcile(fd, path, slot, committed, fsync, journals):
        state = redo_mod.read_journal(path)
        if (state.hwm or 0) <= committed.get(slot, 0):
            return []  # the defect: "the mark is not past the database, so nothing past it was written"
        return real(fd, path, slot, committed, fsync, journals)

    monkeypatch.setattr(redo_mod, "_reconcile_fd", reconcile)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated \(faults: after:kill\)"):
        run_and_tear_down(_machine(tmp_path, "FULL"), _call)
