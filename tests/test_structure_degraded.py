"""Structural facts of degraded mode and the transaction events (issue #16), read from the code (``ast``).

- ``reliability/degraded/`` (the write queue, the commands) never imports the facade, type-only
  imports included: it works with the parts it is given.
- A direct write behind a backlog goes one way: the executor asks its backlog port, the replay runs
  its transactions through the facade's ``_transact``, which never asks again; no recursion flag.
- The callback lists the observer protocol replaced stay gone: nothing declares or appends to
  ``error_listeners``, ``before_commit``, ``after_commit``, ``after_rollback``, ``before_replay``,
  ``on_applied`` or ``_backlog``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import imports_in

ROOT = Path(__file__).resolve().parent.parent
DEGRADED = ROOT / "reliability" / "degraded"

#: The callback lists replaced by the observer protocol (reliability/observers.py) or by parts.
GONE_LISTS = frozenset({"error_listeners", "before_commit", "after_commit", "after_rollback", "before_replay",
                        "on_applied", "_backlog"})
#: Names a re-entry guard around the replay would have (the one that was removed was ``_draining``).
GUARD_NAMES = frozenset({"_draining", "_in_backlog", "_replaying", "_in_replay"})


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of what ``path`` (a module of ``package``) imports, relative imports resolved."""
    return imports_in(path, package)


def method(path: Path, cls: str | None, name: str) -> ast.FunctionDef:
    """The function ``name`` (of class ``cls``, or at module level when None) in ``path``."""
    tree = parse(path)
    scope: list[ast.stmt] = tree.body
    if cls is not None:
        scope = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)


def called_attributes(fn: ast.AST) -> set[str]:
    """Names of the attributes called in ``fn`` (``x.y(...)`` gives ``y``)."""
    return {node.func.attr for node in ast.walk(fn)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}


def list_uses(paths: list[Path], names: frozenset[str], root: Path = ROOT) -> list[str]:
    """Where an attribute in ``names`` is assigned, defined as a property, or appended to."""
    out = []
    for path in paths:
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr in names:
                        out.append(f"{path.relative_to(root)}:{node.lineno} assigns .{t.attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("append", "insert", "remove", "pop", "extend") \
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in names:
                out.append(f"{path.relative_to(root)}:{node.lineno} .{node.func.value.attr}.{node.func.attr}()")
            elif isinstance(node, ast.FunctionDef) and node.name in names \
                    and any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list):
                out.append(f"{path.relative_to(root)}:{node.lineno} property {node.name}")
    return out


def python_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts]


def test_the_degraded_package_holds_the_queue_and_the_commands() -> None:
    assert {p.name for p in DEGRADED.glob("*.py")} >= {"__init__.py", "queue.py", "commands.py"}
    assert not (ROOT / "reliability" / "degradation.py").exists()


def test_no_module_of_the_degraded_package_imports_the_facade() -> None:
    importers = [p.name for p in DEGRADED.glob("*.py")
                 if any(m == "reliability.manager" or m.startswith("reliability.manager.")
                        for m in imported_modules(p, "reliability.degraded"))]
    assert importers == []


def test_the_queue_knows_nothing_of_the_commands_or_the_database() -> None:
    imported = imported_modules(DEGRADED / "queue.py", "reliability.degraded")
    assert not {m for m in imported if m.startswith(("reliability.degraded.commands", "reliability.manager",
                                                     "reliability.executor", "sqlite3"))}


def test_the_facade_checker_sees_a_type_only_import_of_the_facade(tmp_path: Path) -> None:
    """Bite: ``from ..manager import DatabaseManager`` under TYPE_CHECKING is an import of it."""
    module = tmp_path / "commands.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from ..manager import DatabaseManager\n")
    assert "reliability.manager" in imported_modules(module, "reliability.degraded")


def test_a_replay_never_asks_for_a_replay_again() -> None:
    """The replay's transactions go through ``parts.transact`` (the facade's ``_transact``), never through
    ``run_in_transaction`` (which replays the backlog first); ``_transact`` never asks the backlog."""
    commands = DEGRADED / "commands.py"
    for name in ("replay", "_replay_locked", "replay_first", "_apply"):
        calls = called_attributes(method(commands, "CommandRegistry", name))
        assert "run_in_transaction" not in calls, name
    replay = called_attributes(method(commands, "CommandRegistry", "_replay_locked"))
    assert "transact" in replay
    transact = method(ROOT / "reliability" / "manager.py", "DatabaseManager", "_transact")
    assert not called_attributes(transact) & {"replay_backlog", "replay_first", "replay", "run_in_transaction"}
    run = method(ROOT / "reliability" / "manager.py", "DatabaseManager", "run_in_transaction")
    assert {"replay_backlog", "_transact"} <= called_attributes(run)


def test_no_recursion_guard_around_the_replay() -> None:
    found = []
    for path in python_files("reliability"):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Attribute) and node.attr in GUARD_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert found == []
    # Nor a flag flipped inside the replay itself (whatever its name).
    for name in ("replay", "_replay_locked", "replay_first"):
        fn = method(DEGRADED / "commands.py", "CommandRegistry", name)
        flips = [n.lineno for n in ast.walk(fn) if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, bool)
                 and any(isinstance(t, ast.Attribute) for t in n.targets)]
        # (the one bool the replay sets is _backlogged = False once the queue is empty: a state, not a guard)
        assert len(flips) <= (1 if name == "_replay_locked" else 0), (name, flips)


def test_the_callback_lists_the_observers_replaced_are_gone() -> None:
    found = list_uses(python_files("reliability", "pytest_dbfault", "tests", "benchmarks"), GONE_LISTS)
    assert found == []


def test_the_list_finder_sees_a_list_declared_appended_or_made_a_property(tmp_path: Path) -> None:
    """Bite: each way back in is seen."""
    (tmp_path / "m.py").write_text(
        "class T:\n"
        "    def __init__(self):\n"
        "        self.after_commit: list = []\n"
        "    @property\n"
        "    def _backlog(self):\n"
        "        return None\n"
        "def hook(db):\n"
        "    db.transactions.after_rollback.append(print)\n")
    found = list_uses([tmp_path / "m.py"], GONE_LISTS, root=tmp_path)
    assert {f.split(" ", 1)[1] for f in found} == {"assigns .after_commit", "property _backlog",
                                                  ".after_rollback.append()"}


def test_the_transaction_manager_tells_the_observers_not_lists() -> None:
    """Its three transaction events go through ``self.observers`` (one protocol, reliability/observers.py)."""
    tree = parse(ROOT / "reliability" / "transaction.py")
    told = {node.func.attr for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "observers"}
    assert told == {"before_commit", "committed", "rolled_back"}
