"""Stateful steps per second of each property machine, faults on (goal: >= 200 steps/s on 2 cores).

Usage: ``python benchmarks/machines_steps.py [--quick] [--repeat N] [machine ...]``. Runs each machine's
generate phase only (no shrinking) against ``reliability.DatabaseManager`` and counts the
steps executed (one step = one rule and the invariants after it). Violations found by the
machines are reported, not hidden.

Two rates are printed: steps per second of wall time (the goal's figure; on a shared machine it
swings with the load, printed at the start and end) and steps per second of this process's CPU
time (every thread; the runtime's fsyncs and a killed process's start-up are not in it, so it is
the rate a quiet core would give minus I/O waits). Before measuring, one short warm-up example of each
machine pays what a process pays once (imports, Faker's pool, Hypothesis' parsing of the rules'
lambdas and of the local modules' constants, the fork server's start), as the main job pays it once per
session; without it the first machine listed looked 3x slower than it is.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import traceback

from hypothesis import HealthCheck, Phase, settings

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.stats import STATS


def measure(name: str, examples: int, steps: int, derandomize: bool = False) -> tuple[int, float, float, str]:
    """(steps, wall seconds, CPU seconds, outcome) of ``examples`` examples of ``name``."""
    machine = bind(MACHINES[name])
    counted = [0]
    step_hook = machine.check_invariants

    def counting(self, *a, **k):  # type: ignore[no-untyped-def]
        counted[0] += 1  # called once after every rule: one stateful step
        return step_hook(self, *a, **k)

    machine.check_invariants = counting  # type: ignore[method-assign]
    from hypothesis.stateful import run_state_machine_as_test

    t0, c0 = time.perf_counter(), time.process_time()
    outcome = "ok"
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=examples, stateful_step_count=steps, deadline=None, database=None, derandomize=derandomize,
            phases=[Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False))
    except AssertionError as exc:
        outcome = "violation: " + str(exc).split("\n")[0][:90]
    except Exception as exc:  # noqa: BLE001 - say what broke (a crash is a finding, not a timing)
        outcome = f"ERROR {type(exc).__name__}: " + str(exc).split("\n")[0][:200]
        traceback.print_exc()
    return counted[0], time.perf_counter() - t0, time.process_time() - c0, outcome


def warm_up(names: list[str]) -> None:
    """One short example of each machine, not counted: what a process pays once (imports, Faker's pool, the
    fault registry, and Hypothesis' first look at each precondition lambda's source and at the constants
    of each newly imported local module: 0.3 s and 0.65 s of the first 2.9 s CPU run of ``chaos``), and the
    start of the fork server the restart and data-loss machines fork their processes from (0.4 s, charged to
    whichever machine forked first: 14% of the restart machine's wall time)."""
    from pytest_dbfault.machines.served import start_server

    start_server()
    for name in names:
        measure(name, 1, 2, True)


def load() -> str:
    """The load average, for the record (a wall-time rate means little without it)."""
    try:
        return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not available on this platform
        return "load unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 examples of 15 steps per machine")
    parser.add_argument("--derandomize", action="store_true",
                        help="the same examples every run (implied by --quick, so CI checks one known run)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each machine N times in a row")
    parser.add_argument("machines", nargs="*", default=list(MACHINES))
    args = parser.parse_args()
    unknown = [m for m in args.machines if m not in MACHINES]
    if unknown:
        parser.error(f"unknown machine(s) {', '.join(unknown)}; known: {', '.join(MACHINES)}")
    logging.getLogger("reliability").propagate = False
    examples, steps = (5, 15) if args.quick else (30, 20)
    derandomize = args.derandomize or args.quick
    print(f"{examples} examples x {steps} steps per machine, {load()}", flush=True)
    warm_up(args.machines)
    total_steps, total_time, total_cpu, errors = 0, 0.0, 0.0, 0
    for name in args.machines:
        for _ in range(max(1, args.repeat)):
            STATS.reset()
            n, dt, cpu, outcome = measure(name, examples, steps, derandomize)
            errors += outcome.startswith("ERROR")
            total_steps, total_time, total_cpu = total_steps + n, total_time + dt, total_cpu + cpu
            print(f"{name:18s} {n:6d} steps {dt:7.2f}s {n / dt:8.1f} steps/s  cpu {cpu:6.2f}s {n / cpu:7.1f} "
                  f"steps/cpu-s  faults={sum(STATS.faults.values()):4d}  {outcome}", flush=True)
    print(f"{'all':18s} {total_steps:6d} steps {total_time:7.2f}s {total_steps / total_time:8.1f} steps/s  "
          f"cpu {total_cpu:6.2f}s {total_steps / total_cpu:7.1f} steps/cpu-s  ({load()})")
    if errors:
        raise SystemExit(f"{errors} machine(s) crashed (tracebacks above)")


if __name__ == "__main__":
    main()
