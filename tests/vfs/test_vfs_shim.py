"""The shim VFS itself: what it sees, how it is selected, counters, threads, unavailability."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading

from pytest_dbfault.vfs import VFS_NAME, FailRule, get_shim


def test_it_counts_every_operation_per_file_including_the_journal(shim, make_db, connect):
    db = make_db()
    conn = connect(db)
    conn.execute("INSERT INTO t (v) VALUES ('x')")
    conn.commit()
    counters = shim.counters()
    main, journal = counters[os.path.realpath(db)], counters[os.path.realpath(db) + "-journal"]
    assert main["read"] >= 1 and main["write"] >= 1 and main["sync"] >= 1 and main["lock"] >= 1
    assert journal["write"] >= 1 and journal["sync"] >= 1
    total = shim.counts(db)
    assert total["write"] == main["write"] + journal["write"]


def test_it_sees_the_wal_file_in_wal_mode(shim, make_db, connect):
    db = make_db(journal_mode="wal")
    conn = connect(db)
    conn.execute("INSERT INTO t (v) VALUES ('x')")
    conn.commit()
    assert shim.counts(db + "-wal", family=False)["write"] >= 1
    assert {f.kind for f in shim.open_files() if f.path and f.path.startswith(os.path.realpath(db))} >= {
        "main", "wal"}


def test_it_is_selected_by_name_in_a_uri_with_the_same_counters(shim, make_db):
    db = make_db()
    conn = sqlite3.connect(f"file:{db}?vfs={VFS_NAME}", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    finally:
        conn.close()
    assert shim.counts(db)["read"] >= 1


def test_connections_opened_after_uninstall_bypass_it_while_open_files_stay_counted(needs_vfs, make_db):
    db = make_db()
    shim = get_shim()
    shim.install()
    shim.reset_counters()
    early = sqlite3.connect(db)
    early.execute("SELECT * FROM t").fetchall()
    shim.uninstall()
    assert not shim.is_installed
    try:
        reads = shim.counts(db)["read"]
        late = sqlite3.connect(db)
        late.execute("SELECT * FROM t").fetchall()
        late.close()
        assert shim.counts(db)["read"] == reads  # the late connection never went through the shim
        early.execute("INSERT INTO t (v) VALUES ('still wrapped')")
        early.commit()
        assert shim.counts(db)["write"] >= 1
    finally:
        early.close()


def test_the_uri_name_is_unknown_once_uninstalled(needs_vfs, make_db):
    db = make_db()
    assert not get_shim().is_installed, "an earlier test leaked an install"
    try:
        sqlite3.connect(f"file:{db}?vfs={VFS_NAME}", uri=True).close()
    except sqlite3.OperationalError as exc:
        assert f"no such vfs: {VFS_NAME}" in str(exc)
    else:
        raise AssertionError("the shim's name resolved while it was not registered")


def test_counters_stay_exact_with_connections_in_several_threads(shim, make_db):
    db = make_db(journal_mode="wal")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            conn = sqlite3.connect(db, timeout=5)
            for i in range(20):
                conn.execute("INSERT INTO t (v) VALUES (?)", (f"t-{i}",))
                conn.commit()
            conn.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    check = sqlite3.connect(db)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (3 + 80,)
    check.close()
    # every commit wrote at least one WAL frame, and no increments were lost to races
    assert shim.counts(db + "-wal", family=False)["write"] >= 80


def test_a_fault_in_one_thread_does_not_disturb_counting_in_another(shim, make_db):
    db, other = make_db("a.db"), make_db("b.db")
    rule = shim.add_rule(FailRule(ops={"write"}, path=db, nth=1, persistent=True))
    outcomes: dict[str, str] = {}

    def write(path: str) -> None:
        conn = sqlite3.connect(path, timeout=5)
        try:
            conn.execute("INSERT INTO t (v) VALUES ('x')")
            conn.commit()
            outcomes[path] = "ok"
        except sqlite3.OperationalError as exc:
            outcomes[path] = str(exc)
        finally:
            conn.close()

    try:
        threads = [threading.Thread(target=write, args=(p,)) for p in (db, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        shim.remove_rule(rule)
    assert outcomes == {db: "disk I/O error", other: "ok"}


def test_without_a_c_extension_sqlite_it_reports_the_reason_and_faults_refuse(tmp_path):
    # Models a build whose _sqlite3 is not a shared C extension (PyPy, exotic static builds).
    script = textwrap.dedent(f"""
        import sqlite3, _sqlite3
        del _sqlite3.__file__
        from pytest_dbfault.vfs import vfs_available, VfsUnavailable
        from pytest_dbfault.faults.registry import make_fault
        from pytest_dbfault.faults.base import FaultError
        ok, reason = vfs_available()
        assert not ok and "not a C extension module" in reason, reason
        try:
            make_fault("io_error", {str(tmp_path / 'x.db')!r}).inject()
        except VfsUnavailable as exc:
            assert isinstance(exc, FaultError) and exc.reason == reason
        else:
            raise SystemExit("inject did not refuse")
        conn = sqlite3.connect({str(tmp_path / 'x.db')!r})
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        print("skipped cleanly:", reason)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "skipped cleanly" in proc.stdout


def test_counters_survive_a_connection_closed_by_the_collector_while_they_are_read(shim, tmp_path):
    """Regression (seen under ``-n 8``): ``counters()`` iterated the closed-file table while a connection
    collected on the same thread closed its file through ``xClose`` and added to that table
    ("dictionary changed size during iteration"). A connection kept alive only by a reference cycle
    is closed by the garbage collector; the threshold is set so that the collection falls on the
    k-th allocation after the call starts, for every k up to past the end of the iteration."""
    import gc

    for i in range(20):  # closed files already counted: reading them allocates once per file
        c = sqlite3.connect(tmp_path / f"old{i}.db")
        c.execute("CREATE TABLE t (v)")
        c.close()
    threshold = gc.get_threshold()
    was_enabled = gc.isenabled()
    try:
        for k in range(1, 40):
            gc.disable()
            gc.collect()
            conn = sqlite3.connect(tmp_path / f"cyc{k}.db")
            conn.execute("CREATE TABLE t (v)")
            holder: list = [conn]
            holder.append(holder)  # only the collector can free this connection
            del conn, holder
            gc.set_threshold(gc.get_count()[0] + k)
            gc.enable()
            try:
                totals = shim.counters()
            finally:
                gc.disable()
                gc.set_threshold(*threshold)
            assert len(totals) >= 20
            gc.collect()
            assert any(path.endswith(f"cyc{k}.db") for path in shim.counters())
    finally:
        gc.set_threshold(*threshold)
        if was_enabled:
            gc.enable()
