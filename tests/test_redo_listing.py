"""Listing the redo journal slots of a database: every slot file, whoever created it and when, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reliability.redo import MAX_SLOTS, RedoJournal, journal_files, slot_path

# A second process takes the next free slot and keeps it until told to stop (stdin closed).
_OTHER_PROCESS = textwrap.dedent("""
    import sys
    from reliability.redo import RedoJournal
    j = RedoJournal(sys.argv[1], fsync=False)
    j.open()
    print(j.slot, flush=True)
    sys.stdin.read()
    j.close()
""")


def test_every_slot_is_listed_including_one_another_process_took_after_the_first_listing(tmp_path: Path) -> None:
    base = tmp_path / "app.db.redo"
    ours = RedoJournal(base, fsync=False)
    ours.open()
    try:
        assert journal_files(base) == [(0, base)]
        other = subprocess.Popen([sys.executable, "-c", _OTHER_PROCESS, str(base)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout is not None
            taken = int(other.stdout.readline())
            assert taken == 1  # slot 0 is locked by this process
            # Listed by the next call: nothing from the first listing is reused.
            assert journal_files(base) == [(0, base), (1, slot_path(base, 1))]
        finally:
            other.communicate("")
        assert other.returncode == 0
    finally:
        ours.close()


def test_the_listing_is_every_slot_file_in_slot_order_and_no_other_file(tmp_path: Path) -> None:
    base = tmp_path / "app.db.redo"
    slots = [MAX_SLOTS - 1, 10, 2, 1]
    for slot in slots:
        slot_path(base, slot).write_bytes(b"")
    # A link counts as a file, as for os.path.lexists (listed, never followed: readers open with O_NOFOLLOW).
    os.symlink(tmp_path / "nowhere", slot_path(base, 7))
    decoys = ["app.db", "app.db-wal", "app.db.redo.0", "app.db.redo.07", f"app.db.redo.{MAX_SLOTS}",
              "app.db.redo.1x", "app.db.redo.", "app.db.redo.tmp", "app.db.redo.\u0663", "xapp.db.redo",
              "app.db.redo.1.bak"]
    for name in decoys:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "app.db.redo.3").mkdir()  # lexists says yes to a directory too
    expected = sorted([*slots, 7, 3])
    assert journal_files(base) == [(slot, slot_path(base, slot)) for slot in expected]
    assert journal_files(str(base)) == journal_files(base)
    # Slot 0 itself, once it exists, comes first.
    base.write_bytes(b"")
    assert journal_files(base)[0] == (0, base)


def test_no_directory_means_no_journal(tmp_path: Path) -> None:
    assert journal_files(tmp_path / "gone" / "app.db.redo") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists a directory whatever its mode")
def test_a_directory_that_can_be_searched_but_not_listed_is_probed_slot_by_slot(tmp_path: Path) -> None:
    base = tmp_path / "locked" / "app.db.redo"
    base.parent.mkdir()
    base.write_bytes(b"")
    slot_path(base, 5).write_bytes(b"")
    base.parent.chmod(0o300)
    try:
        assert journal_files(base) == [(0, base), (5, slot_path(base, 5))]
    finally:
        base.parent.chmod(0o700)
