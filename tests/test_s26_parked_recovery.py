"""A recovery never reports writes missing on account of a redo journal that never took one (no false alarm).

Found while settling a suspected false alarm of the data-loss machine's ``remove_wal_live``: a manager's handle
on a removed ``-wal`` parked (:meth:`reliability.connection.ConnectionManager._park_unsaved_handle`), then a second
manager started in the same process. It read the database through the removed WAL's index (kept alive in the
process by the parked handle), its anchoring backup failed ``integrity_check``, and ``recover()`` said ``ok=False``
("the redo journal ... is missing or lost its header", "... could not be anchored at startup ...") with every
acknowledged write back: its journal had never been given a header and had taken no write. The same happens
without any ``-wal`` removed: a manager (``reliability recover`` builds one) starting on a damaged database.

A journal whose anchoring failed still makes a recovery say what may be missing once a write went ahead without a
record. Real files, real damage, real removals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from redo_worker import config as worker_config

from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind


def _rows_seen_by_another_process(path: Path) -> tuple[set[str], str]:
    """The ids of ``t`` and quick_check's verdict, read by a fresh connection in another process (it builds its
    own WAL index from the files at the path)."""
    code = textwrap.dedent("""
        import sqlite3, sys
        c = sqlite3.connect(sys.argv[1])
        print(",".join(sorted(r[0] for r in c.execute("SELECT id FROM t"))))
        print(c.execute("PRAGMA quick_check").fetchone()[0])
    """)
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stderr[-500:]
    return set(filter(None, lines[0].split(","))), lines[1]


def _damage_a_page_of_t(db: DatabaseManager, path: Path) -> None:
    """Checkpoint everything into the file, then overwrite the start of page 3 (t's root: a real b-tree page)."""
    conn = db.connection
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as f:
        f.seek(page * 2)
        f.write(b"\x00" * 64)


def _start_on_damage(tmp_path: Path) -> tuple[Path, DatabaseManager, DatabaseManager, set[str]]:
    path = tmp_path / "app.db"
    first = DatabaseManager(worker_config(str(path)))
    first.execute("CREATE TABLE t (id TEXT PRIMARY KEY, pad TEXT)")
    first.execute("CREATE TABLE side (v)")  # (a page of its own, sound: the damaged one is t's)
    first.backup()
    acked = set()
    for i in range(40):
        first.execute("INSERT INTO t (id, pad) VALUES (?, ?)", (f"a{i}", "x" * 200))
        acked.add(f"a{i}")
    _damage_a_page_of_t(first, path)
    second = DatabaseManager(worker_config(str(path)))  # its anchoring backup copies a damaged file: refused
    assert "could not be anchored at startup" in (second.durability.redo.error or "")
    return path, first, second, acked


def test_a_manager_whose_journal_never_took_a_write_recovers_ok(tmp_path):
    """The second manager acknowledged nothing: its unanchored journal cannot hold anything missing."""
    path, first, second, acked = _start_on_damage(tmp_path)
    try:
        report = second.recover()
        assert report.ok, report.problems  # (was: "missing or lost its header", "could not be anchored")
        assert report.backup is not None and report.quarantined
        assert {r[0] for r in second.fetch_all("SELECT id FROM t")} >= acked
        assert str(second.health().status) == "healthy"
    finally:
        second.close()
        first.close()
    seen, verdict = _rows_seen_by_another_process(path)
    assert acked <= seen and verdict == "ok"


def test_the_other_manager_after_that_recovery_is_told_ok_too(tmp_path):
    """The first manager recovers; the second, asked afterwards, finds the file recovered by another: ok as well
    (its report carried its own journal's error)."""
    path, first, second, acked = _start_on_damage(tmp_path)
    try:
        assert first.recover().ok
        report = second.recover()
        assert report.ok, report.problems
        assert {r[0] for r in second.fetch_all("SELECT id FROM t")} >= acked
    finally:
        second.close()
        first.close()
    assert acked <= _rows_seen_by_another_process(path)[0]


@pytest.mark.parametrize("how", ["transaction", "statement_on_its_own"])
def test_a_write_made_without_a_record_is_still_reported(tmp_path, how):
    """Honest the other way: once the unanchored journal let a write through without a record, recovery cannot
    replay it from any journal, and it says so (ok=False), whichever way the write was committed."""
    path, first, second, acked = _start_on_damage(tmp_path)
    try:
        if how == "transaction":
            second.execute("INSERT INTO side (v) VALUES (1)")  # acknowledged, no record (its journal is unanchored)
        else:
            # A statement routed as a read that changes rows (a function with side effects) commits on its own,
            # with no sequence and no record.
            conn = second.connections.connection
            conn.create_function("touch", 0, lambda: conn.execute("INSERT INTO side (v) VALUES (2)").rowcount)
            second.execute("SELECT touch()")
        report = second.recover()
        assert not report.ok
        assert any("could not be anchored" in p or "outside the journal" in p for p in report.problems), \
            report.problems
    finally:
        second.close()
        first.close()


def test_a_journal_that_had_its_header_and_lost_it_is_still_reported(tmp_path):
    """A journal that had its header and lost it (deleted under the manager) is still reported: what it held
    since the backup is unknown."""
    path = tmp_path / "app.db"
    db = DatabaseManager(worker_config(str(path)))
    try:
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, pad TEXT)")
        db.backup()
        db.execute("INSERT INTO t (id, pad) VALUES ('a', 'x')")
        os.remove(db.durability.redo.path)
        report = db.recover()
        assert not report.ok and any("missing or lost its header" in p for p in report.problems), report.problems
    finally:
        db.close()



#: Another application (plain SQLite, another process) on the database as of the last checkpoint: COUNT transactions,
#: each rewriting the one page of ``pairs``, so its new ``-wal`` is longer than the removed one and a connection of the
#: manager's process, reading through the removed WAL's index, gets pages instead of a disk I/O error.
_PAGE_WRITER = textwrap.dedent("""
    import sqlite3, sys
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    for i in range(int(sys.argv[2])):
        c.execute("UPDATE pairs SET v = ? WHERE k = 9", (2 + i % 2,))
    print("wrote", flush=True)
    c.close()
""")


def _park(first: DatabaseManager, path: Path) -> set[str]:
    """Acknowledged rows only in the ``-wal``; the ``-wal`` and ``-shm`` removed; another application writes ten
    transactions on the older state and goes; ``first`` looks, refuses and parks its handle. Returns the ids."""
    first.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
    first.execute("CREATE TABLE pairs (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    first.execute("INSERT INTO pairs (k, v) VALUES (9, 2)")
    first.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    first.backup()
    acked = set()
    for i in range(3):
        first.execute("INSERT INTO t (id) VALUES (?)", (f"a{i}",))  # their frames only in the -wal
        acked.add(f"a{i}")
    first.identity_check_interval = 3600
    os.remove(f"{path}-wal")  # a real removal, as a cleanup script does it
    os.remove(f"{path}-shm")
    other = subprocess.run([sys.executable, "-c", _PAGE_WRITER, str(path), "10"], capture_output=True,
                           text=True, timeout=60)
    assert other.stdout.split() == ["wrote"], other.stderr[-500:]
    with pytest.raises(DatabaseError) as caught:
        first.execute("INSERT INTO t (id) VALUES ('after')")
    assert caught.value.kind is ErrorKind.UNAVAILABLE  # refused, its handle parked
    assert first.connections.reads_through_removed_index()
    return acked


@pytest.mark.parametrize("who", ["parked", "second"])
def test_recovery_with_a_handle_parked_and_a_second_manager_started_since(tmp_path, who):
    """The suspected false alarm itself: the ``-wal`` and ``-shm`` removed under the only manager, another
    application writes on the older state and goes, the manager parks its handle (refused); a second manager starts
    in the same process (it reads through the removed WAL's index: its anchoring backup fails integrity_check) and
    acknowledges nothing. Whichever recovers, then the other: both ok, every acknowledged row there."""
    path = tmp_path / "app.db"
    first = DatabaseManager(worker_config(str(path)))
    second = None
    try:
        acked = _park(first, path)
        # It starts, and its anchoring backup fails (it read the database through the removed WAL's index: pages
        # of another table, so the copy failed integrity_check; now its connection is refused meanwhile).
        second = DatabaseManager(worker_config(str(path)))
        assert "could not be anchored at startup" in (second.durability.redo.error or "")
        recoverer, then = (first, second) if who == "parked" else (second, first)
        report = recoverer.recover()
        assert report.ok, report.problems  # (who=second: "missing or lost its header", "could not be anchored")
        assert report.backup is not None and report.quarantined
        again = then.recover()  # the file another manager installed: nothing to do, and ok
        assert again.ok, again.problems  # (who=parked: "could not be anchored")
        assert acked <= {r[0] for r in recoverer.fetch_all("SELECT id FROM t")}
        for m in (first, second):  # each serves the recovered file (a refusal of its own ends with an ok recovery)
            assert str(m.health().status) != "unavailable", m.health().reasons
            assert acked <= {r[0] for r in m.fetch_all("SELECT id FROM t")}
    finally:
        if second is not None:
            second.close()
        first.close()
    seen, verdict = _rows_seen_by_another_process(path)
    assert acked <= seen and verdict == "ok"


def test_a_second_manager_is_refused_while_a_handle_is_parked_not_served_another_tables_pages(tmp_path):
    """While the handle is parked, a connection opened in this process reads through the removed WAL's index: the
    second manager read pages of ``pairs`` as ``t``'s (one row, NULL), marked the file damaged for every manager and
    process (``<db>.damaged``) from what it misread, and a write through that index goes over another process's WAL
    frames (ConnectionManager.index_removed). Now its connection
    is refused (UNAVAILABLE, saying why) until a recovery has put another file in place; then it serves it."""
    path = tmp_path / "app.db"
    first = DatabaseManager(worker_config(str(path)))
    second = None
    try:
        acked = _park(first, path)
        second = DatabaseManager(worker_config(str(path)))
        with pytest.raises(DatabaseError) as caught:
            second.fetch_all("SELECT id FROM t")  # (was: [(None,)])
        assert caught.value.kind is ErrorKind.UNAVAILABLE and "removed WAL's index" in caught.value.detail
        assert str(second.health().status) != "healthy"
        assert not os.path.exists(f"{path}.damaged")  # no verdict on a file nobody here has read
        assert first.recover().ok
        assert acked <= {r[0] for r in second.fetch_all("SELECT id FROM t")}
    finally:
        if second is not None:
            second.close()
        first.close()
    assert acked <= _rows_seen_by_another_process(path)[0]
