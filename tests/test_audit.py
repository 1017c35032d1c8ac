"""Audit log: retries under the shared policy, fallback + exactly-once reconcile, keyed hash chain."""

from __future__ import annotations

import logging
import os
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
    # Not green, and not "tampered" either: the entry names a key that is not configured (see test_audit_keys.py).
    with DatabaseManager(fast_config(db_path, audit_hmac_key="one")) as db:
        db.audit.record("alice", "x", "y")
    with DatabaseManager(fast_config(db_path, audit_hmac_key="two")) as db:
        report = db.audit.verify()
        assert not report.ok and report.verdict == "unverifiable" and report.first_unverified_seq == 1
        assert report.first_broken_seq is None and "not configured" in (report.reason or "")


def test_an_empty_log_verifies_and_lists_nothing(adb: DatabaseManager) -> None:
    assert adb.audit.verify().ok and adb.audit.entries() == []


# -- tail truncation: the keyed anchor (#15 item 8) ---------------------------------------------------------
def _delete_last(db_path: Path, n: int | None) -> None:
    with sqlite3.connect(db_path) as raw:  # the attacker: plain SQL access, no key, no access to the anchor
        if n is None:
            raw.execute("DELETE FROM reliability_audit")
        else:
            raw.execute("DELETE FROM reliability_audit WHERE seq IN "
                        "(SELECT seq FROM reliability_audit ORDER BY seq DESC LIMIT ?)", (n,))


@pytest.mark.parametrize("deleted", [1, 3, None], ids=["last", "last-three", "all"])
def test_deleting_entries_from_the_end_is_detected(adb: DatabaseManager, db_path: Path,
                                                   deleted: int | None) -> None:
    for i in range(5):
        adb.audit.record("alice", "act", f"t{i}")
    assert adb.audit.verify().ok
    _delete_last(db_path, deleted)
    report = adb.audit.verify()
    assert not report.ok and "shortened" in report.reason and report.first_broken_seq == 5
    assert report.checked == (0 if deleted is None else 5 - deleted)


def test_the_anchor_keeps_the_evidence_when_new_entries_follow_a_truncation(adb: DatabaseManager,
                                                                              db_path: Path) -> None:
    for i in range(4):
        adb.audit.record("alice", "act", f"t{i}")
    _delete_last(db_path, None)
    # New entries are not chained onto a log known to be shortened (nor into a file put in its place):
    # they wait in the fallback file, acknowledged as pending.
    kept = [adb.audit.record("bob", "act", f"u{i}") for i in range(6)]
    assert all(e.pending for e in kept)
    report = adb.audit.verify()
    assert not report.ok and "shortened" in report.reason
    health = adb.health()
    assert health.status.value == "degraded" and any("anchor not moved forward" in r for r in health.reasons)
    adb.audit.reanchor("root", "investigated: the test deleted them")
    assert adb.audit.verify().ok
    assert adb.audit.entries(1, include_pending=False)[0].action == "audit.reanchored"
    adb.audit.reconcile()  # the entries kept aside follow the re-anchored head
    assert [e.target for e in adb.audit.entries(6)][::-1] == [f"u{i}" for i in range(6)]
    assert not adb.audit.pending() and adb.audit.verify().ok


def test_the_anchor_file_is_private_and_an_edited_anchor_is_reported(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "act", "t")
    anchor = adb.audit.anchor_path
    assert stat.S_IMODE(anchor.stat().st_mode) == 0o600
    text = anchor.read_text()
    anchor.write_text(text.replace('"seq": 1', '"seq": 0'))
    report = adb.audit.verify()
    assert not report.ok and "MAC does not match" in report.reason
    anchor.unlink()
    report = adb.audit.verify()
    assert not report.ok and "missing" in report.reason


def test_an_entry_rolled_back_in_a_savepoint_does_not_move_the_anchor(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "act", "kept")

    def body() -> None:
        try:
            with adb.transaction():
                adb.audit.append(adb.audit.new_entry("alice", "act", "rolled back"))
                raise RuntimeError("app failure")
        except RuntimeError:
            pass

    adb.run_in_transaction(body)
    assert adb.audit.verify().ok


def test_an_entry_edited_in_the_fallback_file_is_rejected_at_reconcile(db_path: Path) -> None:
    import json

    with DatabaseManager(fast_config(db_path, audit_hmac_key=KEY, busy_timeout_ms=0,
                                     journal_mode="DELETE")) as db:
        db.audit.record("alice", "seed")
        with LockHolder(db_path):
            assert db.audit.record("alice", "flag.set", "beta", {"value": 1}).pending
            assert db.audit.record("bob", "login", "web").pending
        path = db.audit.fallback_path
        for written in db.audit._fallback_files():  # (a failed reconcile may have set the first file aside)
            lines = written.read_text().splitlines()
            edited = [json.dumps(json.loads(line) | {"actor": "mallory"}) if "flag.set" in line else line
                      for line in lines]
            written.write_text("\n".join(edited) + "\n")
        assert [e.actor for e in db.audit.pending()] == ["bob"]
        db.audit.reconcile()
        stored = [(e.actor, e.action) for e in reversed(db.audit.entries(10))]
        assert ("mallory", "flag.set") not in stored and ("alice", "flag.set") not in stored
        assert stored[:2] == [("alice", "seed"), ("bob", "login")]
        assert stored[2] == ("reliability", "audit.fallback_rejected")
        kept = path.with_name(path.name + ".rejected")
        assert "mallory" in kept.read_text() and stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert db.audit.verify().ok


# -- secure by default: a generated key (#15 item 9) -------------------------------------------------------
def test_without_a_configured_key_a_random_key_file_is_generated_and_used(db_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with DatabaseManager(fast_config(db_path)) as db:
            key_file = Path(str(db_path) + ".audit-key")
            assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert len(key_file.read_text().strip()) == 64 and db.audit.key == key_file.read_text().strip().encode()
            assert db.health().extra["audit"]["key_source"] == f"generated:{key_file}"
            db.audit.record("alice", "act", "t")
            first_key = db.audit.key
    finally:
        os.umask(old)
    with DatabaseManager(fast_config(db_path)) as again:  # the next start reuses it
        assert again.audit.key == first_key and again.audit.verify().ok
        assert again.health().extra["audit"]["key_source"] == f"file:{key_file}"
    # An attacker without the key cannot re-chain with the empty key the runtime used to fall back to.
    from reliability.audit import chain_hash

    with sqlite3.connect(db_path) as raw:
        row = raw.execute("SELECT entry_id, ts, action, target, details, prev_hash FROM reliability_audit").fetchone()
        raw.execute("UPDATE reliability_audit SET actor = 'mallory', hash = ?",
                    (chain_hash(b"", row[5], row[0], row[1], "mallory", row[2], row[3], row[4]),))
    with DatabaseManager(fast_config(db_path)) as again:
        assert not again.audit.verify().ok


def test_a_configured_key_wins_and_no_key_file_is_made(db_path: Path, tmp_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, audit_hmac_key="configured",
                                     audit_key_path=str(tmp_path / "k"))) as db:
        assert db.audit.key == b"configured" and db.health().extra["audit"]["key_source"] == "config"
    assert not (tmp_path / "k").exists() and not Path(str(db_path) + ".audit-key").exists()


def test_the_key_path_is_configurable_and_a_planted_link_there_is_refused(db_path: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "attacker-known-key"
    elsewhere.write_text("0" * 64 + "\n")
    link = tmp_path / "keys" / "audit.key"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    with DatabaseManager(fast_config(db_path, audit_key_path=str(link))) as db:
        assert db.audit.key != b"0" * 64
        health = db.health()
        assert health.status.value == "degraded"
        assert any("audit key file cannot be used" in r and "symbolic link" in r for r in health.reasons)


def test_processes_starting_together_agree_on_one_generated_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    key_file = tmp_path / "app.db.audit-key"
    code = ("import sys, time; from reliability.audit import load_or_create_key; "
            "t = float(sys.argv[2]); time.sleep(max(0.0, t - time.time())); "
            "print(load_or_create_key(sys.argv[1])[0].decode())")
    import time

    start = str(time.time() + 1.0)  # all children race for the same moment
    procs = [subprocess.Popen([sys.executable, "-c", code, str(key_file), start], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert keys == {key_file.read_text().strip()} and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- rewinds the runtime makes on purpose re-anchor the log; anyone else's wait for an administrator ------------
def test_restoring_an_older_backup_reanchors_the_log_it_rewound(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "act", "before")
    backup = adb.backup()
    for i in range(2):
        adb.audit.record("alice", "act", f"after{i}")
    adb.restore(backup.path)
    report = adb.audit.verify()
    assert report.ok, report  # the rewind is in the log, not a truncation
    head = adb.audit.entries(1, include_pending=False)[0]
    assert head.action == "audit.reanchored" and head.actor == "reliability"
    assert "restore of backup" in head.details["reason"] and head.details["previous_anchor"]["seq"] == 3
    later = adb.audit.record("bob", "act", "later")
    assert not later.pending  # appended to the restored log, not kept aside
    assert [e.target for e in adb.audit.entries(10)][::-1] == ["before", str(adb.audit.anchor_path), "later"]
    assert adb.health().status.value == "healthy"


def test_a_restore_that_rewinds_nothing_adds_no_entry(adb: DatabaseManager) -> None:
    adb.audit.record("alice", "act", "only")
    backup = adb.backup()
    adb.restore(backup.path)
    assert [e.action for e in adb.audit.entries(10)] == ["act"] and adb.audit.verify().ok


def test_a_recovery_without_the_redo_journal_reanchors_what_it_could_not_bring_back(db_path: Path) -> None:
    from pytest_dbfault.faults import CorruptFault

    with DatabaseManager(fast_config(db_path, audit_hmac_key=KEY, redo_journal=False, auto_recover=False)) as db:
        db.audit.record("alice", "act", "kept")
        assert db.backup().verified
        lost = db.audit.record("alice", "act", "lost")
        CorruptFault(db_path, part="header").inject()  # real damage: the file is no database any more
        report = db.recover()
        assert not report.ok and report.backup  # the backup is back; the report says writes are lost
        entries = db.audit.entries(10, include_pending=False)
        assert lost.entry_id not in [e.entry_id for e in entries]
        assert entries[0].action == "audit.reanchored" and "recovery" in entries[0].details["reason"]
        assert "ok=False" in entries[0].details["reason"]  # the entry says the rewind lost writes
        assert db.audit.verify().ok


def test_restoring_a_backup_from_before_the_audit_log_existed_reanchors_it(adb: DatabaseManager) -> None:
    adb.execute("CREATE TABLE kv (k TEXT)")
    backup = adb.backup()  # no audit table in it yet
    adb.audit.record("alice", "act", "gone")
    adb.restore(backup.path)
    entries = adb.audit.entries(10)
    assert [e.action for e in entries] == ["audit.reanchored"] and adb.audit.verify().ok
