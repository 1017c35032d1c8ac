"""The house's structural rules, read from the code's own imports (``ast``, type-only imports included).

- ``reliability/`` never imports pytest, hypothesis or ``pytest_dbfault``.
- Import cycles are a ratchet: the cycles that exist today (issue #16 removes them) are listed
  here, a new one fails, and a listed one that is gone must be deleted from the list so it can
  never come back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WINGS = ("reliability", "pytest_dbfault")

#: Cycles still present (each a sorted tuple of module names); shrink only.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from . import x`` resolved, submodules kept)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for wing in WINGS for p in (ROOT / wing).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        # A package's __init__ re-exporting its modules is not a cycle of the modules themselves.
        targets = {t for t in imports_of(path, name) if t in files and t != name}
        edges[name] = {t for t in targets if not (name.startswith(t + ".") and files[t].name == "__init__.py")}
    return edges


def cycles(edges: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.add(tuple(sorted(component)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_runtime_wing_imports_nothing_of_the_test_wing() -> None:
    forbidden = ("pytest", "_pytest", "hypothesis", "pytest_dbfault")
    bad = {
        f"{module_name(p)} imports {t}"
        for p in (ROOT / "reliability").rglob("*.py")
        for t in imports_of(p, module_name(p))
        if t.split(".")[0] in forbidden
    }
    assert not bad


def test_no_new_import_cycle_and_the_list_of_old_ones_only_shrinks() -> None:
    found = cycles(graph())
    assert not found - KNOWN_CYCLES, f"new import cycle(s): {sorted(found - KNOWN_CYCLES)}"
    gone = KNOWN_CYCLES - found
    assert not gone, f"cycle(s) removed, delete them from KNOWN_CYCLES so they stay gone: {sorted(gone)}"


def test_the_cycle_finder_sees_a_cycle_through_a_type_only_import(tmp_path: Path) -> None:
    """Bite: the checker is not blind to ``if TYPE_CHECKING:`` imports."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n")
    edges = {module_name_in(tmp_path, p): {t for t in imports_of(p, module_name_in(tmp_path, p))
                                            if t in ("pkg.a", "pkg.b")}
             for p in pkg.glob("[ab].py")}
    assert cycles(edges) == {("pkg.a", "pkg.b")}


def module_name_in(root: Path, path: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


@pytest.mark.parametrize("wing", WINGS)
def test_every_module_of_the_wing_is_seen(wing: str) -> None:
    assert any(name.startswith(wing + ".") for name in graph())


# -- the runtime wing: one facade nobody calls back into, one rule, one retry loop ---------------
#: The modules that may import the facade: the package's entry, the CLI and the admin commands
#: (they are given a DatabaseManager to drive). Everything else gets the parts or a narrow
#: protocol (``reliability/ports.py``).
FACADE_USERS = {"reliability", "reliability.cli", "reliability.admin"}


def test_no_module_of_the_runtime_imports_the_facade_but_its_entry_cli_and_admin() -> None:
    edges = graph()
    importers = {name for name, targets in edges.items()
                 if name.startswith("reliability") and "reliability.manager" in targets}
    assert importers <= FACADE_USERS, f"import reliability.manager: {sorted(importers - FACADE_USERS)}"


def _functions_named(wing: str, name: str) -> list[str]:
    found = []
    for path in (ROOT / wing).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                found.append(f"{module_name(path)}:{node.lineno}")
    return found


def test_exactly_one_function_decides_about_a_failure_and_one_runs_the_retry_loop() -> None:
    assert [f.split(":")[0] for f in _functions_named("reliability", "decide")] == ["reliability.errors"]
    # The per-module deciders it replaced stay gone (transaction._rerunnable, connection._reconnectable).
    for gone in ("_rerunnable", "_reconnectable", "should_retry"):
        assert not _functions_named("reliability", gone), gone
    loops = [f for f in _functions_named("reliability", "call") if f.startswith("reliability.retry:")]
    assert len(loops) == 1


def test_nothing_in_the_runtime_reads_the_kind_table_to_choose_retry_or_reconnect() -> None:
    """``KIND_INFO[...].transient`` / ``.action is RecoveryAction.RECONNECT`` outside errors.py is a second
    rule; ask ``errors.decide`` instead."""
    bad = []
    for path in (ROOT / "reliability").rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "RECONNECT" \
                    and isinstance(node.value, ast.Name) and node.value.id == "RecoveryAction":
                bad.append(f"{module_name(path)}:{node.lineno} RecoveryAction.RECONNECT")
            if isinstance(node, ast.Attribute) and node.attr == "transient" \
                    and isinstance(node.value, ast.Subscript) \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "KIND_INFO":
                bad.append(f"{module_name(path)}:{node.lineno} KIND_INFO[...].transient")
    assert not bad, bad


def test_the_facade_checker_sees_an_import_of_the_facade(tmp_path: Path) -> None:
    """Bite: a type-only import of the facade is an import of it."""
    pkg = tmp_path / "reliability"
    pkg.mkdir()
    (pkg / "manager.py").write_text("class DatabaseManager: ...\n")
    (pkg / "audit.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from .manager import DatabaseManager\n")
    assert "reliability.manager" in imports_of(pkg / "audit.py", "reliability.audit")
