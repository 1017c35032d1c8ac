"""The script server's processes behave as ``python -c SCRIPT`` would (pytest_dbfault/machines/served.py).

The data-loss machine judges the runtime by what its helper processes do and say; these pin what it relies
on: each is another process (its own pid, so its own POSIX locks), its arguments, environment, directory and
streams are the caller's, and its exit code is what ``subprocess`` would report, ``-9`` after a SIGKILL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from pytest_dbfault.machines import served
from pytest_dbfault.machines.dataloss import PROBE

pytestmark = pytest.mark.skipif(not served.available(), reason="no fork server on this platform")


def test_a_script_runs_in_another_process_with_the_callers_arguments_environment_and_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("DBFAULT_SERVED_PROBE", "from-the-caller")
    monkeypatch.chdir(tmp_path)
    done = served.run_script("import os, sys\nprint(os.getpid(), sys.argv[1:], os.environ['DBFAULT_SERVED_PROBE'], "
                             "os.getcwd(), __name__)", ["a", "b c"], timeout=60)
    pid, rest = done.stdout.split(" ", 1)
    assert done.returncode == 0 and int(pid) != os.getpid()
    assert rest == f"['a', 'b c'] from-the-caller {tmp_path} __main__\n"


@pytest.mark.parametrize(("script", "code", "in_stderr"), [
    ("import sys; sys.exit(3)", 3, ""),
    ("raise ValueError('boom')", 1, "ValueError: boom"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9, ""),
])
def test_exit_codes_are_the_ones_subprocess_reports(script, code, in_stderr):
    done = served.run_script(script, [], timeout=60)
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == fresh.returncode == code
    assert in_stderr in done.stderr and in_stderr in fresh.stderr


def test_a_started_script_reads_its_input_and_can_be_killed_while_it_waits():
    proc = served.start_script("import sys\nprint('ready', flush=True)\nprint('got', sys.stdin.readline().strip())",
                               [])
    assert proc.stdout.readline() == "ready\n"
    assert proc.communicate("go 2\n", timeout=60) == ("got go 2\n", "") and proc.returncode == 0
    waiting = served.start_script("import sys\nprint('ready', flush=True)\nsys.stdin.readline()", [])
    assert waiting.stdout.readline() == "ready\n" and waiting.poll() is None
    waiting.kill()
    waiting.communicate("", timeout=60)
    assert waiting.returncode == -9


def test_a_served_probe_sees_the_locks_of_this_process(tmp_path):
    """Its own process: this process's SHARED lock on a WAL database keeps it from taking the file EXCLUSIVE."""
    path = str(tmp_path / "app.db")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        assert served.run_script(PROBE, [path, "sqlite3"], timeout=60).stdout.strip() == "busy"
    finally:
        conn.close()
    assert served.run_script(PROBE, [path, "sqlite3"], timeout=60).stdout.strip() == "taken"
