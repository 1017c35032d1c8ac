"""A restore moves the database's redo sequence past every writer's, not only the restoring manager's.

Restoring drops the writes made after the backup, by every manager. Another manager's journal still holds its
records of them; if the restored file's sequence stays at the backup's (or at what the restoring manager itself
saw), the restoring manager's next writes take the same sequence numbers, and a later recovery finds two candidate
records per sequence: it can tell neither, reports not ok and loses the acknowledged writes made after the restore
(found from the ninth mutant sample's survivor ``recovery.py:187``: with two managers the line it dropped did not
do enough either).
"""

from __future__ import annotations

import pytest
from runtime_helpers import SQLITE_MODULE_NAME, fast_config

from pytest_dbfault.faults import make_fault
from pytest_dbfault.faults.target import MODULE_ENV
from reliability import DatabaseManager


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # The damage's checkpoint through another copy of SQLite in this process would drop the runtime's locks (the
    # pysqlite3 cell).
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def rows(db):
    return sorted(k for (k,) in db.fetch_all("SELECT k FROM kv"))


@pytest.mark.parametrize("peer_writes", [1, 3])
def test_writes_after_a_restore_survive_a_recovery_when_another_manager_wrote_before_it(tmp_path, peer_writes):
    path = str(tmp_path / "app.db")
    with DatabaseManager(fast_config(path)) as a, DatabaseManager(fast_config(path)) as peer:
        a.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        a.execute("INSERT INTO kv VALUES (1, 'x')")
        backup = a.backup()
        for k in range(10, 10 + peer_writes):
            peer.execute("INSERT INTO kv VALUES (?, 'dropped by the restore')", (k,))
        a.restore(backup.path)
        assert rows(a) == [1]
        a.execute("INSERT INTO kv VALUES (2, 'after the restore')")
        a.execute("INSERT INTO kv VALUES (3, 'after the restore')")
        make_fault("corrupt", path, part="header", seed=1).inject()
        report = a.recover()
        assert report.ok, report.problems
        assert rows(a) == [1, 2, 3]  # the acknowledged writes after the restore; the dropped ones stay dropped
