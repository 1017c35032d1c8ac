"""The backup machine's rule ``take_backup`` judges that a backup is one self-contained file (session 25 surviving
mutant ``durability/backup.py:146``, the copy's ``PRAGMA journal_mode = DELETE`` dropped): the module's own words,
"A self-contained file: no -wal beside it, so copying or renaming it is safe". A backup left a WAL database says so to
``PRAGMA journal_mode``, and every read-only look at it (the runtime's own verification before a restore among them)
leaves a ``-wal`` and a ``-shm`` beside it in the backup directory.

The rule is called directly on a fresh machine (no Hypothesis search), once against the real runtime (it passes) and
once against a runtime whose copies keep the source's WAL mode (it fails)."""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import backup as backup_module


def take_backups(tmp_path, n: int = 2) -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset({"backup"}))

    def call(m: Any) -> None:
        for k in range(n):
            m.upsert(k)
            m.take_backup(k % 2 == 1)

    run_and_tear_down(machine, call)


def test_the_rule_passes_on_the_runtime(tmp_path):
    take_backups(tmp_path)


def test_it_bites_a_backup_left_in_wal_mode(tmp_path, monkeypatch):
    # The copy is taken from a WAL database and never switched to a rollback journal: it stays a WAL database.
    real_record, real_read = backup_module.record_sequence, backup_module.read_sequence

    def record_sequence(conn: Any, seq: int) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        real_record(conn, seq)

    def read_sequence(path_or_conn: Any, module: Any = None) -> Any:
        if not isinstance(path_or_conn, (str, bytes)) and hasattr(path_or_conn, "execute"):
            path_or_conn.execute("PRAGMA journal_mode = WAL")
        return real_read(path_or_conn, module)

    monkeypatch.setattr(backup_module, "record_sequence", record_sequence)
    monkeypatch.setattr(backup_module, "read_sequence", read_sequence)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*is not a self-contained file: "
                                             r"journal_mode 'wal'"):
        take_backups(tmp_path)
