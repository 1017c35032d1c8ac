"""The path guard: faults refuse files outside the temp dir and registered roots."""

from __future__ import annotations

import pytest

from pytest_dbfault.faults import (
    CorruptFault,
    DisconnectFault,
    FaultError,
    LockedFault,
    allow_root,
    check_path,
    forget_root,
    run_and_kill,
)
from pytest_dbfault.faults.safety import ALLOW_ANY_PATH_ENV, is_allowed

OUTSIDE = "/nonexistent-dbfault-root/app.db"


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(ALLOW_ANY_PATH_ENV, raising=False)


def test_a_path_outside_the_allowed_roots_is_refused_with_the_way_to_opt_in():
    with pytest.raises(FaultError) as exc:
        check_path(OUTSIDE, action="corrupt")
    message = str(exc.value)
    assert OUTSIDE in message and "allow_unsafe=True" in message and ALLOW_ANY_PATH_ENV in message


@pytest.mark.parametrize("make", [
    lambda: CorruptFault(OUTSIDE, part="header"),
    lambda: LockedFault(OUTSIDE),
    lambda: DisconnectFault(OUTSIDE, mode="delete"),
], ids=["corrupt", "locked", "disconnect"])
def test_every_file_touching_fault_refuses_before_acting(make):
    fault = make()
    with pytest.raises(FaultError, match="outside the allowed roots"):
        fault.inject()
    assert not fault.active


def test_the_crash_runner_refuses_too():
    with pytest.raises(FaultError, match="outside the allowed roots"):
        run_and_kill(OUTSIDE)


def test_files_under_tmp_path_are_allowed(tmp_path):
    assert check_path(tmp_path / "app.db", action="lock") == (tmp_path / "app.db").resolve()


def test_a_registered_root_is_allowed_until_forgotten():
    root = "/nonexistent-dbfault-root"
    allow_root(root)
    try:
        assert is_allowed(OUTSIDE)
    finally:
        forget_root(root)
    assert not is_allowed(OUTSIDE)


def test_the_environment_override_and_allow_unsafe_both_opt_in(monkeypatch):
    assert check_path(OUTSIDE, action="corrupt", allow_unsafe=True)
    monkeypatch.setenv(ALLOW_ANY_PATH_ENV, "1")
    assert is_allowed(OUTSIDE)
