"""The planted bugs of ``benchmarks/bug_finding.py`` still apply to this tree.

A bug whose site moved is reported "stale" by the benchmark, but only when somebody runs it: one did go
stale unnoticed for a session (the write queue's fsync, after the queue's append was rewritten), so its
catch rate counted a bug that was never planted. This keeps the list honest on every run of the tests.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_bug_list():
    spec = importlib.util.spec_from_file_location("bug_finding", ROOT / "benchmarks" / "bug_finding.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module.BUGS


def test_every_planted_bug_site_occurs_exactly_once():
    stale = []
    for bug in load_bug_list():
        n = (ROOT / bug.path).read_text(encoding="utf-8").count(bug.old)
        if n != 1:
            stale.append(f"{bug.name}: its site occurs {n} times in {bug.path}")
    assert not stale, "planted bugs that no longer apply (update their sites):\n" + "\n".join(stale)


def test_bug_names_unique_and_two_per_property():
    bugs = load_bug_list()
    names = Counter(b.name for b in bugs)
    assert [n for n, c in names.items() if c > 1] == []
    per_property = Counter(b.prop for b in bugs)
    assert {p: per_property.get(p, 0) for p in range(1, 18) if per_property.get(p, 0) < 2} == {}
    assert all(b.new != b.old and b.tells_apart for b in bugs)
