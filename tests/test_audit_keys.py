"""Audit key rotation: each entry names its key (a key id), retired keys still verify, unknown keys are no verdict.

Rotating the audit key used to make ``verify()`` call every entry written under the old key tampered (a false
red on an honest log). Now each entry records the id of its key, ``audit_previous_keys`` lists retired keys that
still verify, new entries always use the current key, and an entry under a key that is not configured is reported
as *unverifiable*: not green, and not "tampered". Every test runs the real runtime on real files in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import CLI_ENV, LockHolder, cli_runner, fast_config, sqlite_module

from reliability import DatabaseManager, ReliabilityConfig, cli
from reliability.audit import chain_hash, key_id
from reliability.config import ConfigError

A, B, C = "audit-key-A-" + "a" * 32, "audit-key-B-" + "b" * 32, "audit-key-C-" + "c" * 32



@contextlib.contextmanager
def raw_connection(path: Path) -> Iterator[Any]:
    """An autocommit connection of the runtime's own SQLite build, closed after use: a second library's connection
    left open in the process (``with sqlite3.connect()`` does not close) drops the runtime's locks and WAL under it
    (the pysqlite3 cell: disk I/O error)."""
    conn = sqlite_module().connect(str(path), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()

def kid(key: str) -> str:
    """The key id as documented: the first 8 bytes of HMAC(key, "dbfault-audit-key-id"), in hex."""
    return hmac.new(key.encode(), b"dbfault-audit-key-id", hashlib.sha256).hexdigest()[:16]


def manager(db_path: Path, key: str, previous: str = "", **extra: object) -> DatabaseManager:
    return DatabaseManager(fast_config(db_path, audit_hmac_key=key, audit_previous_keys=previous, **extra))


def write(db_path: Path, key: str, n: int, previous: str = "", tag: str = "") -> None:
    with manager(db_path, key, previous) as db:
        for i in range(n):
            db.audit.record("alice", "act", f"{tag}{i}", {"i": i})


def stored(db_path: Path) -> list[tuple[int, str]]:
    with raw_connection(db_path) as raw:
        return raw.execute("SELECT seq, key_id FROM reliability_audit ORDER BY seq").fetchall()


# -- the defect, and the rotation ---------------------------------------------------------------------------------
def test_a_rotated_key_with_the_old_one_retired_keeps_an_honest_log_green(db_path: Path) -> None:
    write(db_path, A, 3)
    with manager(db_path, B, previous=A) as db:
        assert db.audit.verify().ok  # (before this change: "content does not match its hash" at entry 1)
        db.audit.record("bob", "act", "after")
        report = db.audit.verify()
        assert report.ok and report.verdict == "ok" and report.checked == 4
        assert [e.key_id for e in reversed(db.audit.entries())] == [kid(A)] * 3 + [kid(B)]
        assert db.health().extra["audit"]["key_id"] == kid(B) == key_id(B.encode())
        assert db.health().extra["audit"]["previous_key_ids"] == [kid(A)]
        assert db.audit.anchor_problem is None
    assert stored(db_path) == [(1, kid(A)), (2, kid(A)), (3, kid(A)), (4, kid(B))]
    # A second rotation: both retired keys listed (in any order), new entries under C.
    write(db_path, C, 1, previous=f" {B} , {A} ")
    with manager(db_path, C, previous=f"{A},{B}") as db:
        assert db.audit.verify().ok and stored(db_path)[-1] == (5, kid(C))


def test_an_entry_under_a_key_not_configured_is_unverifiable_not_tampered_and_not_green(db_path: Path) -> None:
    write(db_path, A, 2)
    write(db_path, B, 1, previous=A)
    with manager(db_path, B) as db:  # the retired key forgotten
        report = db.audit.verify()
    assert not report.ok and report.verdict == "unverifiable"
    assert report.first_broken_seq is None and report.first_broken_id is None  # nothing is called broken
    assert report.unverified == 2 and report.first_unverified_seq == 1 and report.unknown_key_ids == (kid(A),)
    assert f"cannot be verified: key {kid(A)} not configured" in (report.reason or "")
    assert "RELIABILITY_AUDIT_PREVIOUS_KEYS" in (report.reason or "") and "tamper" not in (report.reason or "")
    assert report.to_dict()["verdict"] == "unverifiable"


def test_a_tampered_entry_is_broken_under_either_key(db_path: Path) -> None:
    write(db_path, A, 3)
    write(db_path, B, 2, previous=A)
    for seq in (2, 4):  # one under the retired key, one under the current key
        with raw_connection(db_path) as raw:
            before = raw.execute("SELECT details FROM reliability_audit WHERE seq = ?", (seq,)).fetchone()[0]
            raw.execute("UPDATE reliability_audit SET details = '{\"i\":99}' WHERE seq = ?", (seq,))
        with manager(db_path, B, previous=A) as db:
            report = db.audit.verify()
        assert not report.ok and report.verdict == "broken" and report.first_broken_seq == seq
        assert "content does not match" in (report.reason or "")
        with raw_connection(db_path) as raw:
            raw.execute("UPDATE reliability_audit SET details = ? WHERE seq = ?", (before, seq))
    with manager(db_path, B, previous=A) as db:
        assert db.audit.verify().ok


def test_a_tampered_entry_is_broken_even_when_other_entries_are_unverifiable(db_path: Path) -> None:
    write(db_path, A, 2)
    write(db_path, B, 2, previous=A)
    with raw_connection(db_path) as raw:
        raw.execute("UPDATE reliability_audit SET actor = 'mallory' WHERE seq = 4")
    with manager(db_path, B) as db:  # A forgotten: entries 1-2 unverifiable, entry 4 checked and broken
        report = db.audit.verify()
    assert not report.ok and report.verdict == "broken" and report.first_broken_seq == 4
    assert report.unverified == 2


@pytest.mark.parametrize("how", ["delete_last_old", "delete_first_new", "swap"])
def test_the_chain_across_a_rotation_still_detects_deletion_and_reordering(db_path: Path, how: str) -> None:
    write(db_path, A, 3)
    write(db_path, B, 3, previous=A)
    with raw_connection(db_path) as raw:
        if how == "delete_last_old":
            raw.execute("DELETE FROM reliability_audit WHERE seq = 3")
        elif how == "delete_first_new":
            raw.execute("DELETE FROM reliability_audit WHERE seq = 4")
        else:  # entries 3 (key A) and 4 (key B) change places
            raw.execute("UPDATE reliability_audit SET seq = -1 WHERE seq = 3")
            raw.execute("UPDATE reliability_audit SET seq = 3 WHERE seq = 4")
            raw.execute("UPDATE reliability_audit SET seq = 4 WHERE seq = -1")
    with manager(db_path, B, previous=A) as db:
        report = db.audit.verify()
    at = {"delete_last_old": 4, "delete_first_new": 5, "swap": 3}[how]  # the entry whose link no longer holds
    assert not report.ok and report.verdict == "broken" and report.first_broken_seq == at
    assert "link" in (report.reason or "")


@pytest.mark.parametrize("to", ["retired", "empty", "unknown"])
def test_an_edited_key_id_is_never_green(db_path: Path, to: str) -> None:
    write(db_path, A, 2)
    write(db_path, B, 1, previous=A)
    new_id = {"retired": kid(A), "empty": "", "unknown": "0123456789abcdef"}[to]
    with raw_connection(db_path) as raw:
        raw.execute("UPDATE reliability_audit SET key_id = ? WHERE seq = 3", (new_id,))
    with manager(db_path, B, previous=A) as db:
        report = db.audit.verify()
    assert not report.ok
    if to == "unknown":  # it cannot be checked: reported so, never passed
        assert report.verdict == "unverifiable" and report.unknown_key_ids == ("0123456789abcdef",)
    else:  # the hash covers the key id (and the old format's message differs from the new one's)
        assert report.verdict == "broken" and report.first_broken_seq == 3


def test_an_entry_rechained_with_a_retired_key_after_the_rotation_is_broken(db_path: Path) -> None:
    # Whoever holds a retired key still cannot rewrite the entries chained before the rotation: the first
    # entry under the new key covers the last old one's hash.
    write(db_path, A, 2)
    write(db_path, B, 1, previous=A)
    with raw_connection(db_path) as raw:
        seq, entry_id, ts, action, target, details, prev = raw.execute(
            "SELECT seq, entry_id, ts, action, target, details, prev_hash FROM reliability_audit WHERE seq = 2"
        ).fetchone()
        forged = chain_hash(A.encode(), prev, entry_id, ts, "mallory", action, target, details, kid(A))
        raw.execute("UPDATE reliability_audit SET actor = 'mallory', hash = ? WHERE seq = 2", (forged,))
    with manager(db_path, B, previous=A) as db:
        report = db.audit.verify()
    assert not report.ok and report.verdict == "broken" and report.first_broken_seq == 3


# -- entries written before key ids ---------------------------------------------------------------------------------
OLD_TABLE = ("CREATE TABLE reliability_audit (seq INTEGER PRIMARY KEY, entry_id TEXT NOT NULL UNIQUE, "
             "ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, "
             "details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)")


def write_old_format(db_path: Path, key: str, n: int) -> None:
    """What the runtime wrote before key ids, literally: the old table, the old hash message, the old anchor."""
    prev = "0" * 64
    with raw_connection(db_path) as raw:
        raw.execute(OLD_TABLE)
        for i in range(1, n + 1):
            entry_id, ts, details = f"old{i:029d}", 1700000000.0 + i, json.dumps({"i": i}, separators=(",", ":"))
            message = json.dumps([prev, entry_id, ts, "alice", "act", f"t{i}", details], ensure_ascii=False)
            digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
            raw.execute("INSERT INTO reliability_audit (entry_id, ts, actor, action, target, details, prev_hash, "
                        "hash) VALUES (?, ?, 'alice', 'act', ?, ?, ?, ?)",
                        (entry_id, ts, f"t{i}", details, prev, digest))
            prev = digest
    anchor_mac = hmac.new(key.encode(), json.dumps(["anchor", n, prev]).encode(), hashlib.sha256).hexdigest()
    fd = os.open(f"{db_path}.audit-anchor", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, json.dumps({"seq": n, "hash": prev, "mac": anchor_mac}).encode())
    os.close(fd)


def test_old_format_entries_verify_under_the_current_key_then_under_a_retired_one(db_path: Path) -> None:
    write_old_format(db_path, A, 2)
    with manager(db_path, A) as db:
        report = db.audit.verify()  # read only: the old table is not altered by a read
        assert report.ok and report.checked == 2
        assert [e.key_id for e in db.audit.entries()] == ["", ""]
        with raw_connection(db_path) as raw:
            assert "key_id" not in [r[1] for r in raw.execute("PRAGMA table_info(reliability_audit)")]
        db.audit.record("bob", "act", "new")  # the column is added, the old entries keep ""
        assert db.audit.verify().ok and db.audit.anchor_problem is None
    assert stored(db_path) == [(1, ""), (2, ""), (3, kid(A))]
    with manager(db_path, B, previous=A) as db:  # rotated: the old-format entries verify under the retired key
        assert db.audit.verify().ok
    with manager(db_path, B) as db:  # A forgotten: the old-format entries cannot name a key, so they are red
        report = db.audit.verify()
    assert not report.ok and report.verdict == "broken" and report.first_broken_seq == 1
    assert "written before key ids" in (report.reason or "")


def test_an_old_format_entry_edited_is_broken(db_path: Path) -> None:
    write_old_format(db_path, A, 3)
    with raw_connection(db_path) as raw:
        raw.execute("UPDATE reliability_audit SET target = 'elsewhere' WHERE seq = 2")
    with manager(db_path, B, previous=A) as db:
        report = db.audit.verify()
    assert not report.ok and report.first_broken_seq == 2


def test_the_read_only_command_line_verifies_an_old_format_log_and_a_rotated_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    env = CLI_ENV.replace("RELIABILITY_AUDIT_HMAC_KEY=cli-key", f"RELIABILITY_AUDIT_HMAC_KEY={A}")
    run = cli_runner(tmp_path, capsys, monkeypatch, env)
    write_old_format(run.db, A, 2)
    code, out, _ = run("verify-audit")
    assert code == cli.EXIT_OK and "audit chain ok (2 entries)" in out
    write(run.db, B, 1, previous=A)
    code, out, _ = run("verify-audit")  # the command line still has only A: B's entry names a key it lacks
    assert code == cli.EXIT_UNHEALTHY and "NOT VERIFIED" in out and f"key {kid(B)} not configured" in out
    assert "BROKEN" not in out
    doc = json.loads(run("verify-audit", json_out=True)[1])
    assert doc["value"]["verdict"] == "unverifiable" and doc["value"]["unknown_key_ids"] == [kid(B)]
    run.env.write_text(env.replace(f"RELIABILITY_AUDIT_HMAC_KEY={A}",
                                   f"RELIABILITY_AUDIT_HMAC_KEY={B}\nRELIABILITY_AUDIT_PREVIOUS_KEYS={A}"))
    code, out, _ = run("verify-audit")
    assert code == cli.EXIT_OK and "audit chain ok (3 entries)" in out
    code, out, _ = run("audit")
    assert code == cli.EXIT_OK and f"[key {kid(B)}]" in out.splitlines()[0] and "[key" not in out.splitlines()[-1]
    assert [e["key_id"] for e in json.loads(run("audit", json_out=True)[1])["value"]] == [kid(B), "", ""]
    with raw_connection(run.db) as raw:
        raw.execute("UPDATE reliability_audit SET actor = 'eve' WHERE seq = 1")
    code, out, _ = run("verify-audit")
    assert code == cli.EXIT_UNHEALTHY and "BROKEN at entry 1" in out


# -- the anchor and the fallback file across a rotation --------------------------------------------------------------
def test_the_anchor_written_under_a_retired_key_stays_valid_and_moves_on_under_the_new_key(db_path: Path) -> None:
    write(db_path, A, 2)
    anchor = Path(f"{db_path}.audit-anchor")
    assert json.loads(anchor.read_text())["key_id"] == kid(A)
    with manager(db_path, B, previous=A) as db:
        db.audit.record("bob", "act", "x")
        assert db.audit.anchor_problem is None and db.audit.verify().ok
    assert json.loads(anchor.read_text())["key_id"] == kid(B) and stat.S_IMODE(anchor.stat().st_mode) == 0o600


@pytest.mark.parametrize("edit", ["unknown_key", "forged_mac"])
def test_an_anchor_under_an_unknown_key_is_unverifiable_and_a_forged_one_broken(db_path: Path, edit: str) -> None:
    write(db_path, A, 2)
    anchor = Path(f"{db_path}.audit-anchor")
    doc = json.loads(anchor.read_text())
    if edit == "unknown_key":
        doc["key_id"] = "0123456789abcdef"
    else:
        doc["mac"] = "0" * 64
    anchor.write_text(json.dumps(doc))
    with manager(db_path, A) as db:
        report = db.audit.verify()
    assert not report.ok
    if edit == "unknown_key":
        assert report.verdict == "unverifiable" and "anchor cannot be verified: key 0123456789abcdef" in report.reason
    else:
        assert report.verdict == "broken" and "MAC does not match" in (report.reason or "")


def test_fallback_entries_written_under_the_old_key_are_reconciled_after_the_rotation(db_path: Path) -> None:
    with manager(db_path, A, busy_timeout_ms=0) as db:
        db.audit.record("alice", "before", "x")
        with LockHolder(db_path):
            pending = [db.audit.record("alice", f"during-{i}", "x") for i in range(2)]
        assert all(e.pending for e in pending)
        fallback = db.audit.fallback_path
        db.audit.reconcile = lambda *a, **k: 0  # type: ignore[method-assign]  # (leave them for the next start)
    lines = [line for f in (Path(f"{fallback}.reconciling"), fallback) if f.exists()
             for line in f.read_text().splitlines()]
    assert [json.loads(line)["key_id"] for line in lines] == [kid(A)] * 2
    with manager(db_path, B, previous=A) as db:
        assert db.audit.try_reconcile() == 2
        actions = [e.action for e in reversed(db.audit.entries())]
        assert actions == ["before", "during-0", "during-1"] and db.audit.verify().ok
        assert not Path(f"{fallback}.rejected").exists()


def test_a_fallback_line_under_a_key_not_configured_is_set_aside_as_unverifiable_not_as_edited(db_path: Path) -> None:
    with manager(db_path, A, busy_timeout_ms=0) as db:
        db.audit.record("alice", "before", "x")
        with LockHolder(db_path):
            assert db.audit.record("alice", "during", "x").pending
        fallback = db.audit.fallback_path
        db.audit.reconcile = lambda *a, **k: 0  # type: ignore[method-assign]
    with manager(db_path, B) as db:  # A not listed
        assert db.audit.pending() == []  # not taken for genuine
        db.audit.try_reconcile()
        noted = db.audit.entries(action="audit.fallback_rejected")
    assert len(noted) == 1 and f"key {kid(A)} not configured" in noted[0].details["reason"]
    assert "edited" not in noted[0].details["reason"]
    rejected = Path(f"{fallback}.rejected")
    assert "during" in rejected.read_text() and stat.S_IMODE(rejected.stat().st_mode) == 0o600


# -- the setting ----------------------------------------------------------------------------------------------------
def test_the_retired_keys_come_from_the_environment_and_are_masked(tmp_path: Path) -> None:
    cfg = ReliabilityConfig.from_env(None, environ={"RELIABILITY_AUDIT_PREVIOUS_KEYS": f"{A}, {B}"},
                                     db_path=str(tmp_path / "app.db"))
    assert cfg.audit_previous_key_list == (A, B)
    assert cfg.to_dict()["audit_previous_keys"] == "***" and A not in json.dumps(cfg.to_dict())
    assert ReliabilityConfig(db_path="x.db").audit_previous_key_list == ()


@pytest.mark.parametrize("value", [f"{A},,{B}", f"{A},", f",{A}", " , "])
def test_an_empty_retired_key_is_refused_naming_the_setting_without_echoing_the_keys(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        ReliabilityConfig.from_mapping({"RELIABILITY_AUDIT_PREVIOUS_KEYS": value})
    assert [p[0] for p in err.value.problems] == ["RELIABILITY_AUDIT_PREVIOUS_KEYS"]
    assert "empty key between commas" in str(err.value) and A not in str(err.value)


# -- a stored MAC that is not ASCII (compare_digest refuses to compare such strings) -----------------------------
def test_a_non_ascii_hash_in_the_file_is_reported_broken_not_raised(db_path: Path) -> None:
    write(db_path, A, 2)
    with raw_connection(db_path) as raw:
        raw.execute("UPDATE reliability_audit SET hash = 'é' WHERE seq = 2")
    with manager(db_path, A) as db:
        report = db.audit.verify()  # (raised TypeError before)
    assert not report.ok and report.verdict == "broken" and report.first_broken_seq == 2


def test_a_non_ascii_anchor_mac_is_invalid_and_entries_are_still_recorded(db_path: Path) -> None:
    write(db_path, A, 1)
    anchor = Path(f"{db_path}.audit-anchor")
    anchor.write_text(json.dumps(json.loads(anchor.read_text()) | {"mac": "é"}))
    with manager(db_path, A) as db:
        report = db.audit.verify()
        assert not report.ok and report.verdict == "broken" and "MAC does not match" in (report.reason or "")
        entry = db.audit.record("alice", "act", "after")  # the anchor is read at each append: no TypeError
        assert entry.seq == 2 and "MAC does not match" in (db.audit.anchor_problem or "")
