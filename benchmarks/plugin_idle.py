"""Plugin idle cost: a suite of small SQLite tests with dbfault installed but ``--dbfault`` not given.

Run::

    python benchmarks/plugin_idle.py            # full (about half a minute)
    python benchmarks/plugin_idle.py --quick    # a few seconds, for CI

A throw-away suite of a few hundred small SQLite tests (half on ``:memory:``, half on a
file under ``tmp_path``) is written to a temporary directory with its own ``pytest.ini``,
then run in fresh ``pytest`` processes, alternating: plugin installed and idle (the
``pytest11`` entry point loads it, ``--dbfault`` is not given) versus ``-p no:dbfault``.
Reported: the median ratio of wall times (the whole process, startup included, since
that is what a user waits for) and the plugin's import time (``import
pytest_dbfault.plugin`` after pytest is already imported, median of fresh interpreters),
with the slowest modules that import pulls in according to ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

GOAL = 1.02

SUITE = '''\
"""Small SQLite tests: the kind of suite the plugin sits in without being asked to do anything."""
import sqlite3

import pytest


@pytest.mark.parametrize("n", range({n}))
def test_memory_roundtrip(n):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(str(i),) for i in range(n % 20 + 1)])
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == n % 20 + 1
    conn.close()


@pytest.mark.parametrize("n", range({n}))
def test_file_roundtrip(tmp_path, n):
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # measure pytest and the plugin, not this disk's fsync
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(str(i),) for i in range(n % 10 + 1)])
    conn.execute("COMMIT")
    assert conn.execute("SELECT max(id) FROM t").fetchone()[0] == n % 10 + 1
    conn.close()
'''


def write_suite(directory: Path, tests_per_kind: int) -> Path:
    """Write the suite (2 x ``tests_per_kind`` tests) and an isolating ``pytest.ini`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (directory / "test_small_sqlite.py").write_text(SUITE.replace("{n}", str(tests_per_kind)))
    return directory


def clean_env() -> dict[str, str]:
    """The environment for child processes, without anything an outer pytest run put there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE_"))}
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(directory: Path, plugin: bool, env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one ``pytest -q`` run (plugin idle, or disabled with ``-p no:dbfault``).

    CPU time (user + system of the child) is reported beside wall time because it is far less
    disturbed by other work on a shared machine.
    """
    cmd = [sys.executable, "-m", "pytest", "-q", "-x"]
    if not plugin:
        cmd += ["-p", "no:dbfault"]
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"the idle suite failed ({'plugin' if plugin else '-p no:dbfault'}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, cpu


def plugin_loaded(directory: Path, env: dict[str, str]) -> bool:
    """True when pytest in this environment autoloads the dbfault plugin (so the comparison means something)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--trace-config", "--co", "-q"], cwd=directory,
                          env=env, capture_output=True, text=True)
    return "pytest_dbfault" in proc.stdout


IMPORT_PROBE = textwrap.dedent("""\
    import time, pytest
    t0 = time.perf_counter()
    import pytest_dbfault.plugin
    print(time.perf_counter() - t0)
""")


def import_time(env: dict[str, str], repeats: int) -> float:
    """Median seconds to import the plugin module in a fresh interpreter that already imported pytest."""
    samples = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], env=env, capture_output=True, text=True,
                             check=True).stdout
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


def slowest_imports(env: dict[str, str], top: int = 5) -> list[tuple[str, int]]:
    """(module, cumulative microseconds) of the heaviest imports the plugin adds beyond pytest's own."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_dbfault.plugin"],
                          env=env, capture_output=True, text=True, check=True)
    rows = []
    seen_pytest = False
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        name = parts[2]
        if name.strip() == "pytest":
            seen_pytest = True  # everything before (and including) pytest is there anyway
            continue
        if seen_pytest and not name.startswith("  "):
            rows.append((name.strip(), int(parts[1])))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tests and rounds (CI: checks it runs)")
    parser.add_argument("--rounds", type=int, help="alternating pairs of runs (default 9, quick 1)")
    parser.add_argument("--tests", type=int, help="tests per kind (two kinds; default 150, quick 50)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 9)
    per_kind = args.tests or (50 if args.quick else 150)
    env = clean_env()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dbfault-idle-") as tmp:
        suite = write_suite(Path(tmp), per_kind)
        loaded = plugin_loaded(suite, env)
        if not args.quick:
            run_suite(suite, True, env)  # warm the OS file cache for both variants
        idle: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        for r in range(rounds):
            pair = (True, False) if r % 2 == 0 else (False, True)
            for plugin in pair:
                (idle if plugin else off).append(run_suite(suite, plugin, env))
    wall = statistics.median(a[0] / b[0] for a, b in zip(idle, off, strict=True))
    cpu = statistics.median(a[1] / b[1] for a, b in zip(idle, off, strict=True))
    imp = import_time(env, 3 if args.quick else 7)
    print(f"plugin idle cost: {2 * per_kind} small SQLite tests, median of {rounds} alternating pairs of "
          f"fresh pytest processes")
    head = f"{'variant':<34}{'wall s':>8}{'cpu s':>8}{'wall ratio':>12}{'cpu ratio':>11}{'goal':>8}"
    print(head)
    print("-" * len(head))
    for label, runs, rw, rc in (("-p no:dbfault (baseline)", off, 1.0, 1.0),
                                ("plugin installed, --dbfault off", idle, wall, cpu)):
        mark = "" if runs is off else f"{GOAL:>7.2f}x {'ok' if max(wall, cpu) <= GOAL else 'OVER'}"
        print(f"{label:<34}{statistics.median(r[0] for r in runs):>8.3f}{statistics.median(r[1] for r in runs):>8.3f}"
              f"{rw:>11.3f}x{rc:>10.3f}x{mark}")
    if not loaded:
        print("WARNING: pytest did not autoload pytest_dbfault here (is the package installed?); "
              "both variants ran without it")
    print(f"plugin import time (pytest already imported): {imp * 1000:.1f} ms")
    # The wall ratio swings a few percent either way on a shared machine; what the plugin adds
    # when idle is its import plus one marker lookup per test function at collection (no per-test
    # run hooks), so the import time over the baseline run bounds the true cost from above.
    base_wall = statistics.median(r[0] for r in off)
    print(f"import time / baseline wall: {imp / base_wall * 100:.1f}% -> idle cost bound "
          f"{1 + imp / base_wall:.3f}x (goal {GOAL:.2f}x)")
    heavy = slowest_imports(env)
    if heavy:
        print("heaviest imports it adds (cumulative): " + ", ".join(f"{m} {us / 1000:.1f} ms" for m, us in heavy))
    print(f"({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
