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
