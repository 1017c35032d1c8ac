"""pytest entry point for dbfault (inert unless ``--dbfault`` is given), its hooks in the order pytest calls them.

Always available (they only act when a test asks): the ``dbfault``, ``dbfault_kind``,
``reliable_db``, ``reliable_db_config`` and ``fault_db_path`` fixtures and the
``@pytest.mark.dbfault(...)`` marker. With ``--dbfault`` (or ``DBFAULT=1``, or ini
``dbfault = true``) the run also prints ``dbfault: Using --dbfault-seed=N``, collects the
``dbfault_paths`` directories when no path is given, seeds Hypothesis from the same seed,
and ends with the property × fault summary (``--dbfault-report PATH`` for JSON).

Every flag is declared once, in :data:`pytest_dbfault.options.OPTIONS`; the glue is in
:mod:`pytest_dbfault._glue`, the logic in plain modules (:mod:`.options`, :mod:`.per_test`, :mod:`.report`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs
from ._glue import chaos_run, collection, coverage_run, stash
from ._glue.active_run import ActiveRun, XdistHooks
from ._glue.options import add_options, read_options
from ._glue.safety_roots import SafetyRoots
from .options import OptionError, check_fault_names, setting_label

if TYPE_CHECKING:  # pragma: no cover
    from .faults.base import Fault
    from .per_test import FaultFactory


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own pytest_configure reads --hypothesis-seed
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", collection.MARKER_HELP)
    opts = config.stash[stash.OPTIONS] = read_options(config)
    config.stash[stash.REGISTERED] = []
    config.pluginmanager.register(SafetyRoots(config), "dbfault-safety-roots")  # faults: basetemp only
    config.hook.pytest_dbfault_register_faults.call_historic(kwargs={"register": _registerer(config)})
    if opts.faults is not None:
        from .faults.registry import fault_names

        try:
            check_fault_names(opts.faults, fault_names(), setting_label("faults", opts.faults_source),
                              opts.faults_source)
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(config), "dbfault-xdist")
    if str(getattr(config.option, "hypothesis_profile", None) or "").startswith("dbfault"):
        # Hypothesis loads --hypothesis-profile in its own pytest_configure, after this one: the
        # machines' profiles must be registered by then.
        import pytest_dbfault.machines  # noqa: F401
    if opts.enabled:
        from .stats import STATS

        # A run inside a run (pytester, in-process) must not wipe the outer run's counts: keep them aside.
        config.stash[stash.SAVED_STATS] = STATS.to_json()
        STATS.reset()
        collection.collect_dbfault_paths(config, opts)
        if getattr(config.option, "hypothesis_seed", "absent") is None:
            config.option.hypothesis_seed = str(opts.seed)
        config.pluginmanager.register(ActiveRun(config, opts), stash.ACTIVE_PLUGIN)
    chaos_run.configure(config, opts)  # each registers its hooks only when asked for
    coverage_run.configure(config, opts)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    collection.parametrize_marked(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    collection.deselect_other_faults(config, items)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    collection.report_marker_problems(session)


@pytest.hookimpl(trylast=True)
def pytest_dbfault_runtime_factory(config: pytest.Config) -> Any:
    """dbfault's own runtime: ``reliability.DatabaseManager``."""
    from reliability import DatabaseManager

    return DatabaseManager


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(stash.SAVED_STATS, None)
    if saved is not None:
        from .stats import STATS

        STATS.reset()
        STATS.merge_json(saved)
    names = config.stash.get(stash.REGISTERED, [])
    if names:
        from .faults.registry import unregister_fault

        for name in names:
            unregister_fault(name)
        names.clear()


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def dbfault_kind(request: pytest.FixtureRequest) -> str | None:
    """The fault kind this run of a ``@pytest.mark.dbfault(...)`` test is for (``None`` when unmarked)."""
    return getattr(request, "param", None)


@pytest.fixture
def dbfault(
    request: pytest.FixtureRequest, tmp_path: Path, dbfault_kind: str | None, _dbfault_allowed_root: None
) -> Iterator[FaultFactory]:
    """The fault factory of this test: ``dbfault.make(name, target, **params)``, ``dbfault.locked(...)``...

    Bound to ``tmp_path``, seeded from the run seed and the test id; every fault it made
    is healed when the test ends. See :class:`pytest_dbfault.per_test.FaultFactory`.
    """
    from .per_test import FaultFactory, seeded_rng

    config = request.config
    opts = config.stash[stash.OPTIONS]
    item = request.node
    seed = collection.seed_of(item, opts)

    def observe(fault: Fault, name: str) -> None:
        config.hook.pytest_dbfault_fault_injected(fault=fault, item=item)

    factory = FaultFactory(tmp_path, seed, seeded_rng(seed, item.nodeid), kind=dbfault_kind, on_inject=[observe])
    item.stash[stash.FACTORY] = factory
    item.add_report_section("setup", "dbfault", f"seed {seed}: replay with --dbfault-seed={seed}")
    try:
        yield factory
    finally:
        try:
            factory.close()
        finally:
            if opts.enabled:
                item.user_properties.extend(factory.user_properties())


@pytest.fixture
def fault_db_path(tmp_path: Path) -> Path:
    """A database path (not created yet) in the test's own tmp directory."""
    return tmp_path / "fault.db"


@pytest.fixture
def reliable_db_config(fault_db_path: Path) -> Any:
    """The ``ReliabilityConfig`` of ``reliable_db``: fast timeouts, no background schedules.

    Override this fixture to change settings, e.g. ``return fast_test_config(fault_db_path, redo_journal=False)``.
    """
    from .runtime_config import fast_test_config

    return fast_test_config(fault_db_path)


@pytest.fixture
def reliable_db(request: pytest.FixtureRequest, reliable_db_config: Any) -> Iterator[Any]:
    """A database object (``reliability.DatabaseManager`` unless a plugin provides another) on ``fault_db_path``.

    Built by the ``pytest_dbfault_runtime_factory`` hook from ``reliable_db_config``; closed at teardown.
    """
    make = request.config.hook.pytest_dbfault_runtime_factory(config=request.config)
    db = make(reliable_db_config)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture(scope="session")
def _dbfault_allowed_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Faults refuse paths outside allowed roots; --basetemp may move tmp_path out of the system temp dir.
    from .faults import safety

    allow, forget = getattr(safety, "allow_root", None), getattr(safety, "forget_root", None)
    root = tmp_path_factory.getbasetemp()
    if allow is not None:
        allow(root)
    yield
    if forget is not None:
        forget(root)


def _registerer(config: pytest.Config) -> Any:
    names = config.stash[stash.REGISTERED]

    def register(cls: type[Fault], name: str | None = None, *, replace: bool = False) -> type[Fault]:
        """Register fault class ``cls`` under ``name`` (default ``cls.name``) for this session."""
        # Imported on the first call only: pytest_dbfault.faults loads every injector (and sqlite3).
        from .faults.base import FaultError
        from .faults.registry import register_fault

        try:
            register_fault(cls, name, replace=replace)
        except FaultError as exc:
            raise pytest.UsageError(f"pytest_dbfault_register_faults: {exc}") from None
        names.append(name or cls.name)
        return cls

    return register
