"""reliability.files: runtime files are never opened through a planted link and are created 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reliability import files
from reliability.files import UnsafePathError


@pytest.fixture(autouse=True)
def _usual_umask() -> object:
    old = os.umask(0o022)  # the umask the issue measured 0644 files under
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def plant(tmp_path: Path, name: str) -> tuple[Path, Path]:
    victim = tmp_path / "outside.txt"
    victim.write_text("precious\n")
    link = tmp_path / name
    link.symlink_to(victim)
    return link, victim


def test_open_private_creates_the_file_0600_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    os.close(files.open_private(path))
    assert mode(path) == 0o600


def test_open_private_refuses_a_planted_symlink_and_leaves_its_target_alone(tmp_path: Path) -> None:
    link, victim = plant(tmp_path, "q.jsonl")
    with pytest.raises(UnsafePathError, match=r"refusing to use .*q\.jsonl as the write queue: it is a symbolic link"):
        files.open_private(link, what="write queue")
    assert victim.read_text() == "precious\n"
    assert mode(victim) == 0o644


def test_open_private_narrows_an_existing_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "old.log"
    path.write_text("x")
    assert mode(path) == 0o644
    os.close(files.open_private(path))
    assert mode(path) == 0o600


def test_create_temp_refuses_a_planted_link_but_replaces_a_crash_leftover(tmp_path: Path) -> None:
    link, victim = plant(tmp_path, "q.tmp")
    with pytest.raises(UnsafePathError):
        files.create_temp(link)
    assert victim.read_text() == "precious\n"
    leftover = tmp_path / "r.tmp"
    leftover.write_text("half written")
    fd = files.create_temp(leftover)
    os.close(fd)
    assert leftover.read_bytes() == b"" and mode(leftover) == 0o600


def test_write_atomic_writes_0600_and_refuses_a_link_at_the_temporary_or_the_target(tmp_path: Path) -> None:
    target = tmp_path / "anchor"
    files.write_atomic(target, b"one")
    assert target.read_bytes() == b"one" and mode(target) == 0o600
    _, victim = plant(tmp_path, "anchor.tmp")
    with pytest.raises(UnsafePathError):
        files.write_atomic(target, b"two")
    assert victim.read_text() == "precious\n" and target.read_bytes() == b"one"
    (tmp_path / "anchor.tmp").unlink()
    link2, victim2 = plant(tmp_path, "other")
    with pytest.raises(UnsafePathError):
        files.write_atomic(link2, b"x")
    assert victim2.read_text() == "precious\n"


def test_read_private_does_not_read_through_a_link(tmp_path: Path) -> None:
    link, _ = plant(tmp_path, "fallback.jsonl")
    with pytest.raises(UnsafePathError):
        files.read_private(link)
    assert files.read_private(tmp_path / "missing") is None


def test_ensure_private_dir_creates_0700_and_refuses_a_linked_or_file_path(tmp_path: Path) -> None:
    made = files.ensure_private_dir(tmp_path / "a" / "backups")
    assert made.is_dir() and mode(made) == 0o700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="backup directory"):
        files.ensure_private_dir(tmp_path / "linked", what="backup directory")
    (tmp_path / "plain").write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        files.ensure_private_dir(tmp_path / "plain")


def test_create_private_file_keeps_an_existing_file_and_its_content(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    assert files.create_private_file(path) is True
    path.write_bytes(b"data")
    assert files.create_private_file(path) is False
    assert path.read_bytes() == b"data" and mode(path) == 0o600


@pytest.mark.parametrize("flags", [files.APPEND, os.O_RDONLY], ids=["write", "read"])
def test_a_fifo_planted_where_a_runtime_file_goes_is_refused_without_blocking(tmp_path: Path, flags: int) -> None:
    fifo = tmp_path / "queue.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePathError, match="is not a regular file"):
        files.open_private(fifo, flags, what="write queue")
    with pytest.raises(UnsafePathError, match="is not a regular file"):
        files.refuse_symlink(fifo)


def test_write_atomic_leaves_no_temporary_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "anchor"
    with pytest.raises(TypeError):
        files.write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
