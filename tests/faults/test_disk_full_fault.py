"""DiskFullFault: a per-connection max_page_count cap makes writes fail with SQLITE_FULL."""

from __future__ import annotations

import sqlite3

import pytest

from pytest_dbfault.faults import DiskFullFault, FaultError

_BIG_ROW = "INSERT INTO items (name, payload) VALUES ('big', randomblob(20000))"


def test_a_write_that_needs_new_pages_fails_full_and_rolls_back_the_whole_transaction(
        make_db, connect, error_name):
    victim = connect(make_db())
    with DiskFullFault(victim):
        victim.execute("INSERT INTO items (name) VALUES ('small')")  # fits in an existing page
        assert victim.in_transaction
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full") as exc:
            victim.execute(_BIG_ROW)
        assert error_name(exc.value) == "SQLITE_FULL"
        assert not victim.in_transaction
    assert victim.execute("SELECT count(*) FROM items WHERE name = 'small'").fetchone() == (0,)


def test_the_cap_is_per_connection_so_others_still_write(make_db, connect):
    path = make_db()
    victim, other = connect(path), connect(path)
    with DiskFullFault(victim):
        other.execute(_BIG_ROW)
        other.commit()
        with pytest.raises(sqlite3.OperationalError):
            victim.execute(_BIG_ROW)


def test_heal_restores_the_previous_max_page_count(make_db, connect):
    victim = connect(make_db())
    before = victim.execute("PRAGMA max_page_count").fetchone()[0]
    fault = DiskFullFault(victim, headroom=1).inject()
    capped = next(r.detail for r in fault.records if r.action == "max_page_count capped")
    assert capped["max_page_count"] == capped["page_count"] + 1
    fault.heal()
    assert victim.execute("PRAGMA max_page_count").fetchone()[0] == before
    victim.execute(_BIG_ROW)
    victim.commit()


def test_a_path_alone_is_refused_because_the_cap_lives_on_a_connection(make_db):
    with pytest.raises(FaultError, match="acts on a live connection"):
        DiskFullFault(make_db()).inject()


def test_a_negative_headroom_is_rejected(make_db, connect):
    with pytest.raises(FaultError, match="headroom must be an int >= 0"):
        DiskFullFault(connect(make_db()), headroom=-1)


def test_a_heal_blocked_by_a_lock_leaves_the_fault_in_force_and_can_be_done_again(make_db, connect):
    # Rollback journal: an exclusive lock held elsewhere keeps the pragma that restores the page limit out
    # ("database is locked"). The fault must stay active (and keep its connection) so that heal() works once
    # the lock is gone; it used to forget its connection first, and the second heal() restored nothing.
    from pytest_dbfault.faults import LockedFault

    path = make_db(journal_mode="delete")
    victim = connect(path)
    before = victim.execute("PRAGMA max_page_count").fetchone()[0]
    fault = DiskFullFault(victim, headroom=1).inject()
    lock = LockedFault(path, mode="exclusive").inject()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            fault.heal()
        assert fault.active
    finally:
        lock.heal()
    fault.heal()
    assert not fault.active
    assert victim.execute("PRAGMA max_page_count").fetchone()[0] == before
