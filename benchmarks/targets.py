"""Issue #17's target table in one command: every row, runtime, peewee and raw side by side.

Run::

    python benchmarks/targets.py              # every row (about 2-4 minutes)
    python benchmarks/targets.py --quick      # every row, few rounds (checks it runs; figures are noise)
    python benchmarks/targets.py --clock cpu  # NORMAL rows by this process's CPU time (a loaded machine)

Each row is measured side by side in one run (rounds alternate, rotating who goes first), so a ratio
compares like with like; absolute times on a shared machine are noise. ``peewee`` is the peer
(``pip install -e '.[bench]'``): ``SqliteDatabase``, the same pragmas, no reliability feature. Rows:

* mixed workload (``runtime_overhead.py``): the defaults (FULL + journal), NORMAL + journal, every
  operation logged to a file (NORMAL); time ratio to raw, lower is better;
* FULL + journal, single autocommit insert / update: the per-type ratios of the defaults row;
* 4 writer threads, FULL + journal (``scaling.py``): commits/s of the runtime (one shared manager)
  over raw with the same threads, higher is better — against one raw connection behind a lock (the
  runtime's own architecture) and against one raw connection per thread;
* 1 / 4 / 8 writer processes doing bank transfers (read-modify-write, ``run_in_transaction``, FULL +
  journal) vs raw ``BEGIN IMMEDIATE`` (FULL): acknowledged transfers/s over raw's, higher is better.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import runtime_overhead as ro  # noqa: E402
import scaling  # noqa: E402


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _row(label: str, goal: str, ok: bool | None, runtime: float | None, peewee: float | None,
         note: str = "") -> str:
    verdict = "" if ok is None else ("ok" if ok else "OVER" if goal.startswith("≤") else "UNDER")
    return f"{label:<62}{goal:>9}{_fmt(runtime):>10}{verdict:>7}{_fmt(peewee):>10}  {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds of each row (checks it runs)")
    parser.add_argument("--rounds", type=int, help="rounds of the mixed workload rows (default 15, quick 2)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="clock of the NORMAL rows (cpu: this process's CPU time; FULL rows are always wall)")
    parser.add_argument("--workdir", help="keep the databases here instead of a temporary directory")
    args = parser.parse_args(argv)
    quick = args.quick
    rounds = args.rounds or (2 if quick else 15)
    peer = ro.peewee_available()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    lines: list[str] = []
    with ro.workdir(args.workdir) as wd:
        base = ro.Workload()
        if quick:
            base = base.scaled(0.25)
        base_db = str(wd / "base.db")
        ro.create_database(base_db, 2000 if quick else base.seed_rows)
        full_w = ro.Workload(base.point_read, base.range_read, 20, 4, 20)
        if quick:
            full_w = full_w.scaled(0.5)

        def mixed(name: str, sync: str, overrides: dict, workload: ro.Workload) -> ro.Result:
            ro.CLOCK["now"] = time.process_time if (args.clock == "cpu" and sync == "NORMAL") else time.perf_counter
            try:
                return ro.measure(name, wd, sync, workload, rounds, runtime_overrides=overrides, base_db=base_db,
                                  peer=peer)
            finally:
                ro.CLOCK["now"] = time.perf_counter

        full = mixed("metrics+redo", "FULL", {"redo_journal": True}, full_w)
        normal = mixed("metrics+redo", "NORMAL", {"redo_journal": True}, base)
        oplog = mixed("oplog", "NORMAL", {"operation_log": True, "operation_log_path": str(wd / "ops.log")}, base)

        def ratio(res: ro.Result, op: str | None = None, side: str = "runtime") -> float | None:
            return res.median_ratio(op, side) if side in res.times else None

        for label, goal, limit, res, op in (
                ("defaults (FULL + journal), mixed workload", "≤ 1.15x", 1.15, full, None),
                ("FULL + journal, single autocommit insert", "≤ 1.3x", 1.3, full, "insert"),
                ("FULL + journal, single autocommit update", "≤ 1.3x", 1.3, full, "update"),
                (f"NORMAL + journal, mixed workload ({args.clock})", "≤ 1.10x", 1.10, normal, None),
                (f"every operation logged to a file, NORMAL ({args.clock})", "≤ 1.25x", 1.25, oplog, None)):
            value = ratio(res, op)
            lines.append(_row(label, goal, value is not None and value <= limit, value, ratio(res, op, "peewee"),
                              "time / raw's"))

        # Writer threads: commits/s over raw's = raw time / runtime time, per round.
        scaling.SYNC.update(mode="FULL", redo=True)
        try:
            times = scaling.thread_times(wd, 4, 3 if quick else 10, 20 if quick else 60, peer=peer)
        finally:
            scaling.SYNC.update(mode="NORMAL", redo=False)

        def rate(side: str, baseline: str) -> float | None:
            if side not in times:
                return None
            return statistics.median(b / a for a, b in zip(times[side], times[baseline], strict=True))

        for baseline, what in (("raw-shared", "one raw connection + lock"),
                               ("raw-per-thread", "raw connection per thread")):
            value = rate("runtime", baseline)
            lines.append(_row(f"4 writer threads, FULL + journal, vs {what}", "≥ 0.9x",
                              value is not None and value >= 0.9, value, rate("peewee", baseline),
                              "commits/s / raw's"))

        sides = ("raw", "runtime", "peewee") if peer else ("raw", "runtime")
        for n in (1, 4, 8):
            # Many short rounds: the disk's flush latency drifts over seconds here, so sides alternate often.
            rates = scaling.process_rates(wd, n, 1 if quick else 6, 10 if quick else 20, sides)
            per_round = {side: [a / b for a, b in zip(rates[side], rates["raw"], strict=True)] for side in sides}
            value = statistics.median(per_round["runtime"])
            lines.append(_row(f"{n} writer process{'es' if n > 1 else ''}, bank transfers, FULL + journal",
                              "≥ 0.8x", value >= 0.8, value,
                              statistics.median(per_round["peewee"]) if peer else None,
                              f"acked/s / raw's (raw {statistics.median(rates['raw']):.0f}/s)"))
    load_after = os.getloadavg()[0]
    print(f"issue #17 targets: runtime and peewee against raw sqlite3, side by side ({rounds} rounds of each mixed "
          f"workload; sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]})")
    if not peer:
        print("(peewee is not installed: pip install -e '.[bench]'; its column is empty)")
    head = f"{'measure':<62}{'goal':>9}{'runtime':>10}{'':>7}{'peewee':>10}  unit"
    print(head)
    print("-" * len(head))
    print("\n".join(lines))
    print(f"({time.perf_counter() - started:.0f}s; load average {load_before:.1f} before, {load_after:.1f} after, "
          f"on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
