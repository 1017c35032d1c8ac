"""Real-fault regression tests of runtime bugs the under-fault machine's replace round met (#14, session 6).

The database file (with its -wal) is replaced by an empty database while a manager runs, an audit entry is
recorded, and the original is put back. ``audit.record`` used to answer the entry stored in the database
(``pending=False``): it went into the stand-in, gone once the original was back, and ``audit.verify()`` then
called the log intact: an acknowledged audit entry lost silently (P15). The runtime saw it (it logged "audit
anchor ... not moved forward: the anchored entry N is no longer in the chain") and acknowledged anyway. Now an
entry is never appended to a file whose chain lacks the anchored head: the transaction rolls back and
``record`` keeps the entry in the fallback file until the anchored log is back (reconcile) or re-anchored.

The same root, for an admin write: ``admin.set_flag`` answered "Flag 'beta' is now off" while the file was
replaced (``_write_flag`` creates its table on demand, so the write succeeded in the stand-in), and once the
original was back the flag read "on" again. Its audit entry is appended in the same transaction, so the
refusal above now keeps the flag change out of the stand-in too (queued, replayed into the original).
Writes to tables the runtime does not create (the application's) fail in a stand-in by themselves ("no such
table"); a stand-in that has them is the case the redo-journal checks of a reopened file are for.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from pytest_dbfault.faults import make_fault
from pytest_dbfault.runtime_config import FAST_TEST_SETTINGS
from reliability import DatabaseManager, ReliabilityConfig, admin


def _stored_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone() is None:
            return []
        return [r[0] for r in conn.execute("SELECT entry_id FROM reliability_audit ORDER BY seq")]
    finally:
        conn.close()


def _fallback_ids(path: Path) -> list[str]:
    ids: list[str] = []
    for p in (path.with_name(path.name + ".reconciling"), path):
        if p.exists():
            ids += [json.loads(line)["entry_id"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return ids


def test_an_audit_entry_recorded_while_the_file_is_replaced_is_not_lost(tmp_path: Any) -> None:
    path = tmp_path / "app.db"
    config = ReliabilityConfig(db_path=str(path), **{**FAST_TEST_SETTINGS, "busy_timeout_ms": 0})
    db = DatabaseManager(config)
    try:
        db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        first = db.audit.record("ops", "flag.set", "beta", {"value": "on"})
        fault = make_fault("disconnect_replace", str(path))  # an empty database at the path
        fault.inject()
        try:
            during = db.audit.record("ops", "flag.set", "beta", {"value": "off"})
        finally:
            fault.heal()
        db.audit.reconcile()
        kept = _stored_ids(path) + _fallback_ids(Path(db.audit.fallback_path))
        assert first.entry_id in kept  # (the original's entry: the setup holds)
        assert during.entry_id in kept, (
            f"entry {during.entry_id} was acknowledged (pending={during.pending}) but is neither in the database "
            f"put back nor in the fallback file; verify() says {db.audit.verify()}")
    finally:
        db.close()


def test_a_flag_set_while_the_file_is_replaced_is_not_lost(tmp_path: Any) -> None:
    path = tmp_path / "app.db"
    config = ReliabilityConfig(db_path=str(path), **{**FAST_TEST_SETTINGS, "busy_timeout_ms": 0,
                                                     "admin_actors": "ops"})
    db = DatabaseManager(config)
    try:
        assert admin.set_flag(db, "beta", "on", "ops").ok
        fault = make_fault("disconnect_replace", str(path))  # an empty database at the path
        fault.inject()
        try:
            during = admin.set_flag(db, "beta", "off", "ops")
        finally:
            fault.heal()
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            stored = json.loads(conn.execute("SELECT value FROM reliability_flags WHERE name = 'beta'").fetchone()[0])
        finally:
            conn.close()
        queued = len(db.commands.queue)
        # Acknowledged (ok, or queued to be replayed into the original), or refused: never acknowledged and gone.
        assert during.status not in ("ok", "queued") or stored == "off" or queued, (
            f"set_flag answered {during.status!r} ({during.message}) under the replaced file; the original put "
            f"back holds beta={stored!r} and nothing is queued")
    finally:
        db.close()
