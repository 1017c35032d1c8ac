"""pytest glue of ``--dbfault-coverage``: coverage contexts labelled with the active faults, and the report of
which fault kinds reached each except handler (the logic is in :mod:`pytest_dbfault.coverage_faults`).

:func:`configure` registers :class:`CoverageRun` only when coverage per fault was asked for, so a run
without it pays nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..options import DbfaultOptions
from .stash import COVERAGE_PLUGIN


def configure(config: pytest.Config, opts: DbfaultOptions) -> None:
    """Register :class:`CoverageRun` when ``--dbfault-coverage`` or a fail-under was given."""
    if opts.coverage is None:
        return
    given = opts.coverage.root
    root = Path(given or "reliability")
    if not root.is_absolute():
        root = (config.invocation_params.dir if given else config.rootpath) / root
    config.pluginmanager.register(CoverageRun(config, root, opts.coverage.fail_under), COVERAGE_PLUGIN)


class CoverageRun:
    """Labels coverage contexts while faults are active; reports handlers reached per fault kind."""

    def __init__(self, config: pytest.Config, root: Path, fail_under: float | None) -> None:
        from ..coverage_faults import FaultContexts

        self.config = config
        self.root = root
        self.fail_under = fail_under
        self.is_worker = hasattr(config, "workerinput")
        self.contexts = FaultContexts()
        self.data: dict[str, Any] | None = None
        self._coverage: Any = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from ..coverage_faults import current_coverage

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
        from ..coverage_faults import build_coverage_report

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
        from ..coverage_faults import render_coverage_summary

        tr = terminalreporter
        tr.write_sep("=", "dbfault coverage of error handlers")
        for line in render_coverage_summary(self.data, verbose=self.config.option.verbose > 0):
            tr.write_line(line, red=line.startswith(("NOT REACHED", "FAILED")))
