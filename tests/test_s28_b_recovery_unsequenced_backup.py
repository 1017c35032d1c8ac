"""Recovery from a backup that records no redo sequence (session 28: the branch of ``_recover_locked`` that says so
had no test). A backup taken while the redo journal was off holds no sequence; a later start with the journal on
anchors it with a backup of its own. When that newer backup rots on disk, recovery falls back to the older one: it
installs it, replays nothing, and says plainly that the writes after it cannot be replayed (not ok, health degraded)."""

from __future__ import annotations

import json
from pathlib import Path

from test_recovery import config, corrupt, new_db, table

from reliability import DatabaseManager


def test_an_unsequenced_backup_is_installed_with_the_writes_after_it_reported_lost(tmp_path: Path) -> None:
    with new_db(tmp_path, redo_journal=False) as db:
        db.execute("INSERT INTO t (v) VALUES ('before the backup')")
        assert db.backup().last_seq is None
    with DatabaseManager(config(tmp_path, redo_journal=True)) as db:
        db.execute("INSERT INTO t (v) VALUES ('journaled after it')")
        db.connections.close()
        backups = sorted((tmp_path / "app.db.backups").glob("backup-*.sqlite"))
        seqs = [json.loads(b.with_name(b.name + ".json").read_text()).get("last_seq") for b in backups]
        assert seqs[0] is None and seqs[-1] is not None  # (the start anchored the journal with a backup)
        corrupt(backups[-1], "btree")
        corrupt(Path(db.path), "btree")
        report = db.recover()
        assert not report.ok and report.backup == str(backups[0]) and report.replayed == 0
        assert any("records no redo sequence" in p for p in report.problems)
        assert table(db) == {1: "before the backup"}
        assert str(db.health().status) == "degraded"
