"""The mutants ``benchmarks/mutation_sample.py`` makes are single, well-formed, applicable edits.

A catch rate over mutants that do not compile, or that change more than the one token or statement they name,
would measure the parser, not the machines.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


SOURCE = '''"""a module"""
import logging
log = logging.getLogger(__name__)


def limit(attempt, attempts, budget):
    """A docstring < with > operators and 1 number."""
    if attempt >= attempts and not budget:
        return True
    log.debug("tried %d", attempt + 1)
    wait = attempt * 2 - 1
    return wait


class Holder:
    def set(self, value):
        self.value = value
        self.items.append(value)
        self.value = value
'''


def test_every_mutant_compiles_changes_one_line_and_applies_once(tmp_path):
    mutation_sample = load("mutation_sample")
    bug_finding = sys.modules["bug_finding"]
    (tmp_path / "reliability").mkdir()
    (tmp_path / "reliability" / "m.py").write_text(SOURCE, encoding="utf-8")
    ran = {"reliability/m.py": set(range(1, SOURCE.count("\n") + 2))}
    mutants = mutation_sample.candidates(ran, tmp_path)
    kinds = {m.kind.split("@")[0] for m in mutants}
    # every operator meets this module; the docstring, the logging line and module-level code are left alone
    assert kinds == {"compare", "boolop", "drop-not", "bool", "number", "arith", "drop-call", "drop-attr-assign"}
    assert not [m for m in mutants if m.line in (1, 3, 7, 10)]
    for m in mutants:
        bug = mutation_sample.as_bug(m, tmp_path)
        assert SOURCE.count(bug.old) == 1, m
        changed = SOURCE.replace(bug.old, bug.new)
        ast.parse(changed)  # compiles
        diff = [(a, b) for a, b in zip(SOURCE.splitlines(), changed.splitlines(), strict=True) if a != b]
        assert len(diff) == 1 and diff[0][0] == m.old, m
        tree = tmp_path / "copy"
        (tree / "reliability").mkdir(parents=True, exist_ok=True)
        (tree / "reliability" / "m.py").write_text(SOURCE, encoding="utf-8")
        bug_finding.apply(bug, tree)
        assert (tree / "reliability" / "m.py").read_text(encoding="utf-8") == changed


def test_a_repeated_line_is_widened_until_it_is_unique(tmp_path):
    mutation_sample = load("mutation_sample")
    (tmp_path / "reliability").mkdir()
    (tmp_path / "reliability" / "m.py").write_text(SOURCE, encoding="utf-8")
    ran = {"reliability/m.py": set(range(1, SOURCE.count("\n") + 2))}
    second = [m for m in mutation_sample.candidates(ran, tmp_path)
              if m.kind == "drop-attr-assign" and m.line == SOURCE.splitlines().index("        self.value = value",
                                                                                       17) + 1]
    assert len(second) == 1
    bug = mutation_sample.as_bug(second[0], tmp_path)
    assert bug.old.count("\n") >= 2 and SOURCE.count(bug.old) == 1
    assert SOURCE.replace(bug.old, bug.new).splitlines()[16:19] == [
        "        self.value = value", "        self.items.append(value)", "        pass"]
