"""Reading a module's imports from its source (``ast``), for the structural tests.

One place resolves a relative import, so the structure tests of both wings and the fault-structure
test agree on what a module imports.
"""

from __future__ import annotations

import ast
from pathlib import Path


def import_stem(node: ast.ImportFrom, package: str) -> str:
    """The absolute module ``from … import`` names, in ``package`` (``from ..x import y`` resolved)."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_in(path: Path, package: str) -> set[str]:
    """Every module ``path`` (a module of ``package``) imports: absolute names, and for ``from m import x``
    both ``m`` and ``m.x`` (``x`` may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            stem = import_stem(node, package)
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found
