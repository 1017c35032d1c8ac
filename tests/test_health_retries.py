"""health().retries counts every retry the runtime sleeps before: statements, transactions and maintenance alike.

Found by the health machine once it drew rollback-journal modes: there an exclusive lock keeps the integrity
check out (in WAL a reader is never blocked), the check retried under the shared policy and slept three times,
and health said 0 retries. The counting now lives in one place, a listener on the runtime's policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import LockHolder, fast_config

from reliability import DatabaseError, DatabaseManager, RetryPolicy


class CountingSleep:
    def __init__(self) -> None:
        self.sleeps = 0

    def __call__(self, seconds: float) -> None:
        self.sleeps += 1


@pytest.mark.parametrize("what", ["check_integrity", "write", "transaction"])
def test_every_retry_slept_is_counted_once(db_path: Path, what: str) -> None:
    cfg = fast_config(db_path, journal_mode="DELETE", retry_attempts=4, retry_budget=60.0, busy_timeout_ms=0,
                      integrity_check_interval=0.0)
    sleep = CountingSleep()
    with DatabaseManager(cfg, policy=RetryPolicy.from_config(cfg, sleep=sleep)) as db:
        db.execute("CREATE TABLE t (v)")
        before = db.health().retries
        assert before == 0 and sleep.sleeps == 0
        with LockHolder(db_path):  # a real EXCLUSIVE lock: readers and writers wait in a rollback journal
            with pytest.raises(DatabaseError):
                if what == "check_integrity":
                    db.check_integrity()
                elif what == "write":
                    db.execute("INSERT INTO t VALUES (1)")
                else:
                    db.run_in_transaction(lambda: db.execute("INSERT INTO t VALUES (1)"))
        assert sleep.sleeps >= 1  # (the lock was met and retried: the setup holds)
        assert db.health().retries == sleep.sleeps


def test_a_closed_runtime_stops_counting_the_retries_of_a_policy_it_was_given(db_path: Path) -> None:
    cfg = fast_config(db_path)
    policy = RetryPolicy.from_config(cfg, sleep=CountingSleep())
    db = DatabaseManager(cfg, policy=policy)
    db.close()
    assert policy.listeners == []
