"""The damage marker's own file handling (reliability.damage_mark): content that is not a marker, a failed write,
what clear() keeps. The cross-process behaviour is tests/test_damage_shared.py."""

from __future__ import annotations

import errno
import os
import time

import pytest

from reliability.damage_mark import DamageMarker, error_text, marker_path
from reliability.files import UnsafePathError


def test_content_that_is_not_a_marker_still_counts_as_a_mark_and_says_why(tmp_path):
    db = tmp_path / "app.db"
    marker = DamageMarker(db)
    for content, why in ((b"not json at all", "not a damage marker"), (b"[1, 2]", "not an object"),
                         (b'{"pid": "x"}', "not a damage marker")):
        marker_path(db).write_bytes(content)
        mark = marker.read()
        assert mark is not None and mark.unreadable is not None and why in mark.unreadable, (content, mark)
        assert "cannot be used" in mark.describe() and mark.to_dict()["unreadable"] == mark.unreadable
        assert marker.present()


def test_a_written_mark_reads_back_and_clear_keeps_one_written_after_the_check_began(tmp_path):
    db = tmp_path / "app.db"
    marker = DamageMarker(lambda: str(db))
    assert marker.read() is None and not marker.clear()
    before = time.time() - 60
    marker.write("a failed quick integrity check", ["page 3: btreeInitPage() returns error code 11"], (1, 2))
    mark = marker.read()
    assert mark is not None and mark.pid == os.getpid() and mark.file == (1, 2) and mark.unreadable is None
    assert "marked damaged by process" in mark.describe() and "btreeInitPage" in mark.describe()
    assert not marker.clear(written_before=before) and marker.present()  # written after the check began: kept
    assert not marker.clear(keep=lambda m: True) and marker.present()
    assert marker.clear() and not marker.present()


def test_a_write_that_cannot_happen_raises_and_leaves_no_temporary(tmp_path):
    db = tmp_path / "missing-dir" / "app.db"
    with pytest.raises(OSError):
        DamageMarker(db).write("a corrupt error met by a statement", [], None)
    assert not (tmp_path / "missing-dir").exists()


def test_a_directory_at_the_marker_path_is_refused_and_never_removed(tmp_path):
    db = tmp_path / "app.db"
    marker_path(db).mkdir()
    with pytest.raises(UnsafePathError):
        DamageMarker(db).clear()
    assert marker_path(db).is_dir()


def test_error_text_names_the_errno_or_the_refusal(tmp_path):
    assert error_text(OSError(errno.EACCES, "Permission denied")) == "Permission denied (EACCES)"
    refused = UnsafePathError(tmp_path / "x", "damage marker")
    assert error_text(refused) == str(refused)


CRASH_MID_WRITE = r"""
import os, signal, sys
from reliability.damage_mark import DamageMarker
os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # killed after the fsync, before the rename
DamageMarker(sys.argv[1]).write("a corrupt error met by a statement", ["database disk image is malformed"], None)
"""


def test_a_marker_temporary_left_by_a_killed_writer_is_removed_at_the_next_start(tmp_path):
    import subprocess
    import sys

    from runtime_helpers import fast_config

    from reliability import DatabaseManager, files

    db = tmp_path / "app.db"
    writer = subprocess.Popen([sys.executable, "-c", CRASH_MID_WRITE, str(db)])
    assert writer.wait(60) == -9
    [leftover] = tmp_path.glob("app.db.damaged.tmp-*")
    assert leftover.name.startswith(f"app.db.damaged.tmp-{writer.pid}-") and not marker_path(db).exists()
    assert leftover.stat().st_size > 0  # the marker's content, never renamed over the marker
    # Young: its process might run on another host sharing the directory, so it stays a while.
    with DatabaseManager(fast_config(db)):
        pass
    assert leftover.exists()
    old = time.time() - files.LEFTOVER_AGE - 5
    os.utime(leftover, (old, old))
    # Not ours, whatever its age: a live process's temporary, a link planted under such a name, a name with no pid.
    alive = tmp_path / f"app.db.damaged.tmp-{os.getppid()}-1"
    planted = tmp_path / "app.db.damaged.tmp-999999999-1"
    nopid = tmp_path / "app.db.damaged.tmp-abc-1"
    outside = tmp_path / "outside"
    outside.write_text("keep me")
    alive.write_text("x")
    nopid.write_text("x")
    planted.symlink_to(outside)
    for p in (alive, nopid):
        os.utime(p, (old, old))
    with DatabaseManager(fast_config(db)):
        pass
    assert not leftover.exists(), "the killed writer's temporary is still there"
    assert alive.exists() and nopid.exists() and planted.is_symlink() and outside.read_text() == "keep me"


def test_remove_leftover_temps_leaves_this_process_and_unlistable_directories_alone(tmp_path):
    from reliability import files

    mine = files.process_temp(tmp_path / "k", "tmp")
    mine.write_text("x")
    old = time.time() - files.LEFTOVER_AGE - 5
    os.utime(mine, (old, old))
    assert files.remove_leftover_temps(tmp_path / "k", "tmp") == [] and mine.exists()
    assert files.remove_leftover_temps(tmp_path / "missing" / "k", "tmp") == []


def test_a_process_of_another_user_counts_as_alive(monkeypatch):
    """``kill(pid, 0)`` answers EPERM for a process that runs as another user (never seen as root, as here)."""
    from reliability import files

    def eperm(pid: int, sig: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "kill", eperm)
    assert files._process_alive(12345)
