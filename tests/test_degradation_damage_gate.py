"""How often the write gate checks a file seen damaged (reliability/degraded/damage.py).

While the verdict stands, every write the runtime makes on its own behalf asks the gate, and the gate
reruns the integrity check, which reads the whole file. These tests pin that it is rerun at most once
per ``recheck_interval``, never more than a tenth of the time, and by one thread at a time; the file is
damaged for real and the check is the runtime's own (counted and clocked by a wrapper, never replaced).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from pytest_dbfault.faults import CorruptFault
from reliability import DatabaseError, DatabaseManager


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def damaged_runtime(db_path: Path) -> DatabaseManager:
    db = DatabaseManager(fast_config(db_path, journal_mode="DELETE", redo_journal=False, auto_recover=False,
                                     audit_hmac_key="k"))
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    db.execute("INSERT INTO notes (body) VALUES ('a note')")
    CorruptFault(db_path, part="btree", table="notes", page="root", seed=7).inject()
    with pytest.raises(DatabaseError):
        db.fetch_all("SELECT * FROM notes")
    assert db.write_gate.seen_damaged
    return db


def test_a_slow_check_is_rerun_at_most_a_tenth_of_the_time(db_path: Path) -> None:
    with damaged_runtime(db_path) as db:
        gate = db.write_gate
        clock = FakeClock()
        gate.clock = clock
        real, runs = gate.check, []

        def slow_check(full: bool = False) -> object:  # the real check, taking 2 s of the fake clock
            runs.append(clock.now)
            clock.now += 2.0
            return real(full)

        gate.check = slow_check
        assert gate.refusal() is not None and len(runs) == 1  # the first question checks
        clock.now += 10.0  # 12 s after the check started: < 9 x 2 s after it ended
        assert "not checked again yet" in str(gate.refusal()) and len(runs) == 1
        clock.now += 9.0
        assert gate.refusal() is not None and len(runs) == 2
        gate.check = real
        gate.recheck_interval = 60.0
        clock.now += 30.0  # a fast check now, but the interval is longer than 9 x its time
        assert gate.refusal() is not None and len(runs) == 2


def test_one_thread_checks_at_a_time(db_path: Path) -> None:
    with damaged_runtime(db_path) as db:
        gate = db.write_gate
        gate.recheck_interval = 0
        real = gate.check
        entered, release = threading.Event(), threading.Event()
        calls = []

        def held_check(full: bool = False) -> object:
            calls.append(threading.current_thread().name)
            entered.set()
            release.wait(10)
            return real(full)

        gate.check = held_check
        answers: list[str | None] = []
        first = threading.Thread(target=lambda: answers.append(gate.refusal()), name="first")
        first.start()
        assert entered.wait(10)
        second = gate.refusal()  # while the first thread checks: refused at once, no second check
        assert second is not None and "another thread is checking" in second
        release.set()
        first.join(10)
        assert calls == ["first"] and answers and answers[0] is not None  # the file is still damaged


def test_a_sound_runtime_never_checks(db_path: Path) -> None:
    with DatabaseManager(fast_config(db_path, audit_hmac_key="k")) as db:
        calls = []
        db.write_gate.check = lambda full=False: calls.append(1)
        db.write_gate.recheck_interval = 0
        assert db.write_gate.refusal() is None
        assert not db.audit.record("alice", "login").pending
        assert calls == []
