"""pytest glue of chaos mode (``--dbfault-chaos``): per-test bookkeeping, the clean rerun in a
fresh process, blame, the hang watchdog, the terminal summary and the JSON section.

The injection itself is :mod:`pytest_dbfault.chaos`; :mod:`pytest_dbfault.plugin` calls :func:`configure`. The
options are declared in :data:`pytest_dbfault.options.OPTIONS` (``--dbfault-chaos*``).

How a run is judged (docs/chaos.md says the same for users):

* every test that failed or skipped under chaos is run again **without chaos in a fresh pytest
  process**, all of them in one process first (in their original order) and then, each one that
  failed there, alone in a process of its own: a test is "failing without faults too" only when it
  fails alone and clean; shared state that chaos broke in the first process cannot reach the rerun;
* a test that passes clean is a finding when it met a fault of its own: the fault named is the one
  the failing exception's ``__cause__``/``__context__`` chain leads to (or, when the application
  dropped the chain, e.g. it swallowed the error and a later assertion failed, the last fault the
  application saw, and the line says so); a test that met no fault of its own is "collateral of
  <the last earlier finding>" or "failed before any fault could be drawn";
* a test that passes clean and skips under chaos is reported (a capability probe that met a fault);
* a per-test watchdog interrupts a test that runs longer than ``--dbfault-chaos-timeout`` seconds
  with "hung after <fault> at <statement>" and the stacks of every thread, and ends the process at
  exit when threads of a hung test are still stuck, so the session always ends.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .._chaos_kinds import DEFAULT_TIMEOUT, LEVELS, describe_kinds
from ..hang import HangWatchdog
from ..options import OPTIONS, DbfaultOptions
from . import stash

CHAOS_PLUGIN = stash.CHAOS_PLUGIN
#: ``workeroutput`` key for the chaos section found by an xdist worker.
WORKER_CHAOS = "dbfault_chaos"
#: Isolated reruns (one process each) at most; more are reported as not rerun alone.
MAX_ALONE = 20


def configure(config: pytest.Config, opts: DbfaultOptions) -> None:
    """Register the chaos run when chaos is on (``opts.chaos``, from the command line, environment or ini)."""
    rerun_report = config.getoption(OPTIONS["chaos_rerun_report"].dest, None)
    if rerun_report:
        config.pluginmanager.register(_RerunRecorder(Path(rerun_report)), CHAOS_PLUGIN + "-rerun")
    if opts.chaos is None:
        return
    # Only now: chaos loads the fault modules (and sqlite3), which an inert run must not import.
    from ..chaos import ChaosInjector

    injector = ChaosInjector(opts.seed, rate=opts.chaos.rate, kinds=opts.chaos.kinds)
    config.pluginmanager.register(ChaosRun(config, injector, opts.chaos.timeout), CHAOS_PLUGIN)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_ChaosXdist(config), CHAOS_PLUGIN + "-xdist")


def replay_command(nodeid: str, seed: int, rate: float, kinds: tuple[str, ...] | list[str]) -> str:
    """The shell line that reruns ``nodeid`` under the same draw (every option that shapes it)."""
    rate_text = format(rate, "g")
    if float(rate_text) != rate:
        rate_text = repr(rate)
    return shlex.join(["pytest", nodeid, "--dbfault-chaos", f"--dbfault-seed={seed}",
                       f"--dbfault-chaos-rate={rate_text}", f"--dbfault-chaos-faults={describe_kinds(kinds)}"])


class ChaosHang(Exception):
    """Raised in the test's thread by the watchdog: the test ran past ``--dbfault-chaos-timeout``."""


class _Watchdog(HangWatchdog):
    """The per-test watchdog of chaos mode (:class:`~pytest_dbfault.hang.HangWatchdog`): a hung test is recorded
    with every thread's stack and interrupted; one that ignores three interruptions ends the process."""

    exception = ChaosHang
    thread_name = "dbfault-chaos-watchdog"

    def __init__(self, run: ChaosRun, timeout: float) -> None:
        super().__init__(timeout)
        self.run = run

    def fire(self, item: pytest.Item | None) -> str | None:
        if item is None:
            return None
        last = self.run.injector.last_injection
        where = (f"{last.kind} at {last.sql!r} ({last.thread} thread)" if last is not None
                 else "no fault (none reached the application)")
        message = f"hung after {where}: still running after {self.timeout:g} s"
        with tempfile.TemporaryFile("w+") as out:
            faulthandler.dump_traceback(file=out, all_threads=True)
            out.seek(0)
            stacks = out.read()
        self.run.record_hang(item, message, stacks)
        if self.fired > 3:
            # The test ignores interruptions (stuck in C, or catches everything): end the process.
            sys.stderr.write(f"\ndbfault chaos: {item.nodeid} {message}; it ignored 3 interruptions: "
                             f"ending the run\n{stacks}\n")
            sys.stderr.flush()
            os._exit(3)
        return f"{message} (thread stacks in the dbfault chaos section)"


class ChaosRun:
    """Installs the injector for the session, judges each failing or skipping test, reports."""

    def __init__(self, config: pytest.Config, injector: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = config
        self.injector = injector
        self.timeout = timeout
        self.is_worker = hasattr(config, "workerinput")
        self.watchdog = _Watchdog(self, timeout)
        self.tests = 0
        self.by_kind: dict[str, int] = {}
        #: nodeid -> what happened under chaos, for tests that failed or skipped (judged at the end).
        self._suspects: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._current: dict[str, Any] | None = None
        self._hung_threads: list[threading.Thread] = []
        self._exitstatus = 0
        self.section: dict[str, Any] | None = None
        self._merged: list[dict[str, Any]] = []

    # -- options and header ------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        inj = self.injector
        source = getattr(self._options(), "seed_source", "random")
        lines = [f"dbfault chaos: Using --dbfault-seed={inj.seed} --dbfault-chaos-rate={inj.rate:g} "
                 f"--dbfault-chaos-faults={describe_kinds(inj.kinds)}",
                 f"dbfault chaos: faults {', '.join(inj.kinds)}; seed from: {source}; hang watchdog "
                 + (f"{self.timeout:g} s" if self.timeout > 0 else "off")]
        return lines + [f"dbfault chaos: {note}" for note in inj.notes]

    def _options(self) -> DbfaultOptions | None:
        return self.config.stash.get(stash.OPTIONS, None)

    # -- per test ----------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.injector.install()
        self.watchdog.start()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
        self._current = {"nodeid": item.nodeid, "outcome": "passed", "phase": None, "blamed": None,
                         "reason": None, "hung": None}
        self.injector.begin(item.nodeid)
        self.watchdog.arm(item)
        try:
            result = yield
        finally:
            self.watchdog.disarm()
            injections = self.injector.end()
        record, self._current = self._current, None
        self.tests += 1
        for injection in injections:
            self.by_kind[injection.kind] = self.by_kind.get(injection.kind, 0) + 1
        self._order.append(item.nodeid)
        if record["outcome"] != "passed":
            record["injections"] = [i.to_json() for i in injections]
            record["index"] = len(self._order) - 1
            self._suspects[item.nodeid] = record
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        from ..chaos import blamed_injection

        blamed = blamed_injection(call.excinfo.value) if call.excinfo is not None else None
        # A failure a chaos fault caused is shown with Python's own traceback unless --tb was chosen:
        # pytest's default style parses each frame's whole source file, and on a real suite that was
        # half the cost of a chaos run. The fault and the replay line are in the report's section.
        native = blamed is not None and self.config.option.tbstyle == "auto"
        if native:
            self.config.option.tbstyle = "native"
        try:
            report = yield
        finally:
            if native:
                self.config.option.tbstyle = "auto"
        if blamed is not None and report.failed:
            inj = self.injector
            report.sections.append(("dbfault chaos", f"fault: {blamed.describe()}\nreplay: "
                                    + replay_command(item.nodeid, inj.seed, inj.rate, inj.kinds)))
        record = self._current
        if record is None or record["outcome"] == "failed":
            return report
        if report.failed or (report.skipped and not hasattr(report, "wasxfail")):
            record["outcome"] = "failed" if report.failed else "skipped"
            record["phase"] = report.when
            record["blamed"] = blamed.to_json() if blamed is not None else None
            if report.skipped and isinstance(report.longrepr, tuple):
                record["reason"] = str(report.longrepr[2])
        return report

    def record_hang(self, item: pytest.Item, message: str, stacks: str) -> None:
        """Called by the watchdog thread: the running test is past its time."""
        record = self._current
        if record is not None and record["nodeid"] == item.nodeid and record["hung"] is None:
            record["hung"] = {"message": message, "stacks": stacks}
        gen = self.injector._generation
        for thread in threading.enumerate():
            order = getattr(thread, "_dbfault_chaos_order", None)
            if order is not None and order[0] == gen and not thread.daemon and thread not in self._hung_threads:
                self._hung_threads.append(thread)

    # -- the end -----------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)  # before the JSON report is written and xdist reads workeroutput
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.watchdog.stop()
        self.injector.uninstall()
        self._exitstatus = int(exitstatus)
        self.section = self._judge()
        for data in self._merged:
            self._merge_into(self.section, data)
        if self.is_worker:
            self.config.workeroutput[WORKER_CHAOS] = self.section  # type: ignore[attr-defined]
            return
        opts = self._options()
        if opts is not None and opts.report is not None and self.config.pluginmanager.get_plugin(
                stash.ACTIVE_PLUGIN) is None:
            # A chaos-only run: the report is the chaos section (with --dbfault it is part of the full one).
            from ..report import write_report

            try:
                write_report(opts.report, {"format": 1, "seed": self.injector.seed, "chaos": self.section})
            except OSError as exc:
                self.injector.notes.append(f"could not write the JSON report to {opts.report}: {exc}")
        if self._hung_threads:
            self._end_stuck_threads_at_exit()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.watchdog.stop()
        self.injector.uninstall()

    def merge(self, data: dict[str, Any]) -> None:
        """Add an xdist worker's chaos section (merged into this one at the end)."""
        if self.section is not None:
            self._merge_into(self.section, data)
        else:
            self._merged.append(data)

    @staticmethod
    def _merge_into(section: dict[str, Any], data: Mapping[str, Any]) -> None:
        section["tests"] += data.get("tests", 0)
        for key in ("injections", "without_effect"):
            mine, theirs = section[key], data.get(key, {})
            if key == "injections":
                mine["total"] += theirs.get("total", 0)
                mine, theirs = mine["by_kind"], theirs.get("by_kind", {})
            for kind, n in theirs.items():
                mine[kind] = mine.get(kind, 0) + n
        for key in ("not_fault_tolerant", "collateral", "skipped_under_chaos", "hung", "not_rerun"):
            section[key] = sorted([*section[key], *data.get(key, [])], key=lambda t: t["nodeid"])
        section["failing_without_faults"] = sorted([*section["failing_without_faults"],
                                                    *data.get("failing_without_faults", [])])
        section["notes"] = list(dict.fromkeys([*section["notes"], *data.get("notes", [])]))
        connections = section.setdefault("connections", {})
        for module, n in data.get("connections", {}).items():
            connections[module] = connections.get(module, 0) + n

    def _judge(self) -> dict[str, Any]:
        inj = self.injector
        suspects = list(self._suspects.values())
        clean, notes = _clean_rerun(self.config, suspects, self.timeout)
        found: list[dict[str, Any]] = []
        collateral: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        hung: list[dict[str, Any]] = []
        failing: list[str] = []
        not_rerun: list[dict[str, Any]] = []
        last_finding: str | None = None
        for record in sorted(suspects, key=lambda r: r["index"]):
            nodeid = record["nodeid"]
            outcome = clean.get(nodeid)
            if outcome is None:
                not_rerun.append({"nodeid": nodeid, "outcome": record["outcome"]})
                continue
            if record["outcome"] == "skipped":
                if outcome == "passed":
                    skipped.append(self._finding(record, reason=record["reason"]))
                continue
            if outcome != "passed":
                failing.append(nodeid)
                continue
            if record["hung"] is not None:
                hung.append({**self._finding(record), **record["hung"]})
                last_finding = nodeid
            elif record["blamed"] is None and not record["injections"]:
                collateral.append({"nodeid": nodeid, "phase": record["phase"], "of": last_finding,
                                   "why": f"collateral of {last_finding}" if last_finding else
                                   "failed before any fault could be drawn"})
            else:
                found.append(self._finding(record))
                last_finding = nodeid
        return {
            "seed": inj.seed, "rate": inj.rate, "faults": list(inj.kinds), "notes": [*inj.notes, *notes],
            "tests": self.tests,
            # Per wrapped DB-API module, the connections the tests made through it: all 0, nothing met chaos.
            "connections": dict(sorted(getattr(inj, "connections", {}).items())),
            "injections": {"total": sum(self.by_kind.values()), "by_kind": dict(sorted(self.by_kind.items()))},
            "without_effect": dict(sorted(inj.without_effect.items())),
            "clean_rerun": "fresh pytest process without chaos; each test failing there rerun alone",
            "not_fault_tolerant": found, "hung": hung, "skipped_under_chaos": skipped,
            "collateral": collateral, "failing_without_faults": failing, "not_rerun": not_rerun,
        }

    def _finding(self, record: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        inj = self.injector
        blamed, how = record["blamed"], "exception chain"
        if blamed is None and record["injections"]:
            blamed, how = record["injections"][-1], "last fault the application saw (not in the error's chain)"
        entry = {"nodeid": record["nodeid"], "seed": inj.seed, "phase": record["phase"], "blamed": blamed,
                 "blamed_by": how if blamed is not None else None, "injections": record["injections"],
                 "replay": replay_command(record["nodeid"], inj.seed, inj.rate, inj.kinds)}
        if reason is not None:
            entry["reason"] = reason
        return entry

    def _end_stuck_threads_at_exit(self) -> None:
        # Python joins every non-daemon thread before it exits: a thread stuck for ever in a hung
        # test would keep the process alive after the summary. threading._register_atexit runs before
        # that join (concurrent.futures relies on it); when those threads are still alive then, end
        # the process with the session's exit status.
        stuck, status = self._hung_threads, self._exitstatus or 1

        def end() -> None:
            alive = [t.name for t in stuck if t.is_alive()]
            if alive:
                sys.stdout.flush()
                sys.stderr.write(f"dbfault chaos: threads of a hung test still stuck at exit "
                                 f"({', '.join(alive)}): ending the process\n")
                sys.stderr.flush()
                os._exit(status)

        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            with contextlib.suppress(RuntimeError):
                register(end)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or self.section is None:
            return
        tr = terminalreporter
        tr.write_sep("=", "dbfault chaos")
        for line in render_chaos_summary(self.section, verbose=self.config.option.verbose > 0):
            tr.write_line(line, red=line.startswith(("NOT FAULT-TOLERANT", "HUNG", "SKIPPED UNDER CHAOS",
                                                     "NOTHING MET CHAOS")))

    def report_section(self) -> dict[str, Any]:
        """``{"chaos": ...}`` for the full JSON report (empty before the session ends)."""
        return {"chaos": self.section} if self.section is not None else {}


def _blame_line(entry: Mapping[str, Any]) -> str:
    blamed = entry.get("blamed")
    if not blamed:
        return "no fault reached the application"
    told = f" -> {blamed['error']}" if blamed.get("error") else ""
    thread = f" [{blamed['thread']} thread]" if blamed.get("thread", "main") != "main" else ""
    hedge = "" if entry.get("blamed_by") == "exception chain" else " (last fault it saw; not in the error's chain)"
    return f"{blamed['kind']} at {blamed['sql']!r}{thread}{told}{hedge}"


def _top_frames(stacks: str, depth: int) -> list[str]:
    """Each thread's header and its ``depth`` innermost frames, from a faulthandler dump (full one in JSON)."""
    out: list[str] = []
    shown = 0
    for line in stacks.splitlines():
        if line.startswith(("Thread", "Current thread")):
            out.append(line)
            shown = 0
        elif line.strip() and shown < depth:
            out.append(line)
            shown += 1
    return out


def render_chaos_summary(data: Mapping[str, Any], verbose: bool = False) -> list[str]:
    """Terminal lines for the chaos section of the report."""
    counts = data["injections"]
    per_kind = ", ".join(f"{k} {n}" for k, n in counts["by_kind"].items()) or "none"
    lines = [f"seed {data['seed']}, rate {data['rate']:g}, faults {describe_kinds(data['faults'])}: "
             f"{counts['total']} faults reached the application in {data['tests']} tests ({per_kind})"]
    connections = data.get("connections")
    if connections is not None and not any(connections.values()):
        lines.append(f"NOTHING MET CHAOS: no test made a connection through a wrapped connect "
                     f"({', '.join(connections) or 'none could be wrapped'}); these results say nothing about "
                     f"fault tolerance")
    if data.get("without_effect"):
        lines.append(f"not counted: {sum(data['without_effect'].values())} drawn faults SQLite never reported "
                     f"({', '.join(f'{k} {n}' for k, n in data['without_effect'].items())})")
    bad = data["not_fault_tolerant"]
    if bad:
        lines.append(f"NOT FAULT-TOLERANT: {len(bad)} tests pass without faults and fail with them:")
        for t in bad:
            lines.append(f"  {t['nodeid']}: {_blame_line(t)}")
            lines.append(f"    replay: {t['replay']}")
    else:
        lines.append("not fault-tolerant: none")
    if data["hung"]:
        lines.append(f"HUNG: {len(data['hung'])} tests pass without faults and hang with them:")
        for t in data["hung"]:
            lines.append(f"  {t['nodeid']}: {t['message']}")
            lines.append(f"    replay: {t['replay']}")
            lines.extend("    | " + s for s in _top_frames(t["stacks"], 4))
    if data["skipped_under_chaos"]:
        lines.append(f"SKIPPED UNDER CHAOS: {len(data['skipped_under_chaos'])} tests pass without faults "
                     f"and skip with them:")
        for t in data["skipped_under_chaos"]:
            lines.append(f"  {t['nodeid']}: {t.get('reason') or 'skipped'}; {_blame_line(t)}")
            lines.append(f"    replay: {t['replay']}")
    if data["collateral"]:
        lines.append(f"collateral (not counted): {len(data['collateral'])} tests failed with no fault of their own "
                     f"in the error and pass clean:")
        for t in data["collateral"]:
            lines.append(f"  {t['nodeid']}: {t['why']}")
    if data["failing_without_faults"]:
        lines.append(f"failing without faults too (not counted): {len(data['failing_without_faults'])}")
        lines.extend(f"  {n}" for n in data["failing_without_faults"])
    if data.get("not_rerun"):
        lines.append(f"not judged (the clean rerun did not report them): {len(data['not_rerun'])}")
        lines.extend(f"  {t['nodeid']}" for t in data["not_rerun"])
    lines.extend(f"note: {n}" for n in data["notes"])
    return lines


# -- the clean rerun -----------------------------------------------------------------------------
#: Options dropped from the rerun's command line (with their value when given separately).
_DROP_WITH_VALUE = (*(str(OPTIONS[k].cli) for k in ("chaos_rate", "chaos_faults", "chaos_timeout", "report",
                                                     "chaos_rerun_report")),
                    "-n", "--numprocesses", "--dist", "--maxprocesses", "--basetemp",
                    "--junitxml", "--junit-xml", "--maxfail", "--cov", "--cov-report", "--cov-config",
                    "--cov-context", "--cov-fail-under", "--deselect",
                    "--lfnf", "--last-failed-no-failures")
_DROP_FLAG = (str(OPTIONS["chaos"].cli), *(OPTIONS["chaos"].negation or ())[:1],
              "-x", "--exitfirst", "--lf", "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise",
              "--sw-skip", "--stepwise-skip", "--cov-branch", "--cov-append", "--looponfail", "-f")


def rerun_args(args: list[str], positional: list[str]) -> list[str]:
    """``args`` (the original command line) without test paths and the options a clean rerun must not have."""
    out: list[str] = []
    skip_next = False
    drop = set(positional)
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if arg in drop or name in _DROP_FLAG:
            continue
        if name in _DROP_WITH_VALUE:
            skip_next = "=" not in arg
            continue
        if arg.startswith("-n") and arg[2:].isdigit() or arg.startswith("--cov"):
            continue
        out.append(arg)
    return out


def _clean_rerun(config: pytest.Config, suspects: list[dict[str, Any]],
                 timeout: float) -> tuple[dict[str, str], list[str]]:
    """Rerun ``suspects`` without chaos in fresh pytest processes; nodeid -> clean outcome, and notes."""
    if not suspects:
        return {}, []
    ordered = sorted(suspects, key=lambda r: r["index"])
    hung = [r["nodeid"] for r in ordered if r["hung"] is not None]
    batch = [r["nodeid"] for r in ordered if r["hung"] is None]
    notes: list[str] = []
    results: dict[str, str] = {}
    per_test = timeout if timeout > 0 else DEFAULT_TIMEOUT
    started, processes = time.monotonic(), 0
    with tempfile.TemporaryDirectory(prefix="dbfault-chaos-rerun-") as tmp:
        if batch:
            # Generous limits: a fresh pytest process pays its start-up (seconds on a loaded machine).
            results.update(_run_clean(config, batch, Path(tmp), "batch", 120 + per_test * len(batch), notes))
            processes += 1
        # Failed in the batch (or never reported: -x in addopts, a crash): each alone, in its own process.
        alone = [n for n in batch if results.get(n) not in ("passed", "skipped")] + hung
        for i, nodeid in enumerate(alone):
            if i >= MAX_ALONE:
                notes.append(f"{len(alone) - MAX_ALONE} tests failing in the clean batch were not rerun alone "
                             f"(at most {MAX_ALONE})")
                break
            results.pop(nodeid, None)
            results.update(_run_clean(config, [nodeid], Path(tmp), f"alone{i}", 120 + per_test, notes))
            processes += 1
    notes.append(f"clean rerun: {len(suspects)} tests in {processes} fresh pytest processes, "
                 f"{time.monotonic() - started:.1f} s")
    return results, notes


def _run_clean(config: pytest.Config, nodeids: list[str], tmp: Path, name: str, limit: float,
               notes: list[str]) -> dict[str, str]:
    out = tmp / f"{name}.json"
    positional = [str(a) for a in getattr(config, "args", [])]
    args = rerun_args(list(config.invocation_params.args), positional)
    cmd = [sys.executable, "-m", "pytest", *args, "--no-dbfault-chaos", f"--dbfault-chaos-rerun-report={out}",
           f"--basetemp={tmp / (name + '-tmp')}", f"--dbfault-report={tmp / (name + '-report.json')}",
           "-p", "no:cacheprovider", "-q", "--tb=no",
           *(["--no-cov"] if config.pluginmanager.hasplugin("_cov") else []), *nodeids]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBFAULT_CHAOS", "PYTEST_XDIST", "COV_CORE"))}
    try:
        proc = subprocess.run(cmd, cwd=config.invocation_params.dir, env=env, capture_output=True, text=True,
                              timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        notes.append(f"the clean rerun of {len(nodeids)} tests ({nodeids[0]}...) ran past {limit:g} s and was "
                     f"stopped")
        proc = None
    try:
        return json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        if proc is not None:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            notes.append(f"the clean rerun of {nodeids[0]}{'...' if len(nodeids) > 1 else ''} reported nothing "
                         f"(exit {proc.returncode}): {' | '.join(tail)}")
        return {}


class _RerunRecorder:
    """In the clean rerun's process: each test's outcome (passed / failed / skipped) to a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and not hasattr(report, "wasxfail"):
            self.outcomes.setdefault(report.nodeid, "skipped")
        else:
            self.outcomes.setdefault(report.nodeid, "passed")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.path.write_text(json.dumps(self.outcomes), encoding="utf-8")


class _ChaosXdist:
    """Registered only with pytest-xdist: collects the workers' chaos sections on the controller."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_CHAOS)
        plugin = self.config.pluginmanager.get_plugin(CHAOS_PLUGIN)
        if data and plugin is not None:
            plugin.merge(data)


__all__ = ["CHAOS_PLUGIN", "LEVELS", "ChaosHang", "ChaosRun", "configure", "render_chaos_summary", "replay_command",
           "rerun_args"]
