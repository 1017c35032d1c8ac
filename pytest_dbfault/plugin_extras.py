"""pytest glue for ``--dbfault-chaos`` and ``--dbfault-coverage`` (the logic is in :mod:`.chaos` and
:mod:`.coverage_faults`). :mod:`.plugin` calls :func:`addoption` and :func:`configure`; each part
registers its hooks only when its option is given, so a run without them pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHAOS_PLUGIN = "dbfault-chaos"
COVERAGE_PLUGIN = "dbfault-coverage"
#: ``workeroutput`` key for the not-fault-tolerant tests found by an xdist worker.
WORKER_CHAOS = "dbfault_chaos"


def addoption(group: Any) -> None:
    """Add the chaos and coverage options to the ``dbfault`` option group."""
    from ._chaos_kinds import CHAOS_KINDS, DEFAULT_KINDS, DEFAULT_RATE

    group.addoption("--dbfault-chaos", action="store_true", default=False,
                    help="run the collected (existing) tests while injecting transient SQLite faults "
                         "into every connection sqlite3.connect opens; tests that pass clean but fail "
                         "under chaos are reported as not fault-tolerant. Seeded by --dbfault-seed. "
                         "See docs/chaos.md.")
    group.addoption("--dbfault-chaos-rate", metavar="P", default=None,
                    help=f"share of writes and commits that meet a fault (default {DEFAULT_RATE}).")
    group.addoption("--dbfault-chaos-faults", metavar="NAMES", default=None,
                    help=f"chaos fault kinds: {', '.join(CHAOS_KINDS)}, 'all' or 'default' "
                         f"({','.join(DEFAULT_KINDS)}).")
    group.addoption("--dbfault-coverage", action="store_true", default=False,
                    help="label coverage contexts with the active faults and report which fault kinds "
                         "reached each except handler (needs --cov or `coverage run`).")
    group.addoption("--dbfault-coverage-root", metavar="DIR", default=None,
                    help="source tree whose handlers are reported (default: reliability under the rootdir).")
    group.addoption("--dbfault-coverage-fail-under", metavar="N", default=None,
                    help="fail the run when coverage of the root is under N%% or an except handler there is "
                         "reached by no fault.")


def configure(config: pytest.Config, seed: int) -> None:
    """Register the chaos and coverage hooks that were asked for (from ``pytest_configure``)."""
    opt = config.option
    if getattr(opt, "dbfault_chaos", False):
        from .chaos import ChaosInjector, ChaosUsageError, parse_kinds, parse_rate

        try:
            rate = parse_rate(opt.dbfault_chaos_rate) if opt.dbfault_chaos_rate is not None else None
            kinds = parse_kinds(opt.dbfault_chaos_faults)
        except ChaosUsageError as exc:
            raise pytest.UsageError(str(exc)) from None
        injector = ChaosInjector(seed, **({"rate": rate} if rate is not None else {}), kinds=kinds)
        config.pluginmanager.register(ChaosRun(config, injector), CHAOS_PLUGIN)
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_ChaosXdist(config), CHAOS_PLUGIN + "-xdist")
    if getattr(opt, "dbfault_coverage", False) or getattr(opt, "dbfault_coverage_fail_under", None):
        fail_under = None
        if opt.dbfault_coverage_fail_under is not None:
            try:
                fail_under = float(opt.dbfault_coverage_fail_under)
            except ValueError:
                raise pytest.UsageError(f"--dbfault-coverage-fail-under: invalid value "
                                        f"{opt.dbfault_coverage_fail_under!r}; "
                                        f"expected a percentage such as 95") from None
        root = Path(opt.dbfault_coverage_root or "reliability")
        if not root.is_absolute():
            root = (config.invocation_params.dir if opt.dbfault_coverage_root else config.rootpath) / root
        config.pluginmanager.register(CoverageRun(config, root, fail_under), COVERAGE_PLUGIN)


def report_sections(config: pytest.Config) -> dict[str, Any]:
    """The ``chaos`` / ``coverage`` sections of the JSON report, for the parts that ran."""
    sections: dict[str, Any] = {}
    for name in (CHAOS_PLUGIN, COVERAGE_PLUGIN):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            sections.update(plugin.report_section())
    return sections


class ChaosRun:
    """Installs the chaos injector for the session and decides which failing tests are not fault-tolerant."""

    def __init__(self, config: pytest.Config, injector: Any) -> None:
        self.config = config
        self.injector = injector
        self.is_worker = hasattr(config, "workerinput")
        #: Tests that failed under chaos and passed clean: nodeid, seed, injections.
        self.not_tolerant: list[dict[str, Any]] = []
        #: Tests that failed under chaos and failed clean too (not chaos's doing).
        self.failing_anyway: list[str] = []
        self.tests = 0
        self.injected = 0
        self._failed: set[str] = set()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.injector.install()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.injector.uninstall()

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        inj = self.injector
        lines = [f"dbfault chaos: seed {inj.seed}, rate {inj.rate:g}, faults {', '.join(inj.kinds)}"]
        return lines + [f"dbfault chaos: {note}" for note in inj.notes]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._failed.add(report.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
        self.injector.begin(item.nodeid)
        try:
            result = yield
        finally:
            injections = self.injector.end()
        self.tests += 1
        self.injected += len(injections)
        if item.nodeid in self._failed and injections:
            self._judge(item, nextitem, injections)
        return result

    def _judge(self, item: pytest.Item, nextitem: pytest.Item | None, injections: list[Any]) -> None:
        # The test's own (failed) result is already reported; rerun it once without chaos to learn
        # whether chaos broke it. The rerun's reports are not logged.
        from _pytest.runner import runtestprotocol

        item._initrequest()  # type: ignore[attr-defined]  # fresh fixture values, as pytest-rerunfailures does
        with self.injector.paused():
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if all(r.passed or (r.when != "call" and not r.failed) for r in reports):
            self.not_tolerant.append({
                "nodeid": item.nodeid, "seed": self.injector.seed,
                "injections": [vars(i).copy() for i in injections],
            })
        else:
            self.failing_anyway.append(item.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            self.config.workeroutput[WORKER_CHAOS] = self.report_section()["chaos"]  # type: ignore[attr-defined]

    def merge(self, data: dict[str, Any]) -> None:
        """Add an xdist worker's chaos section."""
        self.tests += data.get("tests", 0)
        self.injected += data.get("injections", 0)
        self.not_tolerant.extend(data.get("not_fault_tolerant", []))
        self.failing_anyway.extend(data.get("failing_without_faults", []))

    def report_section(self) -> dict[str, Any]:
        inj = self.injector
        return {"chaos": {
            "seed": inj.seed, "rate": inj.rate, "faults": list(inj.kinds), "notes": list(inj.notes),
            "tests": self.tests, "injections": self.injected,
            "not_fault_tolerant": sorted(self.not_tolerant, key=lambda t: t["nodeid"]),
            "failing_without_faults": sorted(self.failing_anyway),
        }}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        tr = terminalreporter
        tr.write_sep("=", "dbfault chaos")
        for line in render_chaos_summary(self.report_section()["chaos"]):
            tr.write_line(line, red=line.startswith("NOT FAULT-TOLERANT"))


def render_chaos_summary(data: dict[str, Any]) -> list[str]:
    """Terminal lines for the chaos section of the report."""
    lines = [f"seed {data['seed']}, rate {data['rate']:g}: {data['injections']} faults injected "
             f"into {data['tests']} tests ({', '.join(data['faults'])})"]
    bad = data["not_fault_tolerant"]
    if bad:
        lines.append(f"NOT FAULT-TOLERANT: {len(bad)} tests pass without faults and fail with them:")
        for t in bad:
            surfaced = [i for i in t["injections"] if i.get("error")] or t["injections"]
            last = surfaced[-1]
            told = f" -> {last['error']}" if last.get("error") else ""
            lines.append(f"  {t['nodeid']}: {last['kind']} at {last['sql']!r}{told}")
            lines.append(f"    replay: pytest --dbfault-chaos --dbfault-seed={t['seed']} "
                         f"--dbfault-chaos-rate={data['rate']:g} '{t['nodeid']}'")
    else:
        lines.append("not fault-tolerant: none")
    if data["failing_without_faults"]:
        lines.append(f"failing without faults too (not counted): {len(data['failing_without_faults'])}")
    return lines


class _ChaosXdist:
    """Registered only with pytest-xdist: collects the workers' chaos sections on the controller."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_CHAOS)
        plugin = self.config.pluginmanager.get_plugin(CHAOS_PLUGIN)
        if data and plugin is not None:
            plugin.merge(data)


class CoverageRun:
    """Labels coverage contexts while faults are active; reports handlers reached per fault kind."""

    def __init__(self, config: pytest.Config, root: Path, fail_under: float | None) -> None:
        from .coverage_faults import FaultContexts

        self.config = config
        self.root = root
        self.fail_under = fail_under
        self.is_worker = hasattr(config, "workerinput")
        self.contexts = FaultContexts()
        self.data: dict[str, Any] | None = None
        self._coverage: Any = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from .coverage_faults import current_coverage

        self._coverage = current_coverage()
        self.contexts.start()

    # pytest-cov switches to "<nodeid>|<phase>" at each phase: put the fault label back on top of it.
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.contexts.rebase()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.contexts.rebase()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self.contexts.rebase()

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.contexts.clear()  # a fault the test never healed must not label the tests after it

    @pytest.hookimpl(tryfirst=True)  # before the JSON report is written; pytest-cov has combined its data
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .coverage_faults import build_coverage_report

        self.contexts.stop()
        if self.is_worker:
            return
        self.data = build_coverage_report(self._measured_coverage(), self.root, fail_under=self.fail_under,
                                          relative_to=self.config.rootpath)
        if self.data["failures"] and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _measured_coverage(self) -> Any:
        # pytest-cov swaps in the Coverage object holding the combined data (xdist workers included).
        cov_plugin = self.config.pluginmanager.get_plugin("_cov")
        controller = getattr(cov_plugin, "cov_controller", None)
        if controller is not None and getattr(controller, "cov", None) is not None:
            return controller.cov
        return self._coverage

    def report_section(self) -> dict[str, Any]:
        return {"coverage": self.data} if self.data is not None else {}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or self.data is None:
            return
        from .coverage_faults import render_coverage_summary

        tr = terminalreporter
        tr.write_sep("=", "dbfault coverage of error handlers")
        for line in render_coverage_summary(self.data, verbose=self.config.option.verbose > 0):
            tr.write_line(line, red=line.startswith(("NOT REACHED", "FAILED")))
