"""pytest entry point for dbfault (inert unless ``--dbfault`` is given).

Always available (they only act when a test asks): the ``dbfault``, ``dbfault_kind``,
``reliable_db``, ``reliable_db_config`` and ``fault_db_path`` fixtures and the
``@pytest.mark.dbfault(...)`` marker. With ``--dbfault`` (or ``DBFAULT=1``, or ini
``dbfault = true``) the run also prints ``dbfault: Using --dbfault-seed=N``, collects the
``dbfault_paths`` directories when no path is given, seeds Hypothesis from the same seed,
and ends with the property × fault summary (``--dbfault-report PATH`` for JSON).

The logic lives in plain modules: :mod:`.options`, :mod:`.per_test`, :mod:`.report`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import _roots, _stash, hookspecs, plugin_extras
from .options import (
    SETTINGS,
    DbfaultOptions,
    OptionError,
    check_fault_names,
    parse_marker_seed,
    resolve_options,
    setting_label,
)

if TYPE_CHECKING:  # pragma: no cover
    from .faults.base import Fault
    from .per_test import FaultFactory

MARKER_HELP = (
    "dbfault(*faults, faults=None, seed=None): run the test once per fault kind listed "
    "(all registered kinds when none), the kind in the dbfault_kind fixture; seed= fixes the seed."
)
CACHE_KEY = "dbfault/seed"
#: ``workerinput`` / ``workeroutput`` keys used under pytest-xdist.
WORKER_SEED = "dbfault_seed"
WORKER_STATS = "dbfault_stats"

_OPTIONS = _stash.OPTIONS
_REGISTERED = pytest.StashKey[list[str]]()
_FACTORY = pytest.StashKey["FaultFactory"]()
_COLLECTING = pytest.StashKey[list[str]]()
_ITEM_FAULTS = pytest.StashKey[list[str]]()
_SAVED_STATS = pytest.StashKey[dict[str, Any]]()
#: Node ids of scenario items contain this.
_SCENARIO_MARK = ".dbfault.yaml::"
#: Options left out of the replay line: the seed is printed on its own, and these do not shape the run.
_REPLAY_DROP = ("--dbfault", "--dbfault-seed", "--dbfault-report", "--no-dbfault")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbfault", "dbfault: break SQLite for real")
    enabled, faults, seed, report = (SETTINGS[k] for k in ("enabled", "faults", "seed", "report"))
    group.addoption(enabled.cli, action="store_true", dest="dbfault", default=None,
                    help=f"{enabled.help}. Env {enabled.env}=1, ini {enabled.ini}.")
    group.addoption("--no-dbfault", action="store_false", dest="dbfault", default=None,
                    help=f"disable dbfault even when {enabled.env} or the ini file enable it.")
    group.addoption(faults.cli, dest="dbfault_faults", metavar="NAMES", default=None,
                    help=f"{faults.help}. Env {faults.env}, ini {faults.ini}.")
    group.addoption(seed.cli, dest="dbfault_seed", metavar="SEED", default=None,
                    help=f"{seed.help}. Env {seed.env}, ini {seed.ini}.")
    group.addoption(report.cli, dest="dbfault_report", metavar="PATH", default=None,
                    help=f"{report.help}. Env {report.env}, ini {report.ini}.")
    for setting in SETTINGS.values():
        parser.addini(setting.ini, help=f"{setting.help} (also {setting.cli}, {setting.env})", default="")
    parser.addini("dbfault_paths", type="args", default=["scenarios"],
                  help="directories pytest --dbfault collects when no path is given (default: scenarios)")
    plugin_extras.addoption(group)
    _roots.addoption(parser, group)  # --dbfault-allow-root, ini dbfault_allowed_roots (the fault path guard)


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own pytest_configure reads --hypothesis-seed
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    opts = _read_options(config)
    config.stash[_OPTIONS] = opts
    config.stash[_REGISTERED] = []
    config.pluginmanager.register(_roots.SafetyRoots(config), "dbfault-safety-roots")  # faults: basetemp only
    config.hook.pytest_dbfault_register_faults.call_historic(kwargs={"register": _registerer(config)})
    if opts.faults is not None:
        from .faults.registry import fault_names

        try:
            check_fault_names(opts.faults, fault_names(), setting_label("faults", opts.faults_source),
                              opts.faults_source)
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(config), "dbfault-xdist")
    if str(getattr(config.option, "hypothesis_profile", None) or "").startswith("dbfault"):
        # Hypothesis loads --hypothesis-profile in its own pytest_configure, after this one: the
        # machines' profiles must be registered by then.
        import pytest_dbfault.machines  # noqa: F401
    if opts.enabled:
        from .stats import STATS

        # A run inside a run (pytester, in-process) must not wipe the outer run's counts: keep them aside.
        config.stash[_SAVED_STATS] = STATS.to_json()
        STATS.reset()
        _collect_dbfault_paths(config, opts)
        if getattr(config.option, "hypothesis_seed", "absent") is None:
            config.option.hypothesis_seed = str(opts.seed)
        config.pluginmanager.register(_ActiveRun(config, opts), "dbfault-active")
    plugin_extras.configure(config, opts.seed)  # --dbfault-chaos, --dbfault-coverage: only when asked


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_SAVED_STATS, None)
    if saved is not None:
        from .stats import STATS

        STATS.reset()
        STATS.merge_json(saved)
    names = config.stash.get(_REGISTERED, [])
    if names:
        from .faults.registry import unregister_fault

        for name in names:
            unregister_fault(name)
        names.clear()


# -- the marker ---------------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("dbfault")
    if marker is None:
        return
    where = metafunc.definition.nodeid
    problems: list[str] = []
    kinds, _seed = _read_marker(marker, where, problems)
    if "dbfault_kind" not in metafunc.fixturenames:
        problems.append(f"{where} is marked @pytest.mark.dbfault but uses neither the dbfault_kind nor the "
                        f"dbfault fixture, so it could not see the fault kind; add one of them to its arguments")
    if problems:
        # Not pytest.fail here: that would stop the module at its first bad test and hide the rest (other
        # tests, classes). Every mistake is gathered and reported when collection finishes.
        parent = metafunc.definition.parent
        metafunc.config.stash.setdefault(_MARKER_PROBLEMS, []).append(
            (parent.nodeid if parent is not None else where, where, problems))
        return
    metafunc.parametrize("dbfault_kind", kinds, indirect=True, ids=kinds)


#: (collector nodeid, test nodeid, problems) of every bad ``@pytest.mark.dbfault`` found while collecting.
_MARKER_PROBLEMS = pytest.StashKey[list[tuple[str, str, list[str]]]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    found = session.config.stash.get(_MARKER_PROBLEMS, [])
    if not found:
        return
    by_collector: dict[str, list[str]] = {}
    bad_tests = set()
    for collector, test, problems in found:
        by_collector.setdefault(collector, []).extend(problems)
        bad_tests.add(test)
    session.items[:] = [item for item in session.items if item.nodeid not in bad_tests]
    for collector, problems in by_collector.items():
        # One collection error per module (or class) with every mistake in it; counted as a collection
        # error, so the run stops before any test as it would for a module that failed to import.
        report = pytest.CollectReport(collector, "failed", "\n".join(problems), [])
        session.config.hook.pytest_collectreport(report=report)
    found.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    opts = config.stash[_OPTIONS]
    if opts.faults is None:
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("dbfault_kind") if callspec is not None else None
        (drop if kind is not None and kind not in opts.faults else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
    opts = config.stash[_OPTIONS]
    item = request.node
    seed = _test_seed(item, opts)

    def observe(fault: Fault, name: str) -> None:
        config.hook.pytest_dbfault_fault_injected(fault=fault, item=item)

    factory = FaultFactory(tmp_path, seed, seeded_rng(seed, item.nodeid), kind=dbfault_kind, on_inject=[observe])
    item.stash[_FACTORY] = factory
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
    from .per_test import fast_test_config

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


@pytest.hookimpl(trylast=True)
def pytest_dbfault_runtime_factory(config: pytest.Config) -> Any:
    """dbfault's own runtime: ``reliability.DatabaseManager``."""
    from reliability import DatabaseManager

    return DatabaseManager


# -- active only with --dbfault -----------------------------------------------------------------
class _ActiveRun:
    """Hooks registered only when dbfault is enabled, so an inert run pays nothing for them."""

    def __init__(self, config: pytest.Config, opts: DbfaultOptions) -> None:
        self.config = config
        self.opts = opts
        self.is_worker = hasattr(config, "workerinput")
        self.tests: list[dict[str, Any]] = []
        self._outcomes: dict[str, str] = {}

    def profile(self) -> dict[str, str]:
        """The machines' Hypothesis profile and where the choice came from."""
        from .profiles import current_profile

        name, source = current_profile(getattr(self.config.option, "hypothesis_profile", None))
        return {"name": name, "source": source}

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        opts = self.opts
        faults = ", ".join(opts.faults) if opts.faults is not None else "all"
        lines = [f"dbfault: Using --dbfault-seed={opts.seed}",
                 f"dbfault: faults: {faults}; seed from: {opts.seed_source}"]
        if config.stash.get(_COLLECTING, None):
            lines.append(f"dbfault: collecting {', '.join(config.stash[_COLLECTING])} (dbfault_paths); "
                         f"name paths on the command line to collect others")
        if opts.report is not None:
            lines.append(f"dbfault: JSON report: {opts.report}")
        profile = self.profile()
        lines.append(f"dbfault: Hypothesis profile of the property machines: {profile['name']} ({profile['source']})")
        return lines

    def pytest_dbfault_fault_injected(self, fault: Any, item: Any) -> None:
        # Tests using the dbfault fixture list their faults through the factory; scenarios and others here.
        if item is not None and hasattr(item, "stash") and item.stash.get(_FACTORY, None) is None:
            item.stash.setdefault(_ITEM_FAULTS, []).append(str(getattr(fault, "name", type(fault).__name__)))

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        if not file_path.name.endswith(".dbfault.yaml"):
            return None
        from .scenario_extra import require_plugin_extra

        if not require_plugin_extra(file_path, self.config):  # a usage error naming what to install
            return None
        from .scenarios.collect import collect_file  # lazily: YAML parsing only when there are scenario files

        return collect_file(file_path, parent)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and not self.is_worker:  # a file that could not be collected ran nothing it holds
            self.tests.append({"nodeid": report.nodeid or ".", "outcome": "error", "seed": None, "kind": None,
                               "faults": [], "type": "collection"})

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        cache = getattr(self.config, "cache", None)
        if cache is not None and not self.is_worker:
            cache.set(CACHE_KEY, self.opts.seed)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        report = yield
        factory = item.stash.get(_FACTORY, None)
        if factory is not None and report.failed and report.when == "call":
            report.sections.append(("dbfault faults", factory.describe()))
        faults = item.stash.get(_ITEM_FAULTS, None)
        if faults and report.when == "teardown" and "dbfault_faults" not in dict(report.user_properties):
            report.user_properties.append(("dbfault_faults", ",".join(dict.fromkeys(faults))))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._outcomes[report.nodeid] = "failed" if report.when == "call" else "error"
        elif report.when == "call" or (report.when == "setup" and report.skipped):
            outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
            self._outcomes.setdefault(report.nodeid, outcome)
        if report.when == "teardown":
            props = dict(report.user_properties)
            outcome = self._outcomes.pop(report.nodeid, "passed")
            # Listed: tests that used dbfault, scenarios, machines, and every test that failed.
            if "dbfault_seed" in props or "dbfault_machine" in props or outcome in ("failed", "error") \
                    or _SCENARIO_MARK in report.nodeid:
                seed = props.get("dbfault_seed")
                entry = {
                    "nodeid": report.nodeid,
                    "outcome": outcome,
                    "seed": int(seed) if seed is not None and str(seed).isdigit() else seed,
                    "kind": props.get("dbfault_kind"),
                    "faults": [f for f in str(props.get("dbfault_faults", "")).split(",") if f],
                    "type": "machine" if "dbfault_machine" in props
                    else "scenario" if _SCENARIO_MARK in report.nodeid else "test",
                }
                if "dbfault_machine" in props:
                    entry["machine"] = props["dbfault_machine"]
                self.tests.append(entry)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .stats import STATS

        if self.is_worker:
            self.config.workeroutput[WORKER_STATS] = STATS.to_json()  # type: ignore[attr-defined]
            return
        data = self.report_data(session.exitstatus)
        if data["verdict"] != "pass" and session.exitstatus == pytest.ExitCode.OK:
            # Tests all passed but the report is not clean (an applicable cell is empty): the run fails.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.opts.report is not None:
            from .report import write_report

            try:
                write_report(self.opts.report, data)
            except OSError as exc:
                self._report_error = f"could not write the JSON report to {self.opts.report}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        from .report import render_summary

        tr = terminalreporter
        tr.write_sep("=", "dbfault")
        session = getattr(self, "session", None)
        data = self.report_data(session.exitstatus if session is not None else 0)
        for line in render_summary(data, width=tr._tw.fullwidth):
            tr.write_line(line, red=line.startswith(("VIOLATIONS", "NOT EXERCISED", "VERDICT", "FAILED", "EMPTY",
                                                     "WARNING")))
        if self.opts.report is not None:
            error = getattr(self, "_report_error", None)
            if error:
                tr.write_line(f"dbfault: {error}", red=True)
            else:
                tr.write_line(f"JSON report: {self.opts.report}")

    def report_data(self, exitstatus: int = 0) -> dict[str, Any]:
        """The report of this run; ``exitstatus`` is pytest's so far (a failure no test explains is one too)."""
        from .faults.registry import fault_names
        from .report import build_report
        from .stats import STATS

        tests = sorted(self.tests, key=lambda t: t["nodeid"])
        applicable, note = _applicable_cells(tests)
        return build_report(
            STATS, seed=self.opts.seed, fault_kinds=fault_names(), selected=self.opts.faults,
            tests=tests, applicable=applicable, cells_note=note, replay=replay_command(self.config, self.opts),
            extra={"seed_source": self.opts.seed_source, "pytest": pytest.__version__,
                   "hypothesis_profile": self.profile(), "exitstatus": int(exitstatus),
                   **_sqlite_build(),
                   **plugin_extras.report_sections(self.config)},
        )


class _XdistHooks:
    """Registered only when pytest-xdist is installed: one seed for all workers, stats merged back."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_SEED] = self.config.stash[_OPTIONS].seed

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_STATS)
        if data:
            from .stats import STATS

            STATS.merge_json(data)


# -- helpers ------------------------------------------------------------------------------------

def replay_command(config: pytest.Config, opts: DbfaultOptions) -> str:
    """The command line that reruns this run: its paths and options, the effective seed, the machines'
    Hypothesis profile when it is not the plain default, and the settings that came from the environment.

    ``pytest --dbfault --dbfault-seed=N`` plus the arguments given (without the seed and report options);
    ``DBFAULT_FAULTS`` becomes ``--dbfault-faults``; ``RELIABILITY_SQLITE_MODULE`` is kept as a prefix.
    """
    import shlex

    from .profiles import FAST, current_profile

    args = [str(a) for a in config.invocation_params.args]
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in _REPLAY_DROP:
            skip_next = "=" not in arg and name in ("--dbfault-seed", "--dbfault-report")
            continue
        kept.append(arg)
    extra: list[str] = []
    prefix: list[str] = []
    if opts.faults is not None and opts.faults_source == "environment":
        extra.append(f"--dbfault-faults={','.join(opts.faults)}")
    if not any(a.split("=", 1)[0] == "--hypothesis-profile" for a in kept):
        name, source = current_profile(getattr(config.option, "hypothesis_profile", None))
        if name != FAST or source != "default":
            if hasattr(config.option, "hypothesis_profile"):
                extra.append(f"--hypothesis-profile={name}")
            else:  # no --hypothesis-profile option without Hypothesis' plugin; the machines read this too
                prefix.append(f"HYPOTHESIS_PROFILE={name}")
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip()
    if module and module != "sqlite3":
        prefix.append(f"RELIABILITY_SQLITE_MODULE={module}")
    return shlex.join([*prefix, "pytest", "--dbfault", f"--dbfault-seed={opts.seed}", *extra, *kept])


def _sqlite_build() -> dict[str, str]:
    """``sqlite_module`` and the ``sqlite_version`` of the build the runtime uses (``RELIABILITY_SQLITE_MODULE``)."""
    import importlib
    import sqlite3

    name = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"
    try:
        module = importlib.import_module(name)
        version = str(getattr(module, "sqlite_version", None) or module.dbapi2.sqlite_version)
    except (ImportError, AttributeError):  # not installed: the runtime reports that itself
        version = f"{sqlite3.sqlite_version} (stdlib; {name} not importable)"
    return {"sqlite_module": name, "sqlite_version": version}


def _applicable_cells(tests: list[dict[str, Any]]) -> tuple[dict[int, Any] | None, str]:
    """The cells the machines declare applicable, when every machine ran; else ``None`` and why not."""
    ran = {t["machine"] for t in tests if t.get("type") == "machine" and t.get("outcome") != "skipped"}
    if not ran:
        return None, ""
    import pytest_dbfault.machines as machines

    applicable = getattr(machines, "APPLICABLE", {})
    missing = sorted(set(machines.MACHINES) - ran)
    if missing:
        return None, f"machines {', '.join(missing)} did not run"
    if not applicable:
        return None, "pytest_dbfault.machines declares no APPLICABLE cells"
    return dict(applicable), ""


def _read_options(config: pytest.Config) -> DbfaultOptions:
    cli = {dest: getattr(config.option, dest, None)
           for dest in ("dbfault", "dbfault_faults", "dbfault_seed", "dbfault_report")}
    ini = {s.ini: config.getini(s.ini) for s in SETTINGS.values()}
    ini["dbfault_paths"] = config.getini("dbfault_paths")
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    try:
        opts = resolve_options(
            cli, os.environ, ini,
            ini_label=f"ini file {config.inipath.name}" if config.inipath else "ini file",
            invocation_dir=config.invocation_params.dir, ini_dir=ini_dir,
            last_seed=lambda: _last_seed(config),
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKER_SEED in workerinput:
        opts = dataclasses.replace(opts, seed=workerinput[WORKER_SEED], seed_source="xdist controller")
    return opts


def _last_seed(config: pytest.Config) -> int | None:
    cache = getattr(config, "cache", None)
    if cache is None and config.pluginmanager.hasplugin("cacheprovider"):
        from _pytest.cacheprovider import Cache  # our configure runs before the cache plugin's

        cache = Cache.for_config(config, _ispytest=True)
    value = cache.get(CACHE_KEY, None) if cache is not None else None
    return value if isinstance(value, int) else None


def _registerer(config: pytest.Config) -> Any:
    names = config.stash[_REGISTERED]

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


def _collect_dbfault_paths(config: pytest.Config, opts: DbfaultOptions) -> None:
    # `pytest --dbfault` from the project root means "run the fault scenarios", not testpaths.
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    base = config.inipath.parent if config.inipath else config.rootpath
    found = [str(base / p) for p in opts.paths if (base / p).is_dir()]
    if found:
        config.args[:] = found
        config.stash[_COLLECTING] = [os.path.relpath(p, config.invocation_params.dir) for p in found]


def _read_marker(marker: pytest.Mark, where: str, problems: list[str]) -> tuple[list[str], int | None]:
    """The kinds and seed of a marker; every mistake in it is appended to ``problems``."""
    from .faults.registry import fault_names, unknown_name_message

    unknown = set(marker.kwargs) - {"faults", "seed"}
    if unknown:
        problems.append(f"{where}: @pytest.mark.dbfault got unknown argument(s) {', '.join(sorted(unknown))}; "
                        f"it takes fault names, faults=[...] and seed=N")
    listed = marker.kwargs.get("faults")
    if listed is not None and marker.args:
        problems.append(f"{where}: @pytest.mark.dbfault got fault names both as arguments and as faults=; "
                        f"use one of the two")
    if isinstance(listed, str):
        listed = [listed]
    kinds = list(listed if listed is not None else marker.args)
    known = fault_names()
    for kind in kinds:
        if not isinstance(kind, str) or kind not in known:
            problems.append(f"{where}: @pytest.mark.dbfault: " + unknown_name_message("fault", str(kind), known))
    seed = None
    if "seed" in marker.kwargs:
        try:
            seed = parse_marker_seed(marker.kwargs["seed"], where)
        except OptionError as exc:
            problems.append(str(exc))
    return list(dict.fromkeys(k for k in kinds if isinstance(k, str) and k in known)) or known, seed


def _test_seed(item: pytest.Item, opts: DbfaultOptions) -> int:
    marker = item.get_closest_marker("dbfault")
    if marker is not None and "seed" in marker.kwargs:
        return int(marker.kwargs["seed"])  # validated at collection
    return opts.seed
