"""FileFullFault: writes to a file the process already has open meet a real ENOSPC, and heal restores it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pytest_dbfault.faults import FaultError, FileFullFault, make_fault

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full") or not os.path.isdir("/proc/self/fd"),
                                reason="FileFullFault needs Linux's /dev/full and /proc/self/fd")


def test_writes_fail_with_enospc_while_active_and_land_where_they_belong_after_heal(tmp_path: Path) -> None:
    path = tmp_path / "queue.log"
    with open(path, "a", buffering=1) as f:
        f.write("before\n")
        with FileFullFault(path) as fault:
            with pytest.raises(OSError) as info:
                f.write("lost\n")  # line-buffered: the write reaches the kernel now
            assert info.value.errno == errno.ENOSPC
            assert fault.records[-2].detail["fds"] == [f.fileno()]
        f.buffer.raw.write(b"after\n")  # the buffered text layer still holds "lost": write past it
    assert path.read_bytes().startswith(b"before\n")
    assert b"after\n" in path.read_bytes()


def test_an_os_level_descriptor_keeps_its_offset_and_flags_across_the_fault(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"one\n")
        fault = FileFullFault(fd).inject()
        with pytest.raises(OSError) as write_error:
            os.write(fd, b"two\n")
        with pytest.raises(OSError) as sync_error:
            os.fsync(fd)
        fault.heal()
        os.write(fd, b"three\n")
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)
    assert write_error.value.errno == errno.ENOSPC
    assert sync_error.value.errno == errno.EINVAL
    assert path.read_bytes() == b"one\nthree\n"


def test_every_descriptor_on_the_path_is_affected(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    path.write_bytes(b"")
    a = os.open(path, os.O_WRONLY | os.O_APPEND)
    b = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        with make_fault("file_full", path):
            for fd in (a, b):
                with pytest.raises(OSError, match="No space left"):
                    os.write(fd, b"x")
        os.write(a, b"a")
        os.write(b, b"b")
    finally:
        os.close(a)
        os.close(b)
    assert path.read_bytes() == b"ab"


def test_a_descriptor_closed_by_the_code_under_test_is_not_resurrected(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    fault = FileFullFault(path).inject()
    os.close(fd)
    fault.heal()
    with pytest.raises(OSError):
        os.fstat(fd)
    # Closed and the number reused for another file: heal leaves that file alone.
    fd = os.open(path, os.O_WRONLY)
    fault = FileFullFault(path).inject()
    os.close(fd)
    other = os.open(tmp_path / "other", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fault.heal()
        os.write(other, b"mine")
    finally:
        os.close(other)
    assert (tmp_path / "other").read_bytes() == b"mine" and path.read_bytes() == b""


def test_bad_targets_say_what_was_wrong(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="no descriptor open"):
        (tmp_path / "closed").write_bytes(b"")
        FileFullFault(tmp_path / "closed").inject()
    with pytest.raises(FaultError, match="cannot stat"):
        FileFullFault(tmp_path / "missing").inject()
    with pytest.raises(FaultError, match="outside the allowed roots"):
        FileFullFault("/etc/hostname")
    with pytest.raises(FaultError, match="path or a file descriptor"):
        FileFullFault(3.5)  # type: ignore[arg-type]
    with pytest.raises(FaultError, match="descriptor 987654 is not open"):
        FileFullFault(987654).inject()


def test_a_sidecar_of_a_running_manager_is_named_by_its_suffix(tmp_path: Path) -> None:
    from reliability import DatabaseManager, ReliabilityConfig

    db = DatabaseManager(ReliabilityConfig(db_path=str(tmp_path / "app.db"), backup_interval=0))
    try:
        db.execute("CREATE TABLE t (v)")
        with FileFullFault(db, sidecar=".redo"):
            db.execute("INSERT INTO t VALUES (1)")  # committed in SQLite; the journal write fails
            assert db.durability.redo is not None and "No space left" in (db.durability.redo.error or "")
        assert db.fetch_all("SELECT v FROM t") == [(1,)]
        assert any("redo journal" in reason for reason in db.health().reasons)
    finally:
        db.close()
    with pytest.raises(FaultError, match="suffix"):
        FileFullFault(tmp_path / "app.db", sidecar="../x")
    with pytest.raises(FaultError, match="not a descriptor"):
        FileFullFault(3, sidecar=".redo")
    with pytest.raises(FaultError, match="sidecar='.suffix'"):
        FileFullFault(object())  # type: ignore[arg-type]
