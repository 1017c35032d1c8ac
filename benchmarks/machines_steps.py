"""Stateful steps per second of each property machine, faults on (goal: >= 200 steps/s on 2 cores).

Usage: ``python benchmarks/machines_steps.py [--quick] [machine ...]``. Runs each machine's
generate phase only (no shrinking) against ``reliability.DatabaseManager`` and counts the
rules and invariants executed. Violations found by the machines are reported, not hidden.
"""

from __future__ import annotations

import argparse
import logging
import time
import traceback

from hypothesis import HealthCheck, Phase, settings

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.stats import STATS


def measure(name: str, examples: int, steps: int, derandomize: bool = False) -> tuple[int, float, str]:
    machine = bind(MACHINES[name])
    counted = [0]
    step_hook = machine.check_invariants

    def counting(self, *a, **k):  # type: ignore[no-untyped-def]
        counted[0] += 1  # called once after every rule: one stateful step
        return step_hook(self, *a, **k)

    machine.check_invariants = counting  # type: ignore[method-assign]
    from hypothesis.stateful import run_state_machine_as_test

    t0 = time.perf_counter()
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
    return counted[0], time.perf_counter() - t0, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 examples of 15 steps per machine")
    parser.add_argument("--derandomize", action="store_true",
                        help="the same examples every run (implied by --quick, so CI checks one known run)")
    parser.add_argument("machines", nargs="*", default=list(MACHINES))
    args = parser.parse_args()
    logging.getLogger("reliability").propagate = False
    examples, steps = (5, 15) if args.quick else (30, 20)
    derandomize = args.derandomize or args.quick
    total_steps, total_time, errors = 0, 0.0, 0
    for name in args.machines:
        STATS.reset()
        n, dt, outcome = measure(name, examples, steps, derandomize)
        errors += outcome.startswith("ERROR")
        total_steps, total_time = total_steps + n, total_time + dt
        print(f"{name:18s} {n:6d} steps {dt:7.2f}s {n / dt:8.1f} steps/s  faults={sum(STATS.faults.values()):4d}  "
              f"{outcome}")
    print(f"{'all':18s} {total_steps:6d} steps {total_time:7.2f}s {total_steps / total_time:8.1f} steps/s")
    if errors:
        raise SystemExit(f"{errors} machine(s) crashed (tracebacks above)")


if __name__ == "__main__":
    main()
