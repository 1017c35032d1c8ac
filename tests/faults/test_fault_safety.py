"""The path guard: faults refuse files outside the session's basetemp, the configured roots and registered roots."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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


# -- the session's basetemp is the default root (#15 item 15) -----------------------------------------------
def test_in_a_session_only_the_basetemp_is_allowed_not_the_whole_system_temp_dir(tmp_path):
    import tempfile

    from pytest_dbfault.faults import safety

    assert safety.in_pytest_session()
    assert is_allowed(tmp_path / "app.db")
    elsewhere = Path(tempfile.mkdtemp(prefix="another-app-"))  # another program's files in /tmp
    try:
        with pytest.raises(FaultError) as exc:
            check_path(elsewhere / "app.db", action="corrupt")
        message = str(exc.value)
        assert "--dbfault-allow-root" in message and "dbfault_allowed_roots" in message
    finally:
        elsewhere.rmdir()


_VICTIM_TEST = """
    import sqlite3, pytest
    from pytest_dbfault.faults import CorruptFault, DisconnectFault, FaultError

    VICTIM = {victim!r}

    @pytest.mark.parametrize("make", [lambda: CorruptFault(VICTIM, part="header"),
                                      lambda: DisconnectFault(VICTIM, mode="delete")], ids=["corrupt", "disconnect"])
    def test_fault_on_another_programs_database(make):
        fault = make()
        fault.inject()
        fault.heal()
"""


def _other_programs_db(tmp_dir: Path) -> tuple[Path, bytes]:
    victim = tmp_dir / "app.db"
    conn = sqlite3.connect(victim)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('precious')")
    conn.commit()
    conn.close()
    return victim, victim.read_bytes()


@pytest.fixture
def outside_basetemp():
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="another-app-"))
    yield folder
    shutil.rmtree(folder)


def test_faults_refuse_another_programs_database_in_the_temp_dir(pytester, outside_basetemp):
    victim, before = _other_programs_db(outside_basetemp)
    pytester.makepyfile(_VICTIM_TEST.format(victim=str(victim)))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*FaultError: refusing to corrupt*--dbfault-allow-root*",
                                 "*FaultError: refusing to delete*dbfault_allowed_roots*"])
    assert victim.read_bytes() == before


@pytest.mark.parametrize("how", ["option", "ini"])
def test_more_roots_only_through_the_option_or_the_ini_key(pytester, outside_basetemp, how):
    victim, _ = _other_programs_db(outside_basetemp)
    pytester.makepyfile(_VICTIM_TEST.format(victim=str(victim)))
    if how == "ini":
        pytester.makeini(f"[pytest]\ndbfault_allowed_roots =\n    {outside_basetemp}\n")
        result = pytester.runpytest("-p", "no:randomly")
    else:
        result = pytester.runpytest("-p", "no:randomly", f"--dbfault-allow-root={outside_basetemp}")
    result.assert_outcomes(passed=2)


# -- plain library use (no pytest session) ------------------------------------------------------------------
@pytest.fixture
def plain_library(monkeypatch):
    from pytest_dbfault import _guard_state
    from pytest_dbfault.faults import safety

    monkeypatch.setattr(_guard_state, "session", None)
    monkeypatch.delenv(safety.ALLOWED_ROOTS_ENV, raising=False)
    return safety


def test_outside_pytest_the_temp_dir_is_refused_but_pytest_and_dbfault_scratch_dirs_are_allowed(
        plain_library, outside_basetemp, tmp_path):
    import os
    import tempfile

    safety = plain_library
    assert not safety.in_pytest_session()
    with pytest.raises(FaultError, match=r"outside the allowed roots.*DBFAULT_ALLOWED_ROOTS"):
        check_path(outside_basetemp / "app.db", action="corrupt")
    assert is_allowed(tmp_path / "app.db")  # pytest-of-<user>: pytest's private scratch space
    scratch = Path(tempfile.mkdtemp(prefix="dbfault-test-"))
    try:
        assert is_allowed(scratch / "sub" / "app.db")
        os.chmod(scratch, 0o755)  # not private: not taken for one of ours
        assert not is_allowed(scratch / "app.db")
    finally:
        scratch.rmdir()


def test_outside_pytest_the_environment_lists_more_roots(plain_library, outside_basetemp, monkeypatch):
    monkeypatch.setenv(plain_library.ALLOWED_ROOTS_ENV, f"/nonexistent-elsewhere:{outside_basetemp}")
    assert is_allowed(outside_basetemp / "app.db")
    assert not is_allowed(Path(OUTSIDE))


def test_a_symlink_under_an_allowed_root_pointing_outside_is_refused(tmp_path, outside_basetemp):
    link = tmp_path / "link"
    link.symlink_to(outside_basetemp)
    with pytest.raises(FaultError, match="outside the allowed roots"):
        check_path(link / "app.db", action="corrupt")
