"""Reads of the runtime's own tables on a fresh database: an empty answer, no logged or counted error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseManager, Inspector, admin


def test_reads_of_a_fresh_database_through_the_api_log_and_count_no_error(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="reliability"), \
            DatabaseManager(fast_config(tmp_path / "app.db", admin_actors="alice")) as db:
        assert admin.list_flags(db).value == []
        assert admin.get_flag(db, "beta").value is None
        assert admin.audit(db, actor="alice", caller="alice").value == []
        assert db.audit.verify().ok and db.audit.entries() == []
        assert db.health().errors == {}
    assert not [r for r in caplog.records if "no such table" in r.getMessage() or r.levelno >= logging.ERROR]


def test_the_inspector_reads_a_fresh_database_as_empty(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        db.execute("CREATE TABLE app (x)")
    with Inspector(fast_config(tmp_path / "app.db")) as view:
        assert view.flags() == [] and view.audit_entries(5) == [] and view.audit.verify().ok
        assert view.health().healthy and view.check_integrity().ok
