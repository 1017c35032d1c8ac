"""The hooks of a run with ``--dbfault``: the header, per-test bookkeeping, the property x fault report,
and under pytest-xdist one seed for every worker with their counts merged back.

Registered by :mod:`pytest_dbfault.plugin` only when dbfault is enabled, so an inert run pays nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..options import OPTIONS, DbfaultOptions
from . import stash
from .collection import collect_scenario_file
from .options import WORKER_SEED, remember_seed

#: ``workeroutput`` key: a worker's property x fault counts, merged on the controller.
WORKER_STATS = "dbfault_stats"
#: Node ids of scenario items contain this.
_SCENARIO_MARK = stash.SCENARIO_SUFFIX + "::"
#: Options left out of the replay line: the seed is printed on its own, and these do not shape the run;
#: the first two take a value (``--dbfault-seed 5`` drops the ``5`` too).
_REPLAY_DROP = (str(OPTIONS["seed"].cli), str(OPTIONS["report"].cli), str(OPTIONS["enabled"].cli),
                *(OPTIONS["enabled"].negation or ())[:1])


class ActiveRun:
    """Hooks registered only when dbfault is enabled, in the order pytest calls them."""

    def __init__(self, config: pytest.Config, opts: DbfaultOptions) -> None:
        self.config = config
        self.opts = opts
        self.is_worker = hasattr(config, "workerinput")
        self.tests: list[dict[str, Any]] = []
        self._outcomes: dict[str, str] = {}
        self._report_error: str | None = None
        self.session: pytest.Session | None = None

    def profile(self) -> dict[str, str]:
        """The machines' Hypothesis profile and where the choice came from."""
        from ..profiles import current_profile

        name, source = current_profile(getattr(self.config.option, "hypothesis_profile", None))
        return {"name": name, "source": source}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        if not self.is_worker:
            remember_seed(self.config, self.opts.seed)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        opts = self.opts
        faults = ", ".join(opts.faults) if opts.faults is not None else "all"
        lines = [f"dbfault: Using --dbfault-seed={opts.seed}",
                 f"dbfault: faults: {faults}; seed from: {opts.seed_source}"]
        if config.stash.get(stash.COLLECTING, None):
            lines.append(f"dbfault: collecting {', '.join(config.stash[stash.COLLECTING])} (dbfault_paths); "
                         f"name paths on the command line to collect others")
        if opts.report is not None:
            lines.append(f"dbfault: JSON report: {opts.report}")
        profile = self.profile()
        lines.append(f"dbfault: Hypothesis profile of the property machines: {profile['name']} ({profile['source']})")
        return lines

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        return collect_scenario_file(file_path, parent)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and not self.is_worker:  # a file that could not be collected ran nothing it holds
            self.tests.append({"nodeid": report.nodeid or ".", "outcome": "error", "seed": None, "kind": None,
                               "faults": [], "type": "collection"})

    def pytest_dbfault_fault_injected(self, fault: Any, item: Any) -> None:
        # Tests using the dbfault fixture list their faults through the factory; scenarios and others here.
        if item is not None and hasattr(item, "stash") and item.stash.get(stash.FACTORY, None) is None:
            item.stash.setdefault(stash.ITEM_FAULTS, []).append(str(getattr(fault, "name", type(fault).__name__)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        report = yield
        factory = item.stash.get(stash.FACTORY, None)
        if factory is not None and report.failed and report.when == "call":
            report.sections.append(("dbfault faults", factory.describe()))
        faults = item.stash.get(stash.ITEM_FAULTS, None)
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
                self.tests.append(_test_entry(report.nodeid, outcome, props))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ..stats import STATS

        if self.is_worker:
            self.config.workeroutput[WORKER_STATS] = STATS.to_json()  # type: ignore[attr-defined]
            return
        data = self.report_data(session.exitstatus)
        if data["verdict"] != "pass" and session.exitstatus == pytest.ExitCode.OK:
            # Tests all passed but the report is not clean (an applicable cell is empty): the run fails.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.opts.report is not None:
            from ..report import write_report

            try:
                write_report(self.opts.report, data)
            except OSError as exc:
                self._report_error = f"could not write the JSON report to {self.opts.report}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        from ..report import render_summary

        tr = terminalreporter
        tr.write_sep("=", "dbfault")
        data = self.report_data(self.session.exitstatus if self.session is not None else 0)
        width = self.config.get_terminal_writer().fullwidth
        for line in render_summary(data, width=width):
            tr.write_line(line, red=line.startswith(("VIOLATIONS", "NOT EXERCISED", "VERDICT", "FAILED", "EMPTY",
                                                     "WARNING")))
        if self.opts.report is not None:
            if self._report_error:
                tr.write_line(f"dbfault: {self._report_error}", red=True)
            else:
                tr.write_line(f"JSON report: {self.opts.report}")

    def report_data(self, exitstatus: int = 0) -> dict[str, Any]:
        """The report of this run; ``exitstatus`` is pytest's so far (a failure no test explains is one too)."""
        from ..faults.registry import fault_names
        from ..report import build_report
        from ..stats import STATS

        tests = sorted(self.tests, key=lambda t: t["nodeid"])
        applicable, note = _applicable_cells(tests)
        return build_report(
            STATS, seed=self.opts.seed, fault_kinds=fault_names(), selected=self.opts.faults,
            tests=tests, applicable=applicable, cells_note=note, replay=replay_command(self.config, self.opts),
            extra={"seed_source": self.opts.seed_source, "pytest": pytest.__version__,
                   "hypothesis_profile": self.profile(), "exitstatus": int(exitstatus),
                   **_sqlite_build(), **_part_sections(self.config)},
        )


class XdistHooks:
    """Registered only when pytest-xdist is installed: one seed for all workers, stats merged back."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_SEED] = self.config.stash[stash.OPTIONS].seed

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_STATS)
        if data:
            from ..stats import STATS

            STATS.merge_json(data)


def replay_command(config: pytest.Config, opts: DbfaultOptions) -> str:
    """The command line that reruns this run: its paths and options, the effective seed, the machines'
    Hypothesis profile when it is not the plain default, and the settings that came from the environment.

    ``pytest --dbfault --dbfault-seed=N`` plus the arguments given (without the seed and report options);
    ``DBFAULT_FAULTS`` becomes ``--dbfault-faults``; ``RELIABILITY_SQLITE_MODULE`` is kept as a prefix.
    """
    import shlex

    from ..profiles import FAST, current_profile

    kept: list[str] = []
    skip_next = False
    for arg in (str(a) for a in config.invocation_params.args):
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in _REPLAY_DROP:
            skip_next = "=" not in arg and name in _REPLAY_DROP[:2]
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


def _test_entry(nodeid: str, outcome: str, props: dict[str, Any]) -> dict[str, Any]:
    seed = props.get("dbfault_seed")
    entry = {
        "nodeid": nodeid,
        "outcome": outcome,
        "seed": int(seed) if seed is not None and str(seed).isdigit() else seed,
        "kind": props.get("dbfault_kind"),
        "faults": [f for f in str(props.get("dbfault_faults", "")).split(",") if f],
        "type": "machine" if "dbfault_machine" in props else "scenario" if _SCENARIO_MARK in nodeid else "test",
    }
    if "dbfault_machine" in props:
        entry["machine"] = props["dbfault_machine"]
    return entry


def _part_sections(config: pytest.Config) -> dict[str, Any]:
    """The ``chaos`` / ``coverage`` sections of the JSON report, for the parts that ran."""
    sections: dict[str, Any] = {}
    for name in (stash.CHAOS_PLUGIN, stash.COVERAGE_PLUGIN):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            sections.update(plugin.report_section())
    return sections


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
