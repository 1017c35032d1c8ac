"""pytest glue for ``--dbfault-chaos`` and ``--dbfault-coverage`` (the logic is in :mod:`.chaos` and
:mod:`.coverage_faults`). :mod:`.plugin` calls :func:`addoption` and :func:`configure`; each part
registers its hooks only when its option is given, so a run without them pays nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .chaos_run import CHAOS_PLUGIN, render_chaos_summary  # noqa: F401  (chaos glue lives in chaos_run)

COVERAGE_PLUGIN = "dbfault-coverage"


def addoption(group: Any) -> None:
    """Add the chaos and coverage options to the ``dbfault`` option group."""
    from . import chaos_run

    chaos_run.addoption(group)
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
    from . import chaos_run

    opt = config.option
    chaos_run.configure(config, seed)  # on the command line, in the environment or the ini file
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
