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
from import_graph import imports_in, package_of

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
    return imports_in(path, package_of(path, name))


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



# -- durability: built from the runtime's parts, never from the facade (issue #16) -------------------
DURABILITY = "reliability.durability"
#: The names a collaborator gives the facade it was handed (``self.db``, ``host`` …).
FACADE_NAMES = frozenset({"db", "host", "manager", "facade"})


def test_no_module_of_durability_imports_the_facade_or_a_host_protocol() -> None:
    edges = graph()
    bad = {f"{name} imports {target}" for name, targets in edges.items()
           if name == DURABILITY or name.startswith(DURABILITY + ".")
           for target in targets if target in ("reliability.manager", "reliability.ports")}
    assert not bad, sorted(bad)


def private_reaches(path: Path) -> list[str]:
    """``db._x`` / ``self.db._x`` / ``host._x``: a reach into the facade's private names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "self":
            owner_name = owner.attr
        elif isinstance(owner, ast.Name):
            owner_name = owner.id
        else:
            continue
        if owner_name in FACADE_NAMES:
            found.append(f"{path.name}:{node.lineno} {owner_name}.{node.attr}")
    return found


def test_nothing_in_the_runtime_but_the_facade_reaches_into_its_private_names() -> None:
    bad = [reach for p in (ROOT / "reliability").rglob("*.py") if p.name != "manager.py"
           for reach in private_reaches(p)]
    assert not bad, bad


def test_the_private_reach_finder_sees_both_spellings(tmp_path: Path) -> None:
    """Bite: ``db._lock`` and ``self.db._redo`` are seen; ``self._x`` and ``db.__class__`` are not reaches."""
    sample = tmp_path / "sample.py"
    sample.write_text("with db._lock:\n    self.db._redo = None\nself._own = db.__class__\n")
    assert private_reaches(sample) == ["sample.py:1 db._lock", "sample.py:2 db._redo"]


def facade_taking_constructors(path: Path) -> list[str]:
    """``__init__`` of a class in ``path`` that takes the facade: a parameter named like it, or annotated
    with ``DatabaseManager`` or a host protocol (``…Host``)."""
    found = []
    for cls in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name == "__init__"):
                continue
            args = fn.args.posonlyargs + fn.args.args[1:] + fn.args.kwonlyargs
            for arg in args:
                note = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                if arg.arg in FACADE_NAMES or "DatabaseManager" in note or note.endswith("Host"):
                    found.append(f"{path.name}:{cls.name}({arg.arg}: {note or '?'})")
    return found


def test_no_durability_part_takes_the_facade() -> None:
    files = sorted((ROOT / "reliability" / "durability").glob("*.py"))
    assert len(files) >= 6  # journal, trust, backup, recovery, upkeep and the package
    bad = [found for p in files for found in facade_taking_constructors(p)]
    assert not bad, bad


def test_the_constructor_checker_sees_a_facade_by_name_and_by_type(tmp_path: Path) -> None:
    """Bite: a part taking ``db`` or a ``DurabilityHost`` is caught; one taking its parts is not."""
    sample = tmp_path / "sample.py"
    sample.write_text("class A:\n    def __init__(self, db) -> None: ...\n"
                      "class B:\n    def __init__(self, x: DurabilityHost) -> None: ...\n"
                      "class C:\n    def __init__(self, parts: RuntimeParts) -> None: ...\n")
    assert facade_taking_constructors(sample) == ["sample.py:A(db: ?)", "sample.py:B(x: DurabilityHost)"]


# -- the plugin's glue (issue #16) ------------------------------------------------------------------------
#: The one module allowed to touch pytest's private API (each use says why there is no public way).
PYTEST_INTERNALS = "pytest_dbfault._glue.pytest_internals"
#: Private pytest names: ``_pytest`` imports, the ``_ispytest`` keyword, and attributes pytest keeps private.
PRIVATE_PYTEST_NAMES = frozenset({"_ispytest", "_tmp_path_factory", "_tw", "_fixturemanager", "_store"})
#: The modules that make up the plugin's glue: none of them may be part of an import cycle.
GLUE = ("pytest_dbfault.plugin", "pytest_dbfault._glue", "pytest_dbfault.options", "pytest_dbfault.scenarios")


def private_pytest_uses(path: Path) -> set[str]:
    """Every use of pytest's private API in ``path``: imports of ``_pytest``, private names used as
    attributes, keywords or strings (``getattr(config, "_tmp_path_factory")``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(f"import {a.name}" for a in node.names if a.name.split(".")[0] == "_pytest")
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "_pytest":
            found.add(f"from {node.module} import")
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_PYTEST_NAMES:
            found.add(f".{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in PRIVATE_PYTEST_NAMES:
            found.add(f"{node.arg}=")
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_PYTEST_NAMES:
            found.add(repr(node.value))
    return found


def test_no_module_but_one_glue_module_uses_private_pytest_api() -> None:
    bad = {
        f"{module_name(p)}: {use}"
        for wing in WINGS
        for p in (ROOT / wing).rglob("*.py")
        if module_name(p) != PYTEST_INTERNALS
        for use in private_pytest_uses(p)
    }
    assert not bad, f"private pytest API outside {PYTEST_INTERNALS}: {sorted(bad)}"


def test_the_private_api_finder_sees_an_import_an_attribute_and_a_string(tmp_path: Path) -> None:
    """Bite: the checker above is not blind to any of the three ways in."""
    sample = tmp_path / "sample.py"
    sample.write_text("from _pytest.cacheprovider import Cache\n"
                      "Cache.for_config(config, _ispytest=True)\n"
                      "config._tmp_path_factory\n"
                      "getattr(terminal, '_tw')\n")
    assert private_pytest_uses(sample) == {"from _pytest.cacheprovider import", "_ispytest=", "._tmp_path_factory",
                                           "'_tw'"}


def test_the_plugin_glue_is_in_no_import_cycle() -> None:
    found = {c for c in cycles(graph()) if any(m == g or m.startswith(g + ".") for m in c for g in GLUE)}
    assert not found, f"import cycle(s) through the plugin's glue: {sorted(found)}"


def test_only_the_options_glue_registers_options_with_pytest() -> None:
    """One options table: every ``--dbfault*`` flag and ini key is added by ``_glue/options.py`` from it."""
    adders = {
        module_name(p)
        for p in (ROOT / "pytest_dbfault").rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("addoption", "addini", "getgroup")
    }
    assert adders == {"pytest_dbfault._glue.options"}
