"""A killed worker's never-committed record and a cut journal's lost commit of the same sequence (session 29).

Found by the data-loss machine (``KilledWorkersOnly``, four direct rule calls). A worker process is killed -9
between its durable journal record ``G`` and COMMIT (an orphan; nobody opens a manager after it, so nothing marks
it aborted). Another manager's next transaction reuses ``G`` and is acknowledged; a third transaction (``G + 1``)
follows. Then that manager's journal loses its records from ``G`` on (cut at a record boundary: only its
high-water mark tells), and the database's header is damaged, so the database cannot say who committed ``G``.

The journals hold one record of ``G``: the orphan. A later sequence exists, so ``G`` committed; but a journal cut
short may have held ``G``'s committed record, so which transaction ``G`` was cannot be told. Before the fix
recovery took the orphan for it (``last_record_verdict``: "a journal holds a later sequence and no other record
holds ``G``"), replayed a transfer nobody was ever told about in place of the acknowledged one, and reported one
transaction missing where two acknowledged ones were gone (README: recovery says how many and which).
"""

from __future__ import annotations

import signal

import pytest
from redo_worker import config
from runtime_helpers import SQLITE_MODULE_NAME
from test_redo_multiprocess import acked, check_bank, setup_bank, spawn, transfer

from pytest_dbfault.faults import make_fault
from pytest_dbfault.faults.target import MODULE_ENV
from pytest_dbfault.machines.loss_report import disagreements, reported_loss
from reliability import DatabaseManager
from reliability.redo import read_journal


@pytest.fixture(autouse=True)
def _faults_use_the_runtimes_sqlite_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lock taken through another copy of SQLite in this process goes unseen by the runtime's (pysqlite3 cell).
    monkeypatch.setenv(MODULE_ENV, SQLITE_MODULE_NAME)


def _cut_from(path, seq: int) -> None:
    """Cut the journal at ``path`` where its record of ``seq`` starts (a file that reads as complete and shorter)."""
    from pytest_dbfault.machines.dataloss import entry_starts

    seqs = [s for s, _ops in read_journal(path).entries]
    keep = entry_starts(path)[seqs.index(seq)]
    with open(path, "r+b") as f:
        f.truncate(keep)


def test_an_orphan_is_not_taken_for_a_commit_a_cut_journal_may_have_held(tmp_path):
    path = tmp_path / "bank.db"
    main = setup_bank(path)
    other = DatabaseManager(config(str(path)))  # (open before the kill: an opening manager marks orphans aborted)
    try:
        main.backup()
        acks = tmp_path / "acks"
        worker = spawn(path, 1, 1, acks, "after_record")  # one transfer acknowledged, the next one's record orphaned
        assert worker.wait() == -signal.SIGKILL
        own = {str(main.durability.redo.path), str(other.durability.redo.path)}
        (worker_journal,) = [p for p in path.parent.glob("bank.db.redo*") if str(p) not in own]
        orphan = read_journal(worker_journal).entries[-1][0]
        transfer(other, "other-1", 1, 2, 7)  # reuses the orphan's sequence
        transfer(main, "main-1", 3, 4, 5)
        transfer(other, "other-2", 5, 6, 3)
        other_journal = other.durability.redo.path
        assert [s for s, _ops in read_journal(other_journal).entries][-2:] == [orphan, orphan + 2]
        _cut_from(other_journal, orphan)  # both of other's acknowledged records gone
        make_fault("corrupt", str(path), part="header", seed=149).inject()  # nothing says who committed what
        report = main.recover()
        assert not report.ok, report
        text = " ".join(report.problems)
        assert not disagreements(text), report.problems
        served = {r[0] for r in main.fetch_all("SELECT id FROM transfers")}
        # The killed worker's transfer was never acknowledged and never committed: replaying it in place of
        # other-1 makes a state that never existed.
        assert "1-1" not in served, report.problems
        lost = (acked(acks) | {"other-1", "main-1", "other-2"}) - served
        assert lost >= {"other-1", "other-2"}
        said = reported_loss(report.problems)
        assert said is not None and said >= len(lost), (sorted(lost), report.problems)
        assert f"sequence {orphan}" in text, report.problems  # which: the first one missing is the orphan's
        check_bank(main, served - {"1-1"})
    finally:
        other.close()
        main.close()
