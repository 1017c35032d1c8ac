"""run_and_kill / CrashFault: SIGKILL a real writer process and check what it left."""

from __future__ import annotations

import sqlite3
import textwrap

import pytest

from pytest_dbfault.faults import (
    CrashFault,
    FaultError,
    check_pairs,
    make_fault,
    run_and_kill,
    signal_point,
)


def failing_worker(db_path: str) -> None:
    """A worker that breaks on its own, to check that its error is reported."""
    raise RuntimeError(f"worker refused {db_path}")


def marking_worker(db_path: str, *, steps: int) -> None:
    """Writes one row per step in autocommit mode and signals after each."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS steps (n INTEGER)")
    for n in range(steps):
        conn.execute("INSERT INTO steps VALUES (?)", (n,))
        signal_point("step")
    conn.close()


def test_a_kill_inside_a_transaction_leaves_a_hot_journal_that_recovery_rolls_back(tmp_path):
    path = tmp_path / "pairs.db"
    result = run_and_kill(path, kill_at="in_txn", occurrence=3)
    assert result.killed and result.point == "in_txn" and result.occurrence == 3
    assert result.seen == {"in_txn": 3, "before_commit": 2, "committed": 2}
    assert path.with_name(path.name + "-journal").exists()  # hot journal of the half transaction
    check = check_pairs(path)
    assert check.ok
    assert (check.rows, check.transactions) == (4, 2)


@pytest.mark.parametrize("journal_mode, runs", [("delete", 10), ("wal", 5)])
def test_seeded_random_kills_never_leave_a_partial_transaction(tmp_path, journal_mode, runs):
    path = tmp_path / f"{journal_mode}.db"
    acknowledged = 0
    for seed in range(runs):
        result = run_and_kill(path, kwargs={"journal_mode": journal_mode, "txns": 20}, seed=seed,
                              max_occurrence=45)
        acknowledged += result.seen.get("committed", 0)
        check = check_pairs(path)
        assert check.ok, (seed, result, check)
        assert check.rows % 2 == 0
        assert check.transactions >= acknowledged  # no acknowledged commit was lost


def test_a_timed_kill_also_leaves_an_all_or_nothing_database(tmp_path):
    path = tmp_path / "timed.db"
    for seed in range(3):
        run_and_kill(path, kwargs={"txns": 200}, after_seconds=0.2, seed=seed)
        assert check_pairs(path).ok


def test_a_worker_that_ends_before_the_kill_point_is_reported_not_killed(tmp_path):
    path = tmp_path / "short.db"
    result = run_and_kill(path, marking_worker, kwargs={"steps": 2}, kill_at="step", occurrence=5)
    assert not result.killed and result.returncode == 0
    assert result.seen == {"step": 2}


def test_a_module_level_function_in_a_test_module_can_be_the_worker(tmp_path):
    path = tmp_path / "steps.db"
    result = run_and_kill(path, marking_worker, kwargs={"steps": 10}, kill_at="step", occurrence=4)
    assert result.killed
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM steps").fetchone() == (4,)
    conn.close()


def test_a_script_worker_gets_the_db_path_and_can_signal(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""
        import sqlite3, sys
        from pytest_dbfault.faults import signal_point
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        signal_point("in_txn")
        conn.execute("COMMIT")
    """))
    path = tmp_path / "script.db"
    result = run_and_kill(path, script, kill_at="in_txn")
    assert result.killed
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    conn.close()


def test_a_worker_failing_on_its_own_raises_with_its_stderr(tmp_path):
    with pytest.raises(FaultError, match="worker refused"):
        run_and_kill(tmp_path / "x.db", failing_worker)


def test_a_local_function_is_refused_as_not_importable(tmp_path):
    def local(db_path: str) -> None:  # pragma: no cover - never runs
        pass

    with pytest.raises(FaultError, match="not importable by a child process"):
        run_and_kill(tmp_path / "x.db", local)


def test_crash_fault_is_registered_and_records_the_kill(tmp_path):
    path = tmp_path / "fault.db"
    fault = make_fault("crash", path, kill_at="before_commit", occurrence=2)
    assert isinstance(fault, CrashFault) and not fault.healable
    with fault:
        assert fault.result is not None and fault.result.killed
    killed = next(r for r in fault.records if r.action == "killed")
    assert killed.detail["point"] == "before_commit"
    assert check_pairs(path).transactions == 1
