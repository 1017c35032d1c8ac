"""One way to make a fault, one lifecycle event (issue #16), checked from the code itself.

- The property machines, chaos and the sweep make every fault through the registry
  (:func:`pytest_dbfault.faults.registry.make_fault`): they import no fault class, define none, and
  every kind they use is a registered name the report knows.
- A fault's start and end reach the stats, the ``dbfault`` fixture (and through it the
  ``pytest_dbfault_fault_injected`` hook) and the coverage contexts as one :class:`FaultEvent`; nobody
  wraps a fault's ``inject`` to find out.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from import_graph import import_stem, package_of

from pytest_dbfault import chaos
from pytest_dbfault.coverage_faults import FaultContexts
from pytest_dbfault.faults.base import Fault, FaultError, FaultEvent, subscribe, unsubscribe
from pytest_dbfault.faults.registry import fault_names, get_fault_class, make_fault, register_fault, variant_names
from pytest_dbfault.machines.base import FAULT_KINDS
from pytest_dbfault.per_test import FaultFactory
from pytest_dbfault.stats import FAMILIES, Stats, family

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pytest_dbfault"
#: The modules that must make faults only through the registry.
REGISTRY_USERS = [*sorted((PACKAGE / "machines").glob("*.py")), *sorted(PACKAGE.glob("chaos*.py"))]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def fault_classes() -> dict[str, type[Fault]]:
    """Every registered fault class, by ``module.QualName``."""
    classes = {get_fault_class(n) for n in [*fault_names(), *variant_names()]}
    return {f"{c.__module__}.{c.__qualname__}": c for c in classes}


def direct_fault_uses(source: str, module: str, *, package: str | None = None) -> list[str]:
    """What ``source`` (the text of ``module``) does that bypasses the registry: importing a fault class (from
    its own module or a package re-exporting it), importing a whole module that defines fault classes, or
    defining a ``Fault`` subclass of its own. Helpers of a fault module (``CrashResult``) are not faults.

    ``package``: what its relative imports count from (:func:`import_graph.package_of`; a package's
    ``__init__`` is the package itself). Default: the package holding ``module``.
    """
    classes = fault_classes()
    homes = {c.__module__ for c in classes.values()}
    if package is None:
        package = module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = ast.unparse(base).rpartition(".")[2]
                if name == "Fault" or name in {c.__name__ for c in classes.values()}:
                    found.append(f"defines fault class {node.name}")
        elif isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name in homes]
        elif isinstance(node, ast.ImportFrom):
            stem = import_stem(node, package)
            for alias in node.names:
                if f"{stem}.{alias.name}" in homes:
                    found.append(f"imports {stem}.{alias.name}")
                    continue
                try:
                    value = getattr(importlib.import_module(stem), alias.name, None)
                except ImportError:
                    continue
                if inspect.isclass(value) and issubclass(value, Fault) and value is not Fault:
                    found.append(f"imports fault class {alias.name} from {stem}")
    return found


@pytest.mark.parametrize("path", REGISTRY_USERS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_machines_and_chaos_make_faults_only_through_the_registry(path: Path) -> None:
    module = module_name(path)
    assert direct_fault_uses(path.read_text(encoding="utf-8"), module, package=package_of(path, module)) == []


def test_the_checker_sees_each_way_around_the_registry() -> None:
    """Bite: a fault class imported from its module, from the package, a fault module, a class of one's own."""
    source = "\n".join([
        "from ..faults import LockedFault",
        "from ..faults.disconnect import DisconnectFault",
        "from ..faults.crash import CrashResult",  # a helper of a fault module, not a fault
        "from ..vfs import faults",
        "import pytest_dbfault.faults.corrupt",
        "from ..faults.base import Fault, FaultError",  # the interface and its error are fine
        "from ..faults.registry import make_fault",
        "class Mine(Fault):",
        "    name = 'mine'",
    ])
    assert direct_fault_uses(source, "pytest_dbfault.machines.example") == [
        "imports fault class LockedFault from pytest_dbfault.faults",
        "imports fault class DisconnectFault from pytest_dbfault.faults.disconnect",
        "imports pytest_dbfault.vfs.faults",
        "imports pytest_dbfault.faults.corrupt",
        "defines fault class Mine",
    ]


def stem(statement: str, path: str) -> str:
    """What ``statement`` imports from, written in the file ``path`` (``a/b/c.py`` is module ``a.b.c``)."""
    module = ".".join(Path(path).with_suffix("").parts).removesuffix(".__init__")
    node = ast.parse(statement).body[0]
    assert isinstance(node, ast.ImportFrom)
    return import_stem(node, package_of(Path(path), module))


@pytest.mark.parametrize(("statement", "path", "expected"), [
    # in a module: counted from the package holding it
    ("from . import x", "a/b/c.py", "a.b"),
    ("from .d import x", "a/b/c.py", "a.b.d"),
    ("from .. import x", "a/b/c.py", "a"),
    ("from ..d import x", "a/b/c.py", "a.d"),
    ("from ..d.e import x", "a/b/c.py", "a.d.e"),
    # in a package's __init__: counted from the package itself
    ("from . import x", "a/b/__init__.py", "a.b"),
    ("from .d import x", "a/b/__init__.py", "a.b.d"),
    ("from .. import x", "a/b/__init__.py", "a"),
    ("from ..d import x", "a/b/__init__.py", "a.d"),
    ("from . import x", "a/__init__.py", "a"),
    # absolute stays as written
    ("from a.b import x", "a/b/__init__.py", "a.b"),
])
def test_the_resolver_reads_every_relative_form(statement: str, path: str, expected: str) -> None:
    assert stem(statement, path) == expected


@pytest.mark.parametrize(("statement", "path"), [("from .. import x", "a/__init__.py"),
                                                 ("from ... import x", "a/b/c.py"),
                                                 ("from ...d import x", "a/b/__init__.py")])
def test_dots_above_the_top_package_are_an_error_naming_the_line(statement: str, path: str) -> None:
    with pytest.raises(ImportError, match="line 1: .* goes above the top-level package"):
        stem(statement, path)


def test_the_checker_reads_a_package_init_from_the_package_itself() -> None:
    """``from .. import x`` in ``machines/__init__.py`` is ``pytest_dbfault`` (the checker raised on it), and a
    fault class imported there with ``..faults`` is found (it was looked for in a top-level ``faults``)."""
    init = PACKAGE / "machines" / "__init__.py"
    module = module_name(init)
    assert (module, package_of(init, module)) == ("pytest_dbfault.machines", "pytest_dbfault.machines")
    source = "from .. import stats\nfrom ..faults import LockedFault\nfrom . import base\n"
    assert direct_fault_uses(source, module, package=package_of(init, module)) == [
        "imports fault class LockedFault from pytest_dbfault.faults"]


def test_every_kind_the_machines_draw_is_a_registered_name_of_a_report_family() -> None:
    known = {*fault_names(), *variant_names()}
    for kind in FAULT_KINDS:
        if kind != "none":
            assert kind in known
            assert family(kind) is not None, f"{kind} is in no family of the report (stats.FAMILIES)"


def test_every_variant_is_counted_under_a_report_family() -> None:
    assert variant_names()
    assert {family(v) for v in variant_names()} <= set(FAMILIES)
    assert None not in {family(v) for v in variant_names()}


def test_every_chaos_kind_is_made_from_a_registered_fault() -> None:
    known = {*fault_names(), *variant_names()}
    assert set(chaos._FAULTS) == set(chaos.CHAOS_KINDS)
    assert {name for name, _ in chaos._FAULTS.values()} <= known


def test_a_variant_is_its_fault_with_fixed_parameters_under_its_own_kind(tmp_path: Path) -> None:
    fault = make_fault("disconnect_delete", tmp_path / "app.db")
    assert type(fault) is get_fault_class("disconnect")
    assert fault.params["mode"] == "delete" and fault.backup_before is True  # type: ignore[attr-defined]
    assert fault.kind == "disconnect_delete"
    assert make_fault("disconnect", tmp_path / "app.db", mode="rename").kind == "disconnect"


def test_a_fault_cannot_take_a_variant_name() -> None:
    class Clash(Fault):
        name = "disconnect_rename"

    with pytest.raises(FaultError, match="'disconnect_rename' is a variant of 'disconnect'"):
        register_fault(Clash)


def test_no_module_wraps_a_faults_inject_to_hear_of_it() -> None:
    """The lifecycle event is the one channel: nobody assigns ``something.inject = ...`` any more."""
    wrapped = [
        f"{p.relative_to(ROOT)}:{node.lineno}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Attribute) and target.attr in ("inject", "heal")
    ]
    assert wrapped == []


# -- one lifecycle event -------------------------------------------------------------------------
class Flag(Fault):
    """A fault with no effect, for watching the lifecycle."""

    name = "flag"

    def _inject(self) -> None:
        pass


def test_one_injection_is_one_event_for_every_subscriber(tmp_path: Path) -> None:
    stats = Stats()
    events: list[str] = []

    def watch(event: FaultEvent) -> None:
        events.append(f"{event.action} {event.kind}")

    contexts = FaultContexts(coverage=_FakeCoverage())
    register_fault(Flag)
    subscribe(watch)
    contexts.start()
    factory = FaultFactory(tmp_path, seed=1, stats=stats, on_inject=[lambda f, name: events.append(f"hook {name}")])
    try:
        fault = factory.make("flag")
        fault.heal()
        fault.inject()  # a re-injection is a new start, told again
        factory.close()
    finally:
        contexts.stop()
        unsubscribe(watch)
        from pytest_dbfault.faults.registry import unregister_fault

        unregister_fault("flag")
    assert events == ["injected flag", "hook flag", "healed flag", "injected flag", "hook flag", "healed flag"]
    assert stats.faults == {"flag": 2}
    assert factory.injected == ["flag", "flag"]
    assert contexts.labels == ["dbfault:flag", "", "dbfault:flag", ""]


def test_a_fault_made_without_stats_is_told_but_not_counted(tmp_path: Path) -> None:
    stats = Stats()
    heard: list[FaultEvent] = []
    subscribe(heard.append)
    try:
        with Flag():
            pass
        counted = make_fault("disconnect_rename", tmp_path / "gone.db", counted_in=stats)
        with pytest.raises(FaultError):
            counted.inject()  # no such file: nothing happened, so nothing is told or counted
    finally:
        unsubscribe(heard.append)
    assert [(e.action, e.kind) for e in heard] == [("injected", "flag"), ("healed", "flag")]
    assert stats.faults == {}


def test_a_factory_hears_only_of_its_own_faults(tmp_path: Path) -> None:
    register_fault(Flag)
    factory = FaultFactory(tmp_path, seed=1, stats=Stats())
    try:
        with Flag():  # made elsewhere, same process
            pass
        factory.make("flag")
    finally:
        factory.close()
        from pytest_dbfault.faults.registry import unregister_fault

        unregister_fault("flag")
    assert factory.injected == ["flag"]
    assert factory.stats.faults == {"flag": 1}


class _FakeCoverage:
    """Just enough of ``coverage.Coverage`` for :class:`FaultContexts`: it remembers the context."""

    def __init__(self) -> None:
        self.context = ""

    def switch_context(self, label: str) -> str:
        previous, self.context = self.context, label
        return previous
