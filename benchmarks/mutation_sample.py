"""A held-out estimate of the main job's catch rate: a random sample of machine-made single-site mutants.

Usage::

    python benchmarks/mutation_sample.py --sample 60 --seed 1          # coverage run, then 60 mutants
    python benchmarks/mutation_sample.py --list --coverage cov.json     # every candidate mutant, no run
    python benchmarks/mutation_sample.py --sample 60 --seed 2 --coverage cov.json --jobs 2

Why: the planted bugs of ``bug_finding.py`` are written by people, and each blind batch (h, x, y, z, w, v) fell
beside the edge of what the machines judge in a new place. A mutant made by a rule nobody chose for this runtime
(a comparison flipped, a boolean operator swapped, a constant moved by one, a call statement dropped, an
attribute assignment dropped) is a bug nobody tuned the machines for. Drawn uniformly from the statements the
main job *runs*, the share caught estimates how well the machines judge what they execute; the survivors are a
worklist with a file and a line each.

Mutants are made on lines the main job executed (a coverage run of ``pytest --dbfault``, as
``surface_reach.py`` makes it, or ``--coverage`` to reuse one), inside function bodies of ``reliability/``.
Operators, one token each: ``< <= > >= == !=`` moved to their neighbour or negation, ``and``/``or`` swapped,
a unary ``not`` dropped, ``True``/``False`` swapped, an integer literal ``n`` made ``n + 1`` (0 and 1 swapped),
binary ``+``/``-`` swapped; and one statement each: a call on a line of its own replaced by ``pass``, an
assignment to an attribute (``self.x = ...``) replaced by ``pass``. Lines that only log (``log.debug(...)``) are
left out: dropping a debug record is not a defect anyone could observe.

Some mutants are equivalent (no input tells them apart from the original); a survivor is a candidate gap to read,
not a proven one. Each run applies one mutant to a fresh copy of the tree and runs the main job exactly as
``bug_finding.py`` does (a failed machine test is a catch; a timeout is not).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import random
import subprocess
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bug_finding  # noqa: E402  (a sibling script, not a package)
import surface_reach  # noqa: E402

ROOT = bug_finding.ROOT

_SWAP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "and": "or", "or": "and",
         "True": "False", "False": "True", "+": "-", "-": "+"}
_LOG_CALLS = ("log.debug(", "log.info(", "logger.debug(", "logger.info(", "_log.debug(", "_log.info(")


@dataclass(frozen=True)
class Mutant:
    """One machine-made edit: line ``line`` of ``path`` becomes ``new``."""

    path: str
    line: int
    kind: str
    old: str
    new: str

    @property
    def name(self) -> str:
        return f"{self.path.removeprefix('reliability/')}:{self.line}:{self.kind}"


def _function_body_lines(tree: ast.AST) -> set[int]:
    """Every line inside a function body, its docstring left out."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for stmt in node.body:
                if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                        and isinstance(stmt.value.value, str)):
                    continue
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def _statement_mutants(path: str, tree: ast.AST, source: list[str], ran: set[int]) -> list[Mutant]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Expr | ast.Assign) or node.lineno != node.end_lineno or node.lineno not in ran:
            continue
        text = source[node.lineno - 1]
        indent = text[: len(text) - len(text.lstrip())]
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if any(c in text for c in _LOG_CALLS):
                continue
            out.append(Mutant(path, node.lineno, "drop-call", text, indent + "pass"))
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Attribute) for t in node.targets):
            out.append(Mutant(path, node.lineno, "drop-attr-assign", text, indent + "pass"))
    return out


def _token_mutants(path: str, text: str, lines: set[int], ran: set[int]) -> list[Mutant]:
    out = []
    source = text.splitlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, tok in enumerate(tokens):
        row = tok.start[0]
        if row not in lines or row not in ran or tok.start[0] != tok.end[0]:
            continue
        line = source[row - 1]
        if any(c in line for c in _LOG_CALLS):
            continue
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        new_tok = None
        kind = ""
        if tok.type == tokenize.OP and tok.string in ("<", "<=", ">", ">=", "==", "!="):
            new_tok, kind = _SWAP[tok.string], "compare"
        elif tok.type == tokenize.NAME and tok.string in ("and", "or"):
            new_tok, kind = _SWAP[tok.string], "boolop"
        elif tok.type == tokenize.NAME and tok.string in ("True", "False"):
            new_tok, kind = _SWAP[tok.string], "bool"
        elif tok.type == tokenize.NAME and tok.string == "not":
            # a unary not: not the `not` of `is not` / `not in`
            if (prev is not None and prev.string == "is") or (nxt is not None and nxt.string == "in"):
                continue
            new_tok, kind = "", "drop-not"
        elif tok.type == tokenize.NUMBER and tok.string.isdigit():
            n = int(tok.string)
            new_tok, kind = str(1 - n if n in (0, 1) else n + 1), "number"
        elif tok.type == tokenize.OP and tok.string in ("+", "-") and prev is not None and (
                prev.type in (tokenize.NAME, tokenize.NUMBER) or prev.string in (")", "]")):
            if prev.type == tokenize.NAME and prev.string in ("return", "in", "and", "or", "not", "if", "else"):
                continue
            if nxt is not None and nxt.type == tokenize.STRING:
                continue  # string concatenation: a TypeError, not a plausible defect
            new_tok, kind = _SWAP[tok.string], "arith"
        if new_tok is None:
            continue
        a, b = tok.start[1], tok.end[1]
        new_line = line[:a] + new_tok + line[b:]
        if kind == "drop-not":
            new_line = line[:a] + line[b:].lstrip()
        out.append(Mutant(path, row, f"{kind}@{a}", line, new_line))
    return out


def candidates(ran_by_file: dict[str, set[int]], root: Path = ROOT) -> list[Mutant]:
    """Every mutant on an executed line of a function body of ``reliability/``, in a stable order."""
    out: list[Mutant] = []
    for path in sorted(ran_by_file):
        text = (root / path).read_text(encoding="utf-8")
        tree = ast.parse(text)
        body = _function_body_lines(tree)
        ran = ran_by_file[path] & body
        if not ran:
            continue
        # a statement spanning lines counts as run when its first line ran
        ran_lines = set(ran)
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and node.lineno in ran and node.end_lineno:
                ran_lines.update(range(node.lineno, node.end_lineno + 1))
        out.extend(_token_mutants(path, text, body, ran_lines))
        out.extend(_statement_mutants(path, tree, text.splitlines(), ran))
    return sorted(out, key=lambda m: (m.path, m.line, m.kind))


def as_bug(m: Mutant, root: Path = ROOT) -> bug_finding.Bug:
    """The mutant as a planted bug: its line, widened with the lines around it until it occurs once."""
    lines = (root / m.path).read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(lines)
    lo = hi = m.line - 1
    while True:
        old = "".join(lines[lo:hi + 1])
        if text.count(old) == 1 or (lo == 0 and hi == len(lines) - 1):
            break
        lo, hi = max(0, lo - 1), min(len(lines) - 1, hi + 1)
    eol = "\n" if lines[m.line - 1].endswith("\n") else ""
    new = "".join(lines[lo:m.line - 1]) + m.new + eol + "".join(lines[m.line:hi + 1])
    return bug_finding.Bug(m.name, 0, m.path, old, new, f"{m.kind}: {m.old.strip()} -> {m.new.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=40, help="mutants drawn (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="the draw's seed (default 0)")
    parser.add_argument("--coverage", default=None, help="a coverage JSON of a main-job run to reuse")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per main-job run")
    parser.add_argument("--profile", choices=("default", "ci"), default="default")
    parser.add_argument("--list", action="store_true", help="print the candidates and stop")
    parser.add_argument("--only", action="append", default=[], help="run these mutant names (from a list)")
    parser.add_argument("--mutants-from", default=None, metavar="REV",
                        help="make the mutants (and their names) from this git revision's reliability/, then plant "
                             "them in today's tree by their text: the same sample before and after a change to "
                             "the checks (a mutant whose lines changed since is reported stale)")
    args = parser.parse_args(argv)

    snapshot = tempfile.TemporaryDirectory(prefix="dbfault-mut-snapshot-")
    bug_finding.SNAPSHOT[0] = Path(snapshot.name)
    bug_finding.copy_tree(bug_finding.SNAPSHOT[0], ROOT)
    if args.coverage:
        report = Path(args.coverage)
    else:
        report = Path(tempfile.mkdtemp(prefix="dbfault-mut-")) / "coverage.json"
        code, last = surface_reach.run_main_job(args.profile, None, report)
        print(f"coverage run: exit {code}, {last}; saved to {report}", flush=True)
        if code != 0:
            print("the main job fails on the unmodified tree: a catch rate would mean nothing")
            return 2
    data = json.loads(report.read_text(encoding="utf-8"))
    ran = {p: set(d["executed_lines"]) for p, d in data["files"].items() if p.startswith("reliability/")}
    source = bug_finding.SNAPSHOT[0]
    if args.mutants_from:
        source = Path(tempfile.mkdtemp(prefix="dbfault-mut-from-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.mutants_from, "reliability"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    pool = candidates(ran, source)
    if args.list:
        for m in pool:
            print(f"{m.name:48} {m.new.strip()[:90]}")
        print(f"{len(pool)} candidate mutants")
        return 0
    chosen = ([m for m in pool if m.name in args.only] if args.only
              else random.Random(args.seed).sample(pool, min(args.sample, len(pool))))
    print(f"mutation sample: {len(chosen)} of {len(pool)} candidates, seed {args.seed}, profile {args.profile}, "
          f"jobs {args.jobs}, timeout {args.timeout:.0f}s", flush=True)
    results: dict[str, tuple[str, float, str]] = {}

    def one(m: Mutant) -> None:
        bug = as_bug(m, source)
        results[m.name] = bug_finding.run_main_job(bug, args.profile, args.timeout, None, no_shrink=True)
        outcome, dt, last = results[m.name]
        print(f"{outcome:8} {dt:6.0f}s  {m.name:44} {m.new.strip()[:70]}  | {last[:80]}", flush=True)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        list(ex.map(one, chosen))
    outs = [results[m.name][0] for m in chosen]
    counted = len(outs) - outs.count("stale")
    caught = outs.count("caught")
    print(f"\ncaught {caught}/{counted} ({100.0 * caught / max(1, counted):.0f}%), missed {outs.count('missed')}, "
          f"timeout {outs.count('timeout')}, broken {outs.count('broken')}, stale {outs.count('stale')}; "
          f"{time.monotonic() - t0:.0f}s")
    for m in chosen:
        if results[m.name][0] != "caught":
            print(f"  {results[m.name][0]:8} {m.name:44} {m.old.strip()[:60]!r} -> {m.new.strip()[:60]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
