"""Cost of chaos mode: an independent test suite run clean and with ``--dbfault-chaos``, side by side.

The suite is not ours (its code is never committed): fetch a project's sdist from PyPI, install it
with dbfault in one virtualenv, and point this script at its tests::

    pip download --no-binary :all: --no-deps sqlite-utils -d /tmp/sd && tar xzf /tmp/sd/*.tar.gz -C /tmp/sd
    /tmp/venv/bin/pip install -e . /tmp/sd/sqlite_utils-4.2.1
    /tmp/venv/bin/python benchmarks/chaos_cost.py --suite /tmp/sd/sqlite_utils-4.2.1 --rounds 2 -- tests/test_cli.py

Each round runs the same pytest command twice in fresh processes, clean and under chaos (default rate
and faults, ``--dbfault-seed``), the order flipped every round; wall times include the clean rerun of
every test that failed under chaos. Prints each round's ratio, the median, and what chaos reported.
Goal: median <= 1.5x at the default rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(python: str, suite: Path, args: list[str], extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", *extra], cwd=suite,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, required=True, help="directory of the project whose tests run")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the venv holding both")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("pytest_args", nargs="*", help="test paths and options for pytest (after --)")
    opts = parser.parse_args(argv)
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "chaos.json"
        chaos = ["--dbfault-chaos", f"--dbfault-seed={opts.seed}", f"--dbfault-report={report}"]
        print(f"{'round':>5} {'clean s':>8} {'chaos s':>8} {'ratio':>6}")
        for n in range(opts.rounds):
            if n % 2:
                chaos_s = _run(opts.python, opts.suite, opts.pytest_args, chaos)
                clean_s = _run(opts.python, opts.suite, opts.pytest_args, [])
            else:
                clean_s = _run(opts.python, opts.suite, opts.pytest_args, [])
                chaos_s = _run(opts.python, opts.suite, opts.pytest_args, chaos)
            ratios.append(chaos_s / clean_s)
            print(f"{n + 1:>5} {clean_s:>8.1f} {chaos_s:>8.1f} {ratios[-1]:>5.2f}x")
        data = json.loads(report.read_text())["chaos"]
    print(f"median ratio {statistics.median(ratios):.2f}x (goal <= 1.5x); chaos: {data['tests']} tests, "
          f"{data['injections']['total']} faults reached the application {data['injections']['by_kind']}, "
          f"{len(data['not_fault_tolerant'])} not fault-tolerant, {len(data['collateral'])} collateral, "
          f"{len(data['failing_without_faults'])} failing without faults, "
          f"{len(data['skipped_under_chaos'])} skipped under chaos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
