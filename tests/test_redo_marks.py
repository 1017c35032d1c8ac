"""The committed mark in the journal file: how it reads, what losing it does, and the decision it feeds.

A mark ``("committed", G)`` follows record ``G`` once its COMMIT succeeded, before the caller is told, with no
fsync of its own (the next record's covers it). These tests work on real journal files; the kill -9 of a
worker at each point of the commit path is in tests/test_wal_removed.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reliability.redo import (
    _HWM_AT,
    LAST_COMMITTED,
    LAST_ORPHAN,
    RedoJournal,
    _hwm_bytes,
    last_record_verdict,
    plan_replay,
    read_journal,
    read_journals,
    reconcile_orphans,
)


def journal(tmp_path: Path) -> RedoJournal:
    j = RedoJournal(tmp_path / "db.redo", fsync=False)
    j.open()
    j.reset(0, from_empty=True)
    return j


def write(j: RedoJournal, seq: int, *, mark: bool = True) -> int:
    """Record ``seq`` as the commit path writes it (the mark after its COMMIT); returns where the record ends."""
    j.capture("INSERT INTO t VALUES (?)", (seq,), False)
    assert j.write_record(seq)
    end = j.path.stat().st_size
    if mark:
        j.mark_committed(seq)
    j.committed(seq)
    return end


def stop(j: RedoJournal) -> None:
    """The owner stops without its clean-close record (what a kill leaves: its lock released, nothing more)."""
    fd, j._fd = j._fd, None
    assert fd is not None
    os.close(fd)


def test_marks_read_back_and_do_not_count_in_the_high_water_mark(tmp_path):
    j = journal(tmp_path)
    for seq in (1, 2, 3):
        write(j, seq)
    j.close()
    state = read_journal(j.path)
    assert [seq for seq, _ops in state.entries] == [1, 2, 3] and state.marked == {1, 2, 3}
    assert state.clean and not state.problems
    assert (state.hwm, state.hwm_count) == (3, 4)  # the anchor and three records: no mark counted


@pytest.mark.parametrize("lost", ["never_landed", "zeros", "torn"])
def test_a_last_mark_lost_with_power_is_a_record_without_its_mark_not_a_cut_journal(tmp_path, lost):
    j = journal(tmp_path)
    write(j, 1)
    end = write(j, 2)
    stop(j)
    data = j.path.read_bytes()
    assert len(data) > end  # the mark is there
    # What a power loss can leave of an unsynced mark: nothing, zeros where it was, or a part of it.
    data = {"never_landed": data[:end], "zeros": data[:end] + b"\0" * (len(data) - end),
            "torn": data[:end + 7]}[lost]
    j.path.write_bytes(data)
    state = read_journal(j.path)
    assert [seq for seq, _ops in state.entries] == [1, 2] and state.marked == {1}
    assert not state.problems, state.problems  # (counted in the high-water mark, a lost mark would read as a cut)


def test_a_journal_cut_after_a_mark_is_still_reported_cut_short(tmp_path):
    j = journal(tmp_path)
    write(j, 1)
    write(j, 2)
    cut = j.path.stat().st_size  # right after record 2's mark: a clean boundary
    write(j, 3)
    stop(j)
    j.path.write_bytes(j.path.read_bytes()[:cut])
    state = read_journal(j.path)
    assert state.problems and "cut short" in state.problems[0], state.problems


def test_a_mark_anywhere_but_right_after_its_record_proves_nothing(tmp_path):
    j = journal(tmp_path)
    write(j, 1, mark=False)
    write(j, 2)
    j.mark_committed(1)  # (never written so by the runtime)
    j.close()
    state = read_journal(j.path)
    assert state.marked == {2} and not state.problems


def test_a_journal_without_marks_reads_and_a_reopened_one_appends_after_the_marks(tmp_path):
    j = journal(tmp_path)
    write(j, 1, mark=False)  # as the runtime before marks wrote it
    stop(j)
    state = read_journal(j.path)
    assert [seq for seq, _ops in state.entries] == [1] and state.marked == set() and not state.problems
    again = RedoJournal(tmp_path / "db.redo", fsync=False)
    again.open()
    write(again, 2)
    write(again, 3)
    again.close()
    state = read_journal(again.path)
    assert [seq for seq, _ops in state.entries] == [1, 2, 3] and state.marked == {2, 3}
    assert state.clean and not state.problems


@pytest.mark.parametrize("mark", [True, False])
def test_the_lone_last_record_past_the_database_is_committed_with_its_mark_and_an_orphan_without(tmp_path, mark):
    """The database holds sequence 1 (nothing else shows a loss); the stopped journal's last record is 2.

    The verdict, the startup reconcile and recovery's plan agree."""
    j = journal(tmp_path)
    write(j, 1)
    write(j, 2, mark=mark)
    stop(j)
    base = tmp_path / "db.redo"
    committed = {0: 1}
    assert last_record_verdict(0, read_journals(base), committed) == (LAST_COMMITTED if mark else LAST_ORPHAN)
    plan = plan_replay(base, 1, committed=committed)
    assert [seq for seq, _ops, _slot in plan.entries] == ([2] if mark else []) and not plan.problems
    assert plan.unsure == []  # committed or an orphan: never in doubt
    marked = reconcile_orphans(base, committed, fsync=False)
    assert marked == ({} if mark else {0: [2]})  # a marked record is left for recovery, an orphan gets its abort
    plan = plan_replay(base, 1, committed=committed)
    assert [seq for seq, _ops, _slot in plan.entries] == ([2] if mark else []) and not plan.problems


def test_a_marked_record_whose_sequence_the_database_holds_is_taken_for_an_orphan_as_before(tmp_path):
    """The database holds the sequence (another slot committed it, or a recovery replayed it): nothing to bring
    back from this file, mark or not (the mark is consulted only past the database's sequence)."""
    j = journal(tmp_path)
    write(j, 1)
    write(j, 2)
    stop(j)
    assert last_record_verdict(0, read_journals(tmp_path / "db.redo"), {0: 1, 5: 2}) == LAST_ORPHAN


def test_a_mark_the_file_refuses_leaves_the_record_unmarked_and_the_journal_usable(tmp_path, caplog):
    """The mark's write fails (a real EBADF: the journal's descriptor swapped for a read-only one of the same
    file): the commit stands, nothing is raised, the record stays without its mark, the next record follows."""
    j = journal(tmp_path)
    j.capture("INSERT INTO t VALUES (?)", (1,), False)
    assert j.write_record(1)
    rw, j._fd = j._fd, os.open(j.path, os.O_RDONLY)
    try:
        j.mark_committed(1)
    finally:
        assert j._fd is not None
        os.close(j._fd)
        j._fd = rw
    j.committed(1)
    assert j.error is None and "could not mark sequence 1 committed" in caplog.text
    write(j, 2)
    j.close()
    state = read_journal(j.path)
    assert [seq for seq, _ops in state.entries] == [1, 2] and state.marked == {2}
    assert state.clean and not state.problems


@pytest.mark.parametrize("mark_landed", [False, True])
def test_a_torn_record_right_after_an_abort_marker_is_a_torn_tail_not_a_cut_journal(tmp_path, mark_landed):
    # Record 2's COMMIT failed: its abort marker puts the high-water mark back to 1. The next transaction reuses
    # sequence 2 and the power goes while its record is written: what is left is a part of it, with or without
    # the high-water mark it writes next. Nothing acknowledged is missing (the copy of the mark before the newest
    # still says 2, written for the aborted record), so the file is not cut short.
    j = journal(tmp_path)
    write(j, 1)
    j.capture("INSERT INTO t VALUES (?)", (2,), False)
    assert j.write_record(2)
    j.abort(2)
    after_abort = j.path.stat().st_size
    write(j, 2, mark=False)
    stop(j)
    data = bytearray(j.path.read_bytes())
    if not mark_landed:
        before = read_journal(j.path)
        assert before.hwm == 2
        # the reused record's mark never landed: its slot still holds the copy the aborted record wrote
        count = before.hwm_count
        data[_HWM_AT[count & 1]:_HWM_AT[count & 1] + 20] = _hwm_bytes(count - 2, 2)
    j.path.write_bytes(bytes(data[:after_abort + 9]))
    state = read_journal(j.path)
    assert [seq for seq, _ops in state.entries] == [1] and state.aborted == [2]
    assert not state.problems, state.problems


def test_a_journal_cut_before_an_abort_marker_and_what_follows_is_still_cut_short(tmp_path):
    # Record 2 aborted, record 2 again and record 3 acknowledged, then the file loses everything after record 1
    # plus a torn part: the acknowledged records are missing, whatever the abort did to the mark.
    j = journal(tmp_path)
    end1 = write(j, 1)
    j.capture("INSERT INTO t VALUES (?)", (2,), False)
    assert j.write_record(2)
    j.abort(2)
    write(j, 2)
    write(j, 3)
    stop(j)
    data = j.path.read_bytes()
    j.path.write_bytes(data[:end1] + data[end1:end1 + 5])
    state = read_journal(j.path)
    assert state.problems and "cut short" in state.problems[0], state.problems
