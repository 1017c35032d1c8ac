"""Health says why a manager refuses the database, not only that it does (found in session 26).

A manager started in a process where another manager's handle on a removed ``-wal`` is parked refuses every open
(UNAVAILABLE: a connection opened here would read the file through the removed WAL's index; see
``connection._READS_THROUGH_PARKED``). Its health said "connection check found: unavailable" and *degraded*: neither
what is missing nor what to do (``reliability recover``), and understated (nothing is served). The refusal's own
detail is the reason now, and the status is *unavailable*. Real files, a real removal, another real process.
"""

from __future__ import annotations

from pathlib import Path

from redo_worker import config as worker_config
from test_s26_parked_recovery import _park

from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind


def test_health_of_a_manager_refusing_the_database_gives_the_refusal_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    first = DatabaseManager(worker_config(str(path)))
    second = None
    try:
        _park(first, path)
        second = DatabaseManager(worker_config(str(path)))
        try:
            second.fetch_all("SELECT 1")
        except DatabaseError as exc:  # what the caller is told: the refusal, with its detail
            assert exc.kind is ErrorKind.UNAVAILABLE
            refusal = exc.detail
        else:
            raise AssertionError("the second manager served a read through the removed WAL's index")
        report = second.health()
        assert str(report.status) == "unavailable", report  # (was: degraded)
        assert any(refusal in reason for reason in report.reasons), report.reasons  # (was: only the kind)
        assert any("`reliability recover`" in reason for reason in report.reasons), report.reasons
        assert first.recover().ok
        after = second.health()  # (a file another manager installed: opening is accepted again)
        assert not any(reason.startswith("connection check found") for reason in after.reasons), after.reasons
        assert second.fetch_all("SELECT count(*) FROM t") == [(3,)]
    finally:
        if second is not None:
            second.close()
        first.close()
