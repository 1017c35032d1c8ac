"""Admin commands under real faults: a permission check that cannot read refuses; flag reads say unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import LockedFault
from reliability import DatabaseManager, admin


@pytest.fixture
def adb(tmp_path: Path) -> Iterator[DatabaseManager]:
    # Rollback journal: an exclusive lock keeps readers out too.
    db = DatabaseManager(fast_config(tmp_path / "app.db", journal_mode="DELETE", admin_actors="alice",
                                     audit_hmac_key="k"))
    db.commands.recheck_interval = 0
    yield db
    db.close()


def test_a_permission_check_that_cannot_read_its_table_refuses_and_the_refusal_is_audited(
        adb: DatabaseManager) -> None:
    adb.execute("CREATE TABLE admins (name TEXT PRIMARY KEY)")
    adb.execute("INSERT INTO admins VALUES ('bob')")

    def from_table(actor: str, command: str) -> bool:
        return adb.fetch_one("SELECT 1 FROM admins WHERE name = ?", (actor,)) is not None

    admin.register(adb, permission=from_table)
    assert admin.is_authorized(adb, "bob", "flags.set")
    with LockedFault(adb.path, mode="exclusive"):
        assert not admin.is_authorized(adb, "bob", "flags.set")  # an error must refuse, never allow
        result = admin.set_flag(adb, "beta", True, "bob")
        assert result.status == "denied" and "nothing was changed" in result.message
        denial = adb.audit.pending()
        assert [(e.actor, e.action, e.target) for e in denial] == [("bob", "admin.denied", "beta")]
    assert admin.get_flag(adb, "beta").value is None
    assert admin.set_flag(adb, "beta", True, "bob").ok  # readable again: bob is allowed
    actions = [(e.actor, e.action, e.pending) for e in adb.audit.entries(limit=10)]
    assert actions == [("bob", "flag.set", False), ("bob", "admin.denied", False)]


def test_reading_flags_while_readers_are_locked_out_says_unavailable(adb: DatabaseManager) -> None:
    assert admin.set_flag(adb, "beta", "on", "alice").ok
    with LockedFault(adb.path, mode="exclusive"):
        one = admin.get_flag(adb, "beta")
        every = admin.list_flags(adb)
        assert (one.status, one.fault, one.value) == ("unavailable", "busy", None)
        assert (every.status, every.fault, every.value) == ("unavailable", "busy", None)
    assert admin.get_flag(adb, "beta").value.value == "on"
    assert [f.name for f in admin.list_flags(adb).value] == ["beta"]
