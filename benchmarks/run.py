"""Run every benchmark under ``benchmarks/`` and print a summary table.

Run::

    python benchmarks/run.py            # full: every figure in benchmarks/README.md (a few minutes)
    python benchmarks/run.py --quick    # each script's --quick mode (what CI runs: it runs, numbers aside)
    python benchmarks/run.py --only runtime_overhead --only scaling

Each script runs in its own fresh interpreter (so one cannot warm or disturb another),
one after the other, with its output streamed as it comes; a script that is missing is
reported as absent. The exit status is non-zero when any script failed or timed out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, what it measures) in run order; missing scripts are reported as skipped.
SCRIPTS = (
    ("runtime_overhead", "DatabaseManager vs raw sqlite3, mixed workload (goal <= 1.15x; oplog <= 2.0x)"),
    ("plugin_idle", "pytest suite with dbfault installed but idle vs -p no:dbfault (goal <= 1.02x)"),
    ("scaling", "overhead by database size and by writer threads"),
    ("machines_steps", "property state machines: steps per second"),
    ("backup_recovery", "backup and recovery times"),
    ("targets", "issue #17's target table: runtime, peewee and raw side by side"),
    ("one_flush", "plain sqlite3 commit shapes: one flush or two per commit (issue #17's design question)"),
)


def run_script(name: str, quick: bool, timeout: float) -> tuple[str, float]:
    """Run ``benchmarks/<name>.py`` (streaming its output); returns (status, seconds)."""
    path = HERE / f"{name}.py"
    if not path.exists():
        return "absent", 0.0
    cmd = [sys.executable, str(path)] + (["--quick"] if quick else [])
    print(f"\n=== {name} {'--quick ' if quick else ''}===", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=HERE.parent, timeout=timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return f"timeout ({timeout:.0f}s)", time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    return status, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this script (repeatable), e.g. runtime_overhead")
    parser.add_argument("--timeout", type=float, help="seconds per script (default 300, quick 120)")
    args = parser.parse_args(argv)
    known = [name for name, _ in SCRIPTS]
    for name in args.only or []:
        if name not in known:
            parser.error(f"--only {name!r}: unknown benchmark; choose from {', '.join(known)}")
    timeout = args.timeout or (120.0 if args.quick else 300.0)
    rows = []
    started = time.perf_counter()
    for name, what in SCRIPTS:
        if args.only and name not in args.only:
            continue
        status, seconds = run_script(name, args.quick, timeout)
        rows.append((name, status, seconds, what))
    total = time.perf_counter() - started

    print(f"\n=== summary ({'quick' if args.quick else 'full'}, {total:.1f}s) ===")
    head = f"{'benchmark':<18}{'status':<20}{'seconds':>8}  measures"
    print(head)
    print("-" * len(head))
    for name, status, seconds, what in rows:
        print(f"{name:<18}{status:<20}{seconds:>8.1f}  {what}")
    failed = [name for name, status, _, _ in rows if status not in ("ok", "absent")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
