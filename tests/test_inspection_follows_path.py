"""A read-only inspection reports on the file the path names, not on one its handle keeps open after it went.

An :class:`~reliability.Inspector` opens its connection on its first read and keeps it. In rollback-journal mode a
handle reads a deleted or replaced database without any error, so an inspector that had read once went on calling
a database healthy and sound after it was deleted (``health()`` said ``healthy``, ``check_integrity()`` said ok),
and judged the unlinked file after a copy was put at the path. Every report now first checks that the path still
names the file the connection reads, and drops the connection when it does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config, sqlite_module

from pytest_dbfault.faults import DisconnectFault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager, Inspector
from reliability.health import HealthStatus


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def make_db(db_path: Path, journal_mode: str) -> None:
    with DatabaseManager(fast_config(db_path, journal_mode=journal_mode, audit_hmac_key="k")) as db:
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        for n in range(3):
            db.audit.record("alice", f"action-{n}")


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
def test_an_inspector_calls_a_deleted_database_unavailable(tmp_path: Path, journal_mode: str) -> None:
    db_path = tmp_path / "app.db"
    make_db(db_path, journal_mode)
    with Inspector(fast_config(db_path, journal_mode=journal_mode, audit_hmac_key="k")) as view:
        assert view.health().healthy and view.check_integrity().ok  # (the connection is open on the file now)
        with DisconnectFault(db_path, mode="delete", backup_before=True):
            report = view.check_integrity()
            assert not report.ok, "the integrity check judged a file that is gone from the path"
            assert any("unable to open" in p for p in report.problems), report
            health = view.health()
            assert health.status is HealthStatus.UNAVAILABLE, health
        # Put back: the inspector reads the file at the path again.
        assert view.health().healthy and view.check_integrity().ok


def test_an_inspector_judges_the_copy_put_at_the_path(tmp_path: Path) -> None:
    db_path = tmp_path / "app.db"
    make_db(db_path, "DELETE")
    with Inspector(fast_config(db_path, journal_mode="DELETE", audit_hmac_key="k")) as view:
        assert view.audit.verify().ok and view.fetch_one("SELECT x FROM t") == (1,)
        fault = DisconnectFault(db_path, mode="delete", backup_before=True)
        fault.inject()
        fault.heal()  # another file than the one the inspector's handle reads, with the same content
        conn = sqlite_module().connect(str(db_path), isolation_level=None)
        try:
            conn.execute("UPDATE reliability_audit SET details = ? WHERE seq = 2", (json.dumps({"edited": 1}),))
        finally:
            conn.close()
        report = view.audit.verify()
        assert not report.ok and report.first_broken_seq == 2, report
