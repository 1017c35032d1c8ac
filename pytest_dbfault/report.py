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

from .stats import FAMILIES, INSTANT_KINDS, NO_FAULT, PROPERTIES, Stats, family, property_id, split_label

#: Bumped when the JSON layout changes incompatibly.
REPORT_FORMAT = 1
_EXIT_NAMES = {1: "tests failed", 2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def build_report(
    stats: Stats,
    *,
    seed: int,
    fault_kinds: Iterable[str] = (),
    selected: Iterable[str] | None = None,
    tests: Iterable[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
    applicable: Mapping[int, Iterable[str]] | None = None,
    cells_note: str = "",
    replay: str | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    Keys: ``format``, ``seed``, ``replay`` (the command that reruns this run), ``sqlite_version``,
    ``python``, ``faults`` (per kind: injected, selected, family, checks under it and after it),
    ``properties`` (per property id: checks and violations per label — ``none``, a fault kind, or
    ``after:<kind>`` — totals, ``exercised_under_fault``), ``families`` (family -> kinds), ``matrix``
    (per property: ``none`` and per family ``under``/``after``/``violations``/``applicable``, plus
    ``other`` kinds), ``empty_cells`` (declared applicable, no check under the fault),
    ``unchecked_faults`` (injected kinds no property was checked under; for an instant kind, none after
    either), ``instant_faults`` (injected instants, :data:`~.stats.INSTANT_KINDS`, checked after them),
    ``violations`` (one entry per property and label with violations), ``failed_tests``, ``tests`` (per
    test: nodeid, outcome, seed, kind, faults), ``verdict`` (``"pass"`` or ``"fail"``), ``problems`` (why
    it failed) and ``extra``'s keys.

    :param fault_kinds: every fault kind known to the run (registered), listed even when unused.
    :param selected: the kinds ``--dbfault-faults`` selected, or ``None`` for all.
    :param applicable: property number -> families that must have a check under the fault
        (``pytest_dbfault.machines.APPLICABLE``); ``None`` when the cells are not enforced this run.
    :param cells_note: why the cells are not enforced (shown when ``applicable`` is ``None``).
    :param replay: the command that reruns this run (default ``pytest --dbfault --dbfault-seed=SEED``).
    """
    chosen = None if selected is None else set(selected)
    labelled = [split_label(f) for (_, f) in stats.checks]
    kinds = sorted({*fault_kinds, *stats.faults, *(k for _, k in labelled if k is not None)})
    under_by_kind: dict[str, int] = {}
    after_by_kind: dict[str, int] = {}
    for (_, label), n in stats.checks.items():
        phase, kind = split_label(label)
        if kind is not None:
            target = under_by_kind if phase == "under" else after_by_kind
            target[kind] = target.get(kind, 0) + n
    faults = {k: {"injected": stats.faults.get(k, 0), "selected": chosen is None or k in chosen,
                  "family": family(k), "checks_under": under_by_kind.get(k, 0),
                  "checks_after": after_by_kind.get(k, 0)} for k in kinds}

    required = {property_id(n): set(fams) for n, fams in (applicable or {}).items() if n in PROPERTIES}
    properties: dict[str, Any] = {}
    matrix: dict[str, Any] = {}
    empty_cells: list[dict[str, str]] = []
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
            "exercised_under_fault": any(n for f, n in checks.items() if split_label(f)[0] == "under"),
        }
        row: dict[str, Any] = {"none": checks.get(NO_FAULT, 0), "none_violations": violations.get(NO_FAULT, 0)}
        for fam in FAMILIES:
            row[fam] = {"under": 0, "after": 0, "violations": 0, "applicable": fam in required.get(pid, ())}
        other: dict[str, dict[str, int]] = {}
        for label in {*checks, *violations}:
            phase, kind = split_label(label)
            if kind is None:
                continue
            group = family(kind)
            cell = row[group] if group is not None else other.setdefault(kind, {"under": 0, "after": 0,
                                                                                 "violations": 0})
            cell[phase] += checks.get(label, 0)
            cell["violations"] += violations.get(label, 0)
        row["other"] = dict(sorted(other.items()))
        matrix[pid] = row
        for fam in FAMILIES:
            if row[fam]["applicable"] and applicable is not None and not row[fam]["under"]:
                empty_cells.append({"property": pid, "family": fam})

    # An instant (a kill) can have no check under it: checked after it is all there is, and that is said as such.
    instant = [k for k in kinds if k in INSTANT_KINDS and faults[k]["injected"] and not faults[k]["checks_under"]
               and faults[k]["checks_after"]]
    unchecked = [k for k in kinds if faults[k]["injected"] and not faults[k]["checks_under"] and k not in instant]
    violation_list = [{"property": p, "fault": f, "count": n} for (p, f), n in sorted(stats.violations.items()) if n]
    test_list = [dict(t) for t in tests]
    failed = [t for t in test_list if t.get("outcome") in ("failed", "error")]
    problems: list[str] = []
    if failed:
        problems.append(f"{len(failed)} failed test{'s' if len(failed) != 1 else ''}")
    # Property violations are not a problem of their own: every machine and scenario fails its test on
    # one, so violations recorded by tests that all passed were expected by them (bite tests). The
    # summary still lists them and never says "violations: none" then.
    if empty_cells:
        problems.append(f"{len(empty_cells)} empty applicable cell{'s' if len(empty_cells) != 1 else ''}")
    status = int((extra or {}).get("exitstatus", 0))
    if status and not problems:
        # pytest fails for a reason no test explains (interrupted, internal or usage error, nothing collected,
        # another plugin's gate): never a clean verdict.
        problems.append(f"pytest exit status {status}" + (f" ({_EXIT_NAMES[status]})" if status in _EXIT_NAMES
                                                           else ""))
    data: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "seed": seed,
        "replay": replay or f"pytest --dbfault --dbfault-seed={seed}",
        "sqlite_version": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "faults": faults,
        "properties": properties,
        "families": {fam: sorted(ks) for fam, ks in FAMILIES.items()},
        "matrix": matrix,
        "cells_enforced": applicable is not None,
        "cells_note": "" if applicable is not None else cells_note,
        "empty_cells": empty_cells,
        "unchecked_faults": unchecked,
        "instant_faults": instant,
        "violations": violation_list,
        "failed_tests": [{"nodeid": t.get("nodeid"), "outcome": t.get("outcome"), "kind": t.get("kind"),
                          "seed": t.get("seed")} for t in failed],
        "tests": test_list,
        "verdict": "fail" if problems else "pass",
        "problems": problems,
    }
    data.update(extra or {})
    return data


def render_summary(data: Mapping[str, Any], width: int = 80) -> list[str]:
    """The terminal lines for a :func:`build_report` dict, fitted to ``width`` columns.

    A matrix of checks per property (rows) and fault family (columns: no fault, locked, disk full,
    corruption, disconnect, other kinds), each family cell ``U/A``: checks made while a fault of the
    family was in force / checks made after it healed; ``!N`` marks N violations and ``*`` a cell
    the machines declare applicable that has no check under the fault. When it does not fit, one
    line per property instead. Then the other kinds per property, warnings (properties never checked
    under a fault, injected kinds that fed no check) and the verdict: ``violations: none`` only when
    no test failed, no property was violated and no applicable cell is empty.
    """
    seed = data["seed"]
    replay = data.get("replay") or f"pytest --dbfault --dbfault-seed={seed}"
    lines = [f"seed {seed} (replay with: {replay}), "
             f"SQLite {data['sqlite_version']}, Python {data['python']}"]
    profile = data.get("hypothesis_profile")
    if profile:
        lines.append(f"Hypothesis profile of the machines: {profile['name']} ({profile['source']})")
    injected = {k: v["injected"] for k, v in data["faults"].items() if v["injected"]}
    if injected:
        total = sum(injected.values())
        lines.append("faults injected: " + ", ".join(f"{k} {n}" for k, n in injected.items()) + f" ({total} in total)")
    else:
        lines.append("faults injected: none")

    props: Mapping[str, Any] = data["properties"]
    checked = sum(p["total_checks"] for p in props.values())
    if not checked:
        lines.append(f"property checks: none recorded, so none of the {len(props)} properties was exercised")
    else:
        lines.extend(_family_lines(data, width, checked))

    never = [pid for pid, p in props.items() if not p["exercised_under_fault"]]
    if checked and len(never) == len(props):
        lines.append(f"NOT EXERCISED under any fault: all {len(props)} properties")
    elif checked and never:
        lines.append("NOT EXERCISED under any fault: " + ", ".join(never))
    for kind in data.get("instant_faults", []):
        f = data["faults"][kind]
        lines.append(f"instant fault: {kind} ({f['injected']}x) is never in force: checked after it "
                     f"({f['checks_after']} checks)")
    for kind in data.get("unchecked_faults", []):
        f = data["faults"][kind]
        if kind in INSTANT_KINDS:
            lines.append(f"WARNING: {kind} was injected {f['injected']}x but no property was checked after it")
            continue
        after = f" ({f['checks_after']} after it healed)" if f["checks_after"] else ""
        lines.append(f"WARNING: {kind} was injected {f['injected']}x but no property was checked while it "
                     f"was in force{after}")
    if not data.get("cells_enforced", True) and data.get("cells_note"):
        lines.append(f"applicable cells not enforced: {data['cells_note']}")
    empty = data.get("empty_cells", [])
    if empty:
        lines.append(f"EMPTY CELLS: {len(empty)} declared applicable with no check under the fault: "
                     + ", ".join(f"{c['property']} x {c['family']}" for c in empty))
    failed = data.get("failed_tests", [])
    if failed:
        lines.append(f"FAILED: {len(failed)}: " + ", ".join(f"{t['nodeid']} ({t['outcome']})" for t in failed))
    if data["violations"]:
        total = sum(v["count"] for v in data["violations"])
        where = ", ".join(f"{v['property']} under {v['fault']} ({v['count']})" for v in data["violations"])
        lines.append(f"VIOLATIONS: {total}: {where}")
    problems = data.get("problems")
    if problems is None:  # a report of an older format: only property violations are known
        problems = ["violations"] if data["violations"] else []
    if not checked and not problems and not data["violations"]:
        return lines  # nothing was checked: no verdict to give, and never a clean one
    if problems:
        lines.append("VERDICT: FAIL (" + ", ".join(problems) + ")")
    elif data["violations"]:
        lines.append("verdict: pass (the violations above were recorded by tests that passed: they expected them)")
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


def _family_cell(cell: Mapping[str, Any], enforced: bool) -> str:
    text = "-" if not cell["under"] and not cell["after"] else f"{cell['under']}/{cell['after']}"
    if cell["violations"]:
        text += f"!{cell['violations']}"
    if enforced and cell.get("applicable") and not cell["under"]:
        text += "*"
    return text


def _other_cell(row: Mapping[str, Any]) -> dict[str, int]:
    total = {"under": 0, "after": 0, "violations": 0}
    for cell in row["other"].values():
        for key in total:
            total[key] += cell[key]
    return total


def _none_cell(row: Mapping[str, Any]) -> str:
    text = str(row["none"]) if row["none"] or row["none_violations"] else "-"
    return text + (f"!{row['none_violations']}" if row["none_violations"] else "")


def _family_lines(data: Mapping[str, Any], width: int, checked: int) -> list[str]:
    matrix: Mapping[str, Any] = data["matrix"]
    enforced = bool(data.get("cells_enforced"))
    families = list(data.get("families", FAMILIES))
    header = ["property", NO_FAULT, *families, "other"]
    rows = []
    for pid, row in matrix.items():
        rows.append([pid, _none_cell(row), *(_family_cell(row[f], enforced) for f in families),
                     _family_cell(_other_cell(row), False)])
    legend = ('"U/A": checks under the fault / after it healed, "!N": N violations, "-": none'
              + (', "*": declared applicable, never checked under the fault' if enforced else ""))
    lines = [f"checks per property and fault family ({legend}), {checked} in total"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    if sum(widths) + 2 * (len(widths) - 1) <= width:
        for row in [header, *rows]:
            cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            lines.append("  ".join(cells).rstrip())
    else:
        for row in rows:
            cells = [f"{name} {cell}" for name, cell in zip(header[1:], row[1:], strict=True) if cell != "-"]
            lines.append(f"{row[0]}: {', '.join(cells) or '-'}")
    others: dict[str, list[str]] = {}
    for pid, row in matrix.items():
        for kind, cell in row["other"].items():
            others.setdefault(kind, []).append(f"{pid.split('_')[0]} {_family_cell(cell, False)}")
    if others:
        lines.append("other fault kinds (U/A per property):")
        lines.extend(f"  {kind}: {', '.join(cells)}" for kind, cells in sorted(others.items()))
    return lines
