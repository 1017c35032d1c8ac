"""A one-off bad read is no integrity verdict (issue #15: a transient error is never a verdict).

A short read comes back zero-filled, so SQLite reports the page as malformed: exactly what damage on
disk looks like. The integrity check confirms a failure on a fresh connection before it is a verdict;
real damage fails both reads.
"""

from __future__ import annotations

import logging

from runtime_helpers import fast_config

from pytest_dbfault.vfs.faults import ShortReadFault
from reliability import DatabaseManager
from reliability.health import check_integrity


def test_a_single_short_read_during_the_check_does_not_mark_an_intact_file_bad(needs_vfs, make_db, caplog):
    db = make_db()
    caplog.set_level(logging.WARNING, logger="reliability.health")
    # Read 1 is the header probe SQLite tolerates short; read 2 is page 1 of the check's connection.
    with ShortReadFault(db, nth=2) as fault:
        report = check_integrity(db)
    assert fault.fired == 1, "the short read happened during the check"
    assert report.ok, report.problems
    assert "passed on a fresh read" in caplog.text


def test_a_short_read_on_every_read_is_still_reported(needs_vfs, make_db):
    db = make_db()
    with ShortReadFault(db, persistent=True):
        report = check_integrity(db)
    assert not report.ok


def test_the_runtime_stays_healthy_after_a_one_off_short_read_in_its_check(runtime_through_vfs, tmp_path):
    db = DatabaseManager(fast_config(tmp_path / "app.db", auto_recover=True))
    try:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t (v) VALUES ('kept')")
        # Read 3 of the check's connection is a b-tree page here (the runtime's file is in WAL mode):
        # unfixed, the check reported "Page 3: unable to get the page" on this intact file.
        with ShortReadFault(db.path, nth=3) as fault:
            report = db.check_integrity()
        assert fault.fired == 1
        assert report.ok, report.problems
        assert str(db.health().status) == "healthy", db.health().reasons
        assert db.fetch_all("SELECT v FROM t") == [("kept",)]
        assert not list(tmp_path.glob("*quarantine*")), "a healthy file was quarantined"
    finally:
        db.close()


def test_the_read_only_inspection_confirms_a_failure_on_a_fresh_read_too(needs_vfs, make_db, caplog):
    # `reliability check` reads through the Inspector: the same rule as the runtime's own check (one place).
    from reliability import ReliabilityConfig
    from reliability.inspection import Inspector

    db = make_db()
    caplog.set_level(logging.WARNING, logger="reliability.health")
    # Read 1 is the header probe SQLite tolerates short; read 2 is page 1 of the inspection's connection.
    with Inspector(ReliabilityConfig(db_path=str(db))) as view, ShortReadFault(db, nth=2) as fault:
        report = view.check_integrity()
    assert fault.fired == 1, "the short read happened during the check"
    assert report.ok, report.problems
    assert "passed on a fresh read" in caplog.text
    with Inspector(ReliabilityConfig(db_path=str(db))) as view, ShortReadFault(db, persistent=True):
        assert not view.check_integrity().ok
