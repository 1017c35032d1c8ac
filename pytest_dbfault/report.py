"""The property × fault report: a JSON-ready dict built from the stats, and its terminal rendering.

Plain Python::

    data = build_report(STATS, seed=42, fault_kinds=["locked", "disk_full"])
    print("\\n".join(render_summary(data)))
    write_report(Path("dbfault.json"), data)
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .stats import NO_FAULT, PROPERTIES, Stats, property_id

#: Bumped when the JSON layout changes incompatibly.
REPORT_FORMAT = 1


def build_report(
    stats: Stats,
    *,
    seed: int,
    fault_kinds: Iterable[str] = (),
    selected: Iterable[str] | None = None,
    tests: Iterable[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    Keys: ``format``, ``seed``, ``sqlite_version``, ``python``, ``faults`` (per kind: injected,
    selected), ``properties`` (per property id: checks and violations per fault kind, totals,
    ``exercised_under_fault``), ``violations`` (one entry per property and fault kind with
    violations), ``tests`` (per test: nodeid, outcome, seed, kind, faults) and ``extra``'s keys.

    :param fault_kinds: every fault kind known to the run (registered), listed even when unused.
    :param selected: the kinds ``--dbfault-faults`` selected, or ``None`` for all.
    """
    chosen = None if selected is None else set(selected)
    kinds = sorted({*fault_kinds, *stats.faults, *(f for (_, f) in stats.checks if f != NO_FAULT)})
    faults = {k: {"injected": stats.faults.get(k, 0), "selected": chosen is None or k in chosen} for k in kinds}

    properties: dict[str, Any] = {}
    for number in PROPERTIES:
        pid = property_id(number)
        checks = {f: n for (p, f), n in sorted(stats.checks.items()) if p == pid}
        violations = {f: n for (p, f), n in sorted(stats.violations.items()) if p == pid}
        properties[pid] = {
            "number": number,
            "checks": checks,
            "violations": violations,
            "total_checks": sum(checks.values()),
            "total_violations": sum(violations.values()),
            "exercised_under_fault": any(n for f, n in checks.items() if f != NO_FAULT),
        }
    violation_list = [{"property": p, "fault": f, "count": n} for (p, f), n in sorted(stats.violations.items()) if n]
    data: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "seed": seed,
        "sqlite_version": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "faults": faults,
        "properties": properties,
        "violations": violation_list,
        "tests": [dict(t) for t in tests],
    }
    data.update(extra or {})
    return data


def render_summary(data: Mapping[str, Any], width: int = 80) -> list[str]:
    """The terminal lines for a :func:`build_report` dict, fitted to ``width`` columns.

    A matrix of checks per property (rows) and fault kind (columns), ``!N`` marking N
    violations; when it does not fit, one line per property instead. Properties never
    checked under any fault are listed at the end.
    """
    seed = data["seed"]
    lines = [f"seed {seed} (replay with: pytest --dbfault --dbfault-seed={seed}), "
             f"SQLite {data['sqlite_version']}, Python {data['python']}"]
    injected = {k: v["injected"] for k, v in data["faults"].items() if v["injected"]}
    if injected:
        total = sum(injected.values())
        lines.append("faults injected: " + ", ".join(f"{k} {n}" for k, n in injected.items()) + f" ({total} in total)")
    else:
        lines.append("faults injected: none")

    props: Mapping[str, Any] = data["properties"]
    checked_kinds = {f for p in props.values() for f in p["checks"]}
    if not checked_kinds:
        lines.append(f"property checks: none recorded, so none of the {len(props)} properties was exercised")
        return lines

    kinds = [NO_FAULT] if NO_FAULT in checked_kinds else []
    kinds += sorted((checked_kinds | set(injected)) - {NO_FAULT})
    table = _matrix(props, kinds)
    lines.append(f'checks per property and fault kind ("!N": N violations, "-": not checked), '
                 f"{sum(p['total_checks'] for p in props.values())} in total")
    if max(len(row) for row in table) <= width:
        lines.extend(table)
    else:
        for pid, p in props.items():
            cells = ", ".join(f"{f} {_cell(p, f)}" for f in kinds if f in p["checks"] or f in p["violations"])
            lines.append(f"{pid}: {cells or '-'}")

    never = [pid for pid, p in props.items() if not p["exercised_under_fault"]]
    if len(never) == len(props):
        lines.append(f"NOT EXERCISED under any fault: all {len(props)} properties")
    elif never:
        lines.append("NOT EXERCISED under any fault: " + ", ".join(never))
    if data["violations"]:
        total = sum(v["count"] for v in data["violations"])
        where = ", ".join(f"{v['property']} under {v['fault']} ({v['count']})" for v in data["violations"])
        lines.append(f"VIOLATIONS: {total}: {where}")
    else:
        lines.append("violations: none")
    return lines


def write_report(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``path`` (parent directories created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)  # a reader never sees half a report
    return target


def _cell(prop: Mapping[str, Any], kind: str) -> str:
    checks = prop["checks"].get(kind, 0)
    violations = prop["violations"].get(kind, 0)
    if not checks and not violations:
        return "-"
    return f"{checks}!{violations}" if violations else str(checks)


def _matrix(props: Mapping[str, Any], kinds: list[str]) -> list[str]:
    header = ["property", *kinds, "total"]
    rows = [[pid, *(_cell(p, k) for k in kinds),
             f"{p['total_checks']}!{p['total_violations']}" if p["total_violations"] else str(p["total_checks"])]
            for pid, p in props.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines
