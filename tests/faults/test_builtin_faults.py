"""The engine-level faults are registered by name and exported from pytest_dbfault.faults."""

from __future__ import annotations

import pytest_dbfault.faults as faults
from pytest_dbfault.faults import LockedFault, fault_names, get_fault_class, make_fault

ENGINE_FAULTS = {
    "busy_commit": faults.BusyCommitFault,
    "busy_snapshot": faults.BusySnapshotFault,
    "corrupt": faults.CorruptFault,
    "crash": faults.CrashFault,
    "disconnect": faults.DisconnectFault,
    "disk_full": faults.DiskFullFault,
    "locked": faults.LockedFault,
}


def test_every_engine_fault_is_registered_under_its_name():
    assert set(ENGINE_FAULTS) <= set(fault_names())
    for name, cls in ENGINE_FAULTS.items():
        assert get_fault_class(name) is cls and cls.name == name


def test_make_fault_builds_a_working_fault_from_its_name(make_db):
    fault = make_fault("locked", make_db(), mode="write")
    assert isinstance(fault, LockedFault)
    with fault:
        assert fault.describe()["active"] is True
    assert fault.describe()["records"][0]["detail"]["mode"] == "write"


def test_the_public_names_are_exported_sorted():
    assert faults.__all__ == sorted(faults.__all__)
    assert all(hasattr(faults, name) for name in faults.__all__)
