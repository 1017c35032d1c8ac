"""Audit log: retries under the shared policy, fallback + exactly-once reconcile, keyed hash chain."""

from __future__ import annotations

import logging
import random
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseManager, RetryPolicy

KEY = "test-hmac-key"


@pytest.fixture
def adb(db_path: Path) -> DatabaseManager:
    db = DatabaseManager(fast_config(db_path, audit_hmac_key=KEY, busy_timeout_ms=0))
    yield db
    db.close()


class FakeTime:
    """A clock that only moves when the policy sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_an_entry_is_stored_chained_and_verifiable(adb: DatabaseManager) -> None:
    first = adb.audit.record("alice", "flag.set", "beta", {"value": True})
    second = adb.audit.record("bob", "flag.set", "gamma", {"value": "ünïcødé 'quoted'"})
    assert not first.pending and first.seq == 1 and second.seq == 2
    rows = sqlite3.connect(adb.path).execute("SELECT prev_hash, hash FROM reliability_audit ORDER BY seq").fetchall()
    assert rows[1][0] == rows[0][1] == first.hash
    assert adb.audit.verify().ok and adb.audit.verify().checked == 2
    assert [e.details for e in adb.audit.entries()] == [{"value": "ünïcødé 'quoted'"}, {"value": True}]


def test_a_tampered_entry_is_detected_at_its_position(adb: DatabaseManager) -> None:
    for i in range(4):
        adb.audit.record("alice", "act", f"t{i}", {"i": i})
    with sqlite3.connect(adb.path) as raw:
        raw.execute("UPDATE reliability_audit SET details = '{\"i\":99}' WHERE seq = 3")
    report = adb.audit.verify()
    assert not report.ok and report.first_broken_seq == 3 and "content" in (report.reason or "")


def test_a_deleted_entry_breaks_the_next_link(adb: DatabaseManager) -> None:
    for i in range(4):
        adb.audit.record("alice", "act", f"t{i}")
    with sqlite3.connect(adb.path) as raw:
        raw.execute("DELETE FROM reliability_audit WHERE seq = 2")
    report = adb.audit.verify()
    assert not report.ok and report.first_broken_seq == 3 and "link" in (report.reason or "")


def test_an_entry_rehashed_without_the_key_is_detected(adb: DatabaseManager) -> None:
    from reliability.audit import GENESIS, chain_hash

    adb.audit.record("alice", "act", "t")
    forged = chain_hash(b"wrong key", GENESIS, "x", 1.0, "mallory", "act", "t", "{}")
    with sqlite3.connect(adb.path) as raw:
        raw.execute("UPDATE reliability_audit SET entry_id='x', ts=1.0, actor='mallory', details='{}', hash=?",
                    (forged,))
    assert adb.audit.verify().first_broken_seq == 1


def test_retry_delays_follow_the_exponential_pattern_within_jitter(db_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05, budget=100.0, clock=fake.clock,
                         sleep=fake.sleep, rng=random.Random(7))
    with DatabaseManager(fast_config(db_path, busy_timeout_ms=0), policy=policy) as db:
        db.audit.record("alice", "setup", "x")
        with LockHolder(db_path), caplog.at_level(logging.WARNING, logger="reliability"):
            entry = db.audit.record("alice", "during-lock", "x")
        assert entry.pending
        assert len(fake.sleeps) == 4  # 5 attempts
        expected_rng = random.Random(7)
        expected = [expected_rng.uniform(0.0, min(0.05, 0.01 * 2 ** n)) for n in range(4)]
        assert fake.sleeps == pytest.approx(expected)
        assert all(0.0 <= d <= policy.ceiling(n + 1) for n, d in enumerate(fake.sleeps))
        assert [policy.ceiling(n) for n in (1, 2, 3, 4)] == [0.01, 0.02, 0.04, 0.05]
        attempts_logged = [r for r in caplog.records if "transaction attempt" in r.getMessage()]
        assert len(attempts_logged) == 4


def test_an_outage_sends_entries_to_a_private_fallback_file_reconciled_in_order(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "before", "x")
    with LockHolder(adb.path):
        during = [adb.audit.record("alice", f"during-{i}", "x") for i in range(3)]
        assert all(e.pending for e in during)
        files = adb.audit._fallback_files()
        assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert sum(len(f.read_text().splitlines()) for f in files) == 3
        assert [e.action for e in adb.audit.pending()] == ["during-0", "during-1", "during-2"]
        listed = adb.audit.entries(limit=10, include_pending=True)
        assert [e.action for e in listed[:3]] == ["during-2", "during-1", "during-0"] and listed[0].pending
    adb.audit.record("alice", "after", "x")
    actions = [e.action for e in reversed(adb.audit.entries(limit=10))]
    assert actions == ["before", "during-0", "during-1", "during-2", "after"]
    assert not any(f.exists() for f in files) and adb.audit.verify().ok


def test_reconcile_after_a_crash_before_the_file_was_removed_adds_nothing_twice(adb: DatabaseManager) -> None:
    with LockHolder(adb.path):
        for i in range(3):
            adb.audit.record("alice", f"a{i}", "x")
    saved = adb.audit.fallback_path.with_name("saved")
    shutil.copy(adb.audit.fallback_path, saved)
    assert adb.audit.reconcile() == 3
    shutil.copy(saved, adb.audit.fallback_path)  # as if the process died right after the commit
    assert adb.audit.reconcile() == 0
    assert len(adb.audit.entries(limit=100)) == 3 and adb.audit.verify().ok


@given(st.lists(st.tuples(st.sampled_from(["alice", "bob", "ç'\"x"]), st.booleans()), min_size=1, max_size=8))
def test_no_entry_is_lost_across_outages(tmp_path_factory: pytest.TempPathFactory,
                                         plan: list[tuple[str, bool]]) -> None:
    path = tmp_path_factory.mktemp("audit") / "a.db"
    fake = FakeTime()
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001, budget=10, clock=fake.clock,
                         sleep=fake.sleep)
    with DatabaseManager(fast_config(path, audit_hmac_key=KEY, busy_timeout_ms=0), policy=policy) as db:
        db.audit.record("setup", "create", "")
        ids = []
        for n, (actor, outage) in enumerate(plan):
            if outage:
                with LockHolder(path):
                    ids.append(db.audit.record(actor, f"op{n}", str(n)).entry_id)
            else:
                ids.append(db.audit.record(actor, f"op{n}", str(n)).entry_id)
        db.audit.reconcile()
        stored = [e.entry_id for e in reversed(db.audit.entries(limit=1000)) if e.action != "create"]
        assert stored == ids
        assert db.audit.pending() == [] and db.audit.verify().ok


def test_entries_filter_by_actor_action_and_time(adb: DatabaseManager) -> None:
    a = adb.audit.record("alice", "flag.set", "x")
    adb.audit.record("bob", "flag.set", "y")
    adb.audit.record("alice", "login", "")
    assert [e.target for e in adb.audit.entries(actor="alice", action="flag.set")] == ["x"]
    assert [e.actor for e in adb.audit.entries(limit=2)] == ["alice", "bob"]
    assert len(adb.audit.entries(since=a.ts)) == 3 and adb.audit.entries(since=a.ts + 10**6) == []


def test_bad_entries_are_refused_with_the_field_named(adb: DatabaseManager) -> None:
    with pytest.raises(ValueError, match="actor must be a non-empty string"):
        adb.audit.record("", "x")
    with pytest.raises(ValueError, match="details must be JSON-serializable"):
        adb.audit.record("a", "x", "t", {"o": object()})
    with pytest.raises(ValueError, match="limit must be a positive"):
        adb.audit.entries(limit=0)


def test_verifying_with_another_key_fails_at_the_first_entry(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, audit_hmac_key="one")) as db:
        db.audit.record("alice", "x", "y")
    with DatabaseManager(fast_config(db_path, audit_hmac_key="two")) as db:
        assert db.audit.verify().first_broken_seq == 1


def test_an_empty_log_verifies_and_lists_nothing(adb: DatabaseManager) -> None:
    assert adb.audit.verify().ok and adb.audit.entries() == []
