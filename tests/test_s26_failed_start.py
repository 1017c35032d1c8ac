"""A ``DatabaseManager(...)`` that fails in its constructor holds nothing afterwards (found in session 26).

The constructor opens the redo journal (its slot file, under an ``flock``), the connection, the operation log (a file
and a flusher thread) and adds a listener to the retry policy before its start can fail. A start that raised kept
them: the journal's descriptor is a raw ``int`` (no finalizer), so slot 0 stayed taken for the process's life and
the next manager on the database wrote to ``<db>.redo.1``.

The real failure used here: a directory where the journal's anchoring reset writes its temporary
(``<db>.redo.tmp``, an operator's or a broken deployment's leftover): the reset's ``O_EXCL`` open fails and the
error leaves the constructor. Real files, real descriptors (``/proc/self/fd``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseManager, ReliabilityConfig
from reliability.redo import read_journal
from reliability.retry import RetryPolicy

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd")


def open_descriptors() -> set[str]:
    """What this process's descriptors point at (their targets, so a number reused for another file differs)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:  # (the descriptor listdir itself used, closed already)
            pass
    return out


_WRITE_AND_DIE = textwrap.dedent("""
    import os, sys
    from reliability import DatabaseManager, ReliabilityConfig
    db = DatabaseManager(ReliabilityConfig(db_path=sys.argv[1], backup_dir=sys.argv[2], audit_hmac_key="k",
                                           backup_interval=0, health_check_interval=0))
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t (v) VALUES ('kept')")
    os._exit(0)  # no close(): as a killed process leaves its journal
""")


def config(tmp_path: Path) -> ReliabilityConfig:
    return fast_config(tmp_path / "app.db", backup_dir=str(tmp_path / "backups"), audit_hmac_key="k",
                       operation_log=True, operation_log_path=str(tmp_path / "ops.log"))


@pytest.mark.parametrize("database", ["new", "after a crash"])
def test_a_constructor_that_fails_after_opening_the_journal_releases_everything(tmp_path, database):
    path = tmp_path / "app.db"
    if database == "after a crash":
        # A process that wrote and died without closing: its journal has its header and no clean-close record, so
        # the next start checks the journals against the database and anchors (a reset) before serving.
        done = subprocess.run([sys.executable, "-c", _WRITE_AND_DIE, str(path), str(tmp_path / "backups")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not read_journal(str(path) + ".redo").clean
    (tmp_path / "app.db.redo.tmp").mkdir()  # where the anchoring reset must create its temporary
    policy = RetryPolicy.from_config(config(tmp_path))
    threads = set(threading.enumerate())
    before = open_descriptors()
    logging.disable(logging.CRITICAL)
    try:
        with pytest.raises(OSError):
            DatabaseManager(config(tmp_path), policy=policy)
    finally:
        logging.disable(logging.NOTSET)
    # (No gc.collect(): what a failed constructor holds must go with it, not whenever a collection runs.)
    left = open_descriptors() - before
    assert not left, f"the failed manager kept {sorted(left)}"
    assert policy.listeners == [], "the failed manager's retry listener stayed on the caller's policy"
    assert not [t for t in set(threading.enumerate()) - threads if t.is_alive()], "a thread of it still runs"
    # Released as a crash leaves it: a clean-close record would make the next start skip its checks and its anchor.
    assert not read_journal(str(path) + ".redo").clean

    (tmp_path / "app.db.redo.tmp").rmdir()
    db = DatabaseManager(config(tmp_path), policy=policy)
    try:
        assert db.redo_journal.slot == 0 and db.redo_journal.path == Path(str(path) + ".redo")  # (was: slot 1)
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO t (v) VALUES ('after')")
        assert read_journal(db.redo_journal.path).entries
    finally:
        db.close()
