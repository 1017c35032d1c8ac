"""The interpreter survives thousands of injected faults, threads, and connections left open at exit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from pytest_dbfault.vfs import FailRule

STRESS = textwrap.dedent("""
    import random, sqlite3, sys, threading
    from pytest_dbfault.vfs import FailRule, PowerLossRecorder, get_shim

    root = sys.argv[1]
    shim = get_shim().install()
    for rule in (
        FailRule(ops={"read", "write", "truncate", "sync", "size"}, probability=0.1, seed=1),
        FailRule(ops={"write"}, error="disk_full", probability=0.05, seed=2),
        FailRule(ops={"read"}, error="short_read", probability=0.01, seed=3),
        FailRule(ops={"read"}, error="corrupt_fs", probability=0.01, seed=4),
        FailRule(ops={"lock"}, error="busy", probability=0.05, seed=5),
        FailRule(ops={"unlock", "check_lock"}, probability=0.01, seed=6),
    ):
        shim.add_rule(rule)
    PowerLossRecorder(f"{root}/t0.db").start()
    leaked = []  # connections deliberately left open at exit

    def work(n):
        rng = random.Random(n)
        path = f"{root}/t{n}.db"
        for round_ in range(250):
            try:
                conn = sqlite3.connect(path, timeout=0.01)
            except sqlite3.Error:
                continue
            try:
                if round_ == 0 and n % 2:
                    conn.execute("PRAGMA journal_mode = wal")
                conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
                for _ in range(10):
                    conn.execute("INSERT INTO t (v) VALUES (randomblob(?))", (rng.randint(10, 3000),))
                    if rng.random() < 0.5:
                        conn.commit()
                    conn.execute("SELECT count(*), sum(length(v)) FROM t").fetchall()
                conn.commit()
            except sqlite3.Error:
                try:
                    conn.rollback()
                except sqlite3.Error:
                    pass
            if round_ % 100 == 99:
                leaked.append(conn)
            else:
                conn.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("injected", sum(r.failures for r in shim.rules), "leaked", len(leaked), flush=True)
    # no uninstall, no close: the atexit handler must make this exit safe
""")


def test_thousands_of_injected_faults_never_crash_the_interpreter(needs_vfs, tmp_path):
    proc = subprocess.run([sys.executable, "-c", STRESS, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    words = proc.stdout.split()
    assert int(words[words.index("injected") + 1]) >= 1000
    assert int(words[words.index("leaked") + 1]) > 0
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


class _ExplodingRecorder:
    """A broken power-loss observer: its hook raises inside SQLite's write callback."""

    def before_write(self, *args: object) -> None:
        raise RuntimeError("observer bug")


def test_an_exception_inside_a_callback_becomes_an_io_error_not_a_lost_write(shim, make_db, connect):
    db = make_db()
    conn = connect(db)
    conn.execute("SELECT * FROM t").fetchall()
    broken = _ExplodingRecorder()
    shim.add_recorder(broken)  # type: ignore[arg-type]
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error") as exc:
            conn.execute("INSERT INTO t (v) VALUES ('x')")
            conn.commit()
    finally:
        shim.remove_recorder(broken)  # type: ignore[arg-type]
    if hasattr(exc.value, "sqlite_errorname"):
        assert exc.value.sqlite_errorname == "SQLITE_IOERR_WRITE"
    assert connect(db).execute("SELECT count(*) FROM t").fetchone() == (3,)


def test_the_failure_codes_never_include_a_retry_forever_errno(shim, make_db, connect):
    # EINTR from read() makes SQLite retry for ever; the shim returns SQLite codes, so every
    # persistent read failure ends in an exception after a bounded number of calls.
    db = make_db()
    for error in ("io_error", "corrupt_fs", "short_read"):
        rule = shim.add_rule(FailRule(ops={"read"}, path=db, nth=1, persistent=True, error=error))
        try:
            with pytest.raises(sqlite3.DatabaseError):
                connect(db).execute("SELECT * FROM t").fetchall()
        finally:
            shim.remove_rule(rule)
        assert rule.calls < 10
