"""Reading a module's imports from its source (``ast``), for the structural tests.

One place resolves a relative import, so the structure tests of both wings and the fault-structure
test agree on what a module imports.
"""

from __future__ import annotations

import ast
from pathlib import Path


def package_of(path: Path, module: str) -> str:
    """The package the relative imports of ``path`` (the module named ``module``) count from.

    A package's ``__init__`` is the package itself (``from . import x`` there is a sibling of its
    modules); any other module is in the package that holds it.
    """
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def import_stem(node: ast.ImportFrom, package: str) -> str:
    """The absolute module ``from … import`` names, in ``package`` (``from ..x import y`` resolved).

    ``package`` is :func:`package_of` the importing module. Every form: ``from . import x`` is
    ``package``, each further dot one package up, and ``from ..a import b`` is ``a`` in that one.
    :raises ImportError: the dots go above the top-level package (Python refuses that import too).
    """
    if not node.level:
        return node.module or ""
    base = package.split(".") if package else []
    if node.level > len(base):
        raise ImportError(f"line {node.lineno}: 'from {'.' * node.level}{node.module or ''} import ...' goes "
                          f"above the top-level package (relative to {package or 'no package'!r})")
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
