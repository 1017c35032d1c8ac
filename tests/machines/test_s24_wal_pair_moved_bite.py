"""The connection machine's ``file_faults_back_to_back`` judges a WAL pair deleted and restored, then moved away and
back (session 16's fuzzer find): once both faults healed, a read returns exactly the acknowledged rows. Against a
runtime that judges a WAL beside a file it did not have open by its last *write* (foreign when written before the
file's ctime, which the rename sets), every row committed in that WAL is hidden (P1).

The rule is called directly with fixed arguments: the derandomized search that met it in ``test_machines_bite.py``
stopped meeting it on Python 3.10 on a loaded machine."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import connection


def by_last_write(original: Any) -> Any:
    """``set_aside_foreign_wal`` as before session 16: a WAL with frames, last written before the file's ctime, is
    moved aside as foreign, whatever its history."""

    def judged(path: str, wal_of: Any = None, module: Any = sqlite3, left_by: Any = None) -> list[str]:
        try:
            wal_st, db_st = os.stat(path + "-wal"), os.stat(path)
        except OSError:
            return []
        header = connection.read_wal_header(path + "-wal")
        if header is None or not header.frames or left_by is not None:
            return original(path, wal_of, module, left_by=left_by)
        if wal_of and wal_of.get((db_st.st_dev, db_st.st_ino)) == (wal_st.st_dev, wal_st.st_ino):
            return []
        if wal_st.st_mtime_ns > db_st.st_ctime_ns:
            return []
        moved = []
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.rename(path + extra, f"{path}{extra}.stale-bite")
                moved.append(f"{path}{extra}.stale-bite")
        return moved

    return judged


def run_rule(tmp_path, first: str, second: str) -> None:
    machine = started_machine("connection", tmp_path, frozenset({"heal_mid_call"}), journal_mode="WAL")

    def call(m: Any) -> None:
        for n in (1, 2, 3):
            m.upsert(n)
        m.file_faults_back_to_back(first, second, False, 4)

    run_and_tear_down(machine, call)


@pytest.mark.parametrize(("first", "second"), [("disconnect_delete", "disconnect_rename"),
                                               ("disconnect_rename", "disconnect_rename"),
                                               ("disconnect_close", "disconnect_delete")])
def test_the_rule_passes_on_the_runtime(tmp_path, first, second):
    run_rule(tmp_path, first, second)


def test_it_bites_a_wal_judged_by_its_last_write(tmp_path, monkeypatch):
    monkeypatch.setattr(connection, "set_aside_foreign_wal", by_last_write(connection.set_aside_foreign_wal))
    with pytest.raises(AssertionError, match=r"p01_connection_recovery violated.*after disconnect_delete then "
                                             r"disconnect_rename \(each healed\) a read gave"):
        run_rule(tmp_path, "disconnect_delete", "disconnect_rename")
