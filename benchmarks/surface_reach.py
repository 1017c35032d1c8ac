"""Which functions of the runtime the main job never runs (issue #14, item 3: explore the runtime's whole surface).

Usage: ``python benchmarks/surface_reach.py [--profile default|ci] [--seed N] [--bugs PREFIX] [--json]``.

A planted bug in a function no machine or scenario runs is missed whatever the checks say; so is a real one.
``tests/machines/test_public_reach.py`` reads the machines' source for the *names* of the public entry points;
this script measures what a main-job run *executes*: it runs ``pytest --dbfault`` under coverage (branch mode,
``reliability`` only) and lists every function of ``reliability/`` none of whose statements ran, with the
run's totals. A static name is not a call: the dynamic list is what the held-out batches kept falling into
(session 20: three of the nine z-batch misses sat in functions never run, e.g. a read-only database's
classification and a failed read command).

``--bugs PREFIX`` also says, for each planted bug of ``bug_finding.py`` whose name starts with the prefix,
whether the main job ran the statements it replaces: a bug at a site never run is an exploration gap, one at a
site that ran and was missed an oracle gap.

Coverage is taken in the pytest process only: the worker processes the restart, data-loss and commit-path
machines fork and kill are not measured, so a function only those workers run is listed too (the kill paths of
``redo.py``). Read the list as "never run in this process", a bound, not a verdict. One run, random seed unless
``--seed``: the machines draw their steps, so a second run lists a few functions more or less.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_main_job(profile: str, seed: int | None, report: Path) -> tuple[int, str]:
    """Run the main job under coverage; (exit code, last line of its output)."""
    env = dict(os.environ)
    env.pop("HYPOTHESIS_PROFILE", None)
    env.pop("CI", None)
    if profile == "ci":
        env["CI"] = "1"
    cmd = [sys.executable, "-m", "pytest", "--dbfault", "-q", "-p", "no:cacheprovider", "--cov=reliability",
           "--cov-branch", f"--cov-report=json:{report}"]
    if seed is not None:
        cmd.append(f"--dbfault-seed={seed}")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode, lines[-1] if lines else ""


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    """The first line of each statement of a function's body, its docstring left out (it never "runs")."""
    lines = set()
    for stmt in node.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue
        lines.add(stmt.lineno)
    return lines


def never_run(files: dict[str, dict]) -> tuple[list[tuple[str, int, str]], int]:
    """Functions of the measured files none of whose statements ran; and how many functions there are."""
    out: list[tuple[str, int, str]] = []
    total = 0
    for path, data in sorted(files.items()):
        executed = set(data["executed_lines"])
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = body_lines(node)
                if not lines:
                    continue
                total += 1
                if not lines & executed:
                    out.append((path, node.lineno, node.name))
    return out, total


def bug_sites(files: dict[str, dict], prefix: str) -> list[tuple[str, str, bool]]:
    """(bug, file:lines, ran) for each planted bug of bug_finding.py whose name starts with ``prefix``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bug_finding

    out = []
    for bug in bug_finding.BUGS:
        if not bug.name.startswith(prefix):
            continue
        text = (ROOT / bug.path).read_text(encoding="utf-8")
        at = text.find(bug.old)
        if at < 0:
            out.append((bug.name, f"{bug.path}: site gone", False))
            continue
        first = text[:at].count("\n") + 1
        last = first + bug.old.rstrip("\n").count("\n")
        data = files.get(bug.path, {"executed_lines": []})
        executed = set(data["executed_lines"])
        # A site's own statements: a ``def`` line "runs" at import, so only lines below a def count for it.
        lines = [n for n in range(first, last + 1)
                 if not text.splitlines()[n - 1].lstrip().startswith(("def ", "async def ", "class "))]
        out.append((bug.name, f"{bug.path}:{first}-{last}", any(n in executed for n in lines)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("default", "ci"), default="default")
    parser.add_argument("--seed", type=int, default=None, help="--dbfault-seed for the run (default: random)")
    parser.add_argument("--bugs", default=None, help="also classify the planted bugs whose name starts with this")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of text")
    parser.add_argument("--report", default=None, help="read this coverage JSON instead of running the main job")
    args = parser.parse_args(argv)
    if args.report:
        report, code, last = Path(args.report), 0, "(coverage read from " + args.report + ")"
    else:
        report = Path(tempfile.mkdtemp(prefix="dbfault-reach-")) / "coverage.json"
        code, last = run_main_job(args.profile, args.seed, report)
    data = json.loads(report.read_text(encoding="utf-8"))
    files = {p: d for p, d in data["files"].items() if p.startswith("reliability/")}
    never, total = never_run(files)
    totals = data["totals"]
    sites = bug_sites(files, args.bugs) if args.bugs is not None else []
    if args.json:
        print(json.dumps({"main_job_exit": code, "main_job": last, "percent_covered": totals["percent_covered"],
                          "functions": total, "never_run": [f"{p}:{n} {f}" for p, n, f in never],
                          "bug_sites": [{"bug": b, "site": s, "ran": r} for b, s, r in sites]}, indent=2))
    else:
        print(f"main job ({args.profile} profile): exit {code}, {last}")
        print(f"reliability/ under the main job: {totals['percent_covered']:.1f}% (statements and branches), "
              f"{totals['covered_lines']}/{totals['num_statements']} statements, "
              f"{totals['covered_branches']}/{totals['num_branches']} branches")
        print(f"{len(never)} of {total} functions never run in the pytest process:")
        for path, line, name in never:
            print(f"  {path}:{line} {name}")
        if sites:
            ran = sum(r for _b, _s, r in sites)
            print(f"planted bugs: {ran} at a site the run executed, {len(sites) - ran} at a site it never ran")
            for bug, site, r in sites:
                print(f"  {'ran  ' if r else 'NEVER'} {bug:52} {site}")
    if code not in (0, 1) and not args.report:
        print("the main job did not finish (see its output): the list above is incomplete", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
