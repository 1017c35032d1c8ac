"""Which public entry points of the runtime no property machine ever calls (issue #14, item 3).

A planted bug behind an entry point no rule calls is invisible to the main job, whatever its checks: the
held-out batch of session 15 (``benchmarks/bug_finding.py``, h01-h17, written without reading the machines)
was caught 6/16, and most misses sat behind such a name (``rollback_migration``, a folder of migration files,
``conn.commit()`` in a transaction). This test reads the machines' source and lists what they never name:
the facade's public methods and properties, every configuration key and every CLI subcommand. Each name
either appears in a machine or is listed below with the reason; both lists are exact, so a name that
becomes reached must leave them (and the closing note's count stays true).

It is a static reading (a name in the source, not a call made at run time): it can only say "never", which
is what it is for.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

from reliability import DatabaseManager, ReliabilityConfig
from reliability.cli import build_parser

MACHINES = Path(__file__).resolve().parents[2] / "pytest_dbfault" / "machines"

#: Public names no machine needs to call, and why.
NOT_AN_ENTRY_POINT: dict[str, str] = {
    "new_operation_id": "makes an id for an application's own log line; no reliability promise of its own",
    "follow_the_path": "the hook verify() calls before judging the file (the audit machine's tamper rule judges "
                       "its effect; tests/test_audit_restored.py)",
    "audit_key_path": "where the generated key is kept: the machines' audit logs start on the runtime's default "
                      "key handling (the audit machine rotates to configured keys; the file has unit tests)",
    "cli:selfcheck": "it is the main job itself (pytest --dbfault on the shipped machines and scenarios): a rule "
                     "running it would run every machine inside one step of a machine; tests/test_selfcheck.py runs "
                     "it (a pass, a partial run said to be partial, a run that checked nothing is no pass, --json)",
}

#: Entry points no machine reaches yet (issue #14 stays open for them): an exact list, empty since session 18 (the
#: scheduled intervals and the reload timer got rules; selfcheck is the main job itself, see above).
NOT_YET_REACHED: dict[str, str] = {}


def public_surface() -> set[str]:
    """The facade's public methods and properties, the configuration's keys, and ``cli:<subcommand>``."""
    names = {n for n in dir(DatabaseManager) if not n.startswith("_")}
    names |= {f.name for f in dataclasses.fields(ReliabilityConfig)}
    for action in build_parser()._actions:  # argparse keeps subcommands only there
        if isinstance(action, argparse._SubParsersAction):
            names |= {f"cli:{c}" for c in action.choices}
    return names


def named_by_machines() -> set[str]:
    """Every attribute, keyword, name and string constant in the machines' source, and ``cli:<x>`` for each list
    literal ``["x", ...]`` (an argv)."""
    found: set[str] = set()
    for path in MACHINES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                found.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg:
                found.add(node.arg)
            elif isinstance(node, ast.Name):
                found.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
            # An argv: a list literal that starts with a word, given to run_command_line directly or built
            # first (``argv = ["flags", "set", ...]``); "cli:<word>" counts only where <word> is a subcommand.
            if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant):
                found.add(f"cli:{node.elts[0].value}")
    return found


def test_every_public_entry_point_is_named_by_a_machine_or_listed_with_its_reason() -> None:
    unreached = public_surface() - named_by_machines()
    listed = set(NOT_AN_ENTRY_POINT) | set(NOT_YET_REACHED)
    assert unreached - listed == set(), f"no machine names these, and no reason is listed: {sorted(unreached - listed)}"
    assert listed - unreached == set(), f"listed as unreached, but a machine names them: {sorted(listed - unreached)}"


def test_the_lists_name_only_public_entry_points() -> None:
    stale = (set(NOT_AN_ENTRY_POINT) | set(NOT_YET_REACHED)) - public_surface()
    assert not stale, f"not public names of the runtime (renamed?): {sorted(stale)}"


def test_the_reading_sees_a_name_a_machine_uses() -> None:
    """The static reading is not blind: names every machine uses are found, a name none uses is not."""
    found = named_by_machines()
    assert {"transaction", "run_in_transaction", "health", "cli:check", "retry_attempts"} <= found
    assert "no_machine_names_this" not in found
