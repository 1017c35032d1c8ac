"""Which fault kinds reached which error handler: coverage's dynamic contexts, labelled per fault.

While a fault is active, :class:`FaultContexts` switches coverage's dynamic context to a label
carrying the fault kinds in force, ``<previous context>|dbfault:disk_full`` (``+``-joined when
several are active), and restores the previous context when the last one heals. The previous
context is whatever was there — pytest-cov's ``<nodeid>|run`` under ``--cov-context=test`` — so
both stay readable. After the run, :func:`build_coverage_report` reads the measured data back and
says, for every ``except`` handler and ``raise`` branch found with :mod:`ast` in a source tree
(``reliability/``), which fault kinds reached it and which handlers no fault ever reached.

Plain Python; works with any started ``coverage.Coverage`` (pytest-cov, ``coverage run``, API)::

    contexts = FaultContexts()
    contexts.start()
    ...  # inject and heal faults, run the code under test
    contexts.stop()
    data = build_coverage_report(cov, Path("reliability"), fail_under=95)
    print("\\n".join(render_coverage_summary(data)))

A handler that no fault can reach by design (an ``ImportError`` fallback, a CLI usage error) is
left out when its ``except`` line carries ``# dbfault: no fault`` or coverage excludes it
(``# pragma: no cover``).
"""

from __future__ import annotations

import ast
import io
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults.base import FaultEvent, subscribe, unsubscribe

#: The context label part added while faults are active: ``dbfault:<kind>[+<kind>...]``.
LABEL_PREFIX = "dbfault:"
#: Comment on an ``except`` line that takes the handler out of the "reached by a fault" check.
NO_FAULT_PRAGMA = "dbfault: no fault"
_LABEL_RE = re.compile(r"(?:^|\|)" + re.escape(LABEL_PREFIX) + r"([^|]+)")


def fault_label(kinds: Iterable[str], base: str | None = None) -> str:
    """``("locked", "disk_full"), "t.py::test|run"`` → ``"t.py::test|run|dbfault:disk_full+locked"``."""
    label = LABEL_PREFIX + "+".join(sorted(set(kinds)))
    return f"{base}|{label}" if base else label


def kinds_in_context(context: str) -> set[str]:
    """The fault kinds a context label names (empty for a context recorded without faults)."""
    return {kind for match in _LABEL_RE.finditer(context) for kind in match.group(1).split("+") if kind}


def current_coverage() -> Any | None:
    """The running ``coverage.Coverage`` (``None`` when coverage is not installed or not started)."""
    try:
        import coverage
    except ImportError:  # pragma: no cover - coverage is a test dependency
        return None
    return coverage.Coverage.current()


class FaultContexts:
    """Switch coverage's dynamic context while faults are active (see the module docstring).

    Subscribes to every fault's start and end (:class:`pytest_dbfault.faults.base.FaultEvent`) once
    :meth:`start` is called; the label carries each fault's :attr:`~pytest_dbfault.faults.base.Fault.kind`.
    Thread-safe: a fault healed by a timer thread restores the context.

    :param coverage: the ``coverage.Coverage`` to switch; default: whichever is running at each event.
    """

    def __init__(self, coverage: Any | None = None) -> None:
        self._coverage = coverage
        self._lock = threading.RLock()
        self._active: dict[int, str] = {}
        #: The context in force before the first active fault (``None``: no fault active).
        self._base: str | None = None
        #: The label this object switched to last (its dynamic part).
        self._label: str | None = None
        #: Every label this object switched to, for tests and debugging.
        self.labels: list[str] = []

    def start(self) -> None:
        """Begin listening to fault lifecycles."""
        subscribe(self._on_fault)

    def stop(self) -> None:
        """Stop listening and restore the previous context if faults are still active."""
        unsubscribe(self._on_fault)
        with self._lock:
            if self._active:
                self._active.clear()
                self._switch(self._base or "")
                self._base = None

    def clear(self) -> None:
        """Forget the faults still marked active (made but never healed) and restore the previous context.

        Called at the end of each test, so a fault a test leaked does not label the tests after it.
        """
        with self._lock:
            if self._active:
                self._active.clear()
                self._switch(self._base or "")
            self._base = None

    def rebase(self) -> None:
        """Someone else (pytest-cov at a test phase change) switched the context: relabel on top of it."""
        with self._lock:
            if not self._active:
                return
            current = self._switch("", record=False) or ""
            if current != self._label:  # else nobody switched since our own label: keep the base
                self._base = current
            self._switch(fault_label(self._active.values(), self._base))

    def _on_fault(self, event: FaultEvent) -> None:
        fault = event.fault
        with self._lock:
            if event.action == "injected":
                self._active[id(fault)] = event.kind
            elif fault.label_lingers:
                # A transient fault (chaos) is gone before the code that reacts to it runs: its kind
                # stays in the label until the test ends (clear()).
                return
            elif self._active.pop(id(fault), None) is None:
                return
            if self._active:
                if self._base is None:  # the first fault: remember the context to compose with
                    self._base = self._switch("", record=False) or ""
                self._switch(fault_label(self._active.values(), self._base))
            elif self._base is not None:
                self._switch(self._base)
                self._base = None

    def _switch(self, label: str, *, record: bool = True) -> str | None:
        # Returns the previous context's dynamic part. switch_context() gives no getter for the
        # current context, so reading it means switching (to "" here, just before the real label).
        cov = self._cov()
        if cov is None:
            return None
        try:
            previous = cov.switch_context(label)
        except Exception:  # coverage stopped between two events: nothing left to label
            return None
        if record:
            self.labels.append(label)
            self._label = label
        return _dynamic_part(cov, previous)

    def _cov(self) -> Any | None:
        return self._coverage if self._coverage is not None else current_coverage()


def _dynamic_part(cov: Any, context: str | None) -> str | None:
    # switch_context() returns the full label, static context included (coverage >= 7.16; None before).
    static = getattr(getattr(cov, "config", None), "context", None)
    if context and static:
        if context == static:
            return ""
        if context.startswith(static + "|"):
            return context[len(static) + 1:]
    return context


# -- finding error handlers ---------------------------------------------------------------------
@dataclass(frozen=True)
class Handler:
    """An ``except`` clause (kind ``"except"``) or a ``raise`` outside one (kind ``"raise"``)."""

    file: str
    line: int
    kind: str
    #: Source lines counted as "reached": the handler's first statement, or the raise itself.
    body: tuple[int, int]
    function: str
    catches: str = ""
    opted_out: bool = False


def find_handlers(root: str | Path) -> list[Handler]:
    """Every ``except`` handler and ``raise`` branch in the ``.py`` files under ``root``, in file order."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    found: list[Handler] = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            raise ValueError(f"--dbfault-coverage: cannot parse {path}: {exc}") from exc
        found.extend(_HandlerFinder(str(path.resolve()), source.splitlines()).run(tree))
    return found


class _HandlerFinder(ast.NodeVisitor):
    def __init__(self, file: str, lines: list[str]) -> None:
        self.file = file
        self.lines = lines
        self.scope: list[str] = []
        self.in_handler = 0
        self.found: list[Handler] = []

    def run(self, tree: ast.AST) -> list[Handler]:
        self.visit(tree)
        return sorted(self.found, key=lambda h: h.line)

    def _scoped(self, node: ast.AST) -> None:
        self.scope.append(node.name)  # type: ignore[attr-defined]
        outer, self.in_handler = self.in_handler, 0
        self.generic_visit(node)
        self.in_handler = outer
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        first = node.body[0]
        self.found.append(Handler(
            self.file, node.lineno, "except", (first.lineno, first.end_lineno or first.lineno),
            ".".join(self.scope) or "<module>",
            ast.unparse(node.type) if node.type is not None else "BaseException",
            NO_FAULT_PRAGMA in self.lines[node.lineno - 1],
        ))
        self.in_handler += 1
        self.generic_visit(node)
        self.in_handler -= 1

    def visit_Raise(self, node: ast.Raise) -> None:
        if not self.in_handler:
            what = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            self.found.append(Handler(
                self.file, node.lineno, "raise", (node.lineno, node.end_lineno or node.lineno),
                ".".join(self.scope) or "<module>", ast.unparse(what) if what is not None else "",
                NO_FAULT_PRAGMA in self.lines[node.lineno - 1],
            ))


# -- the report ---------------------------------------------------------------------------------
@dataclass
class HandlerReach:
    """How one handler was reached during the run."""

    handler: Handler
    faults: set[str] = field(default_factory=set)
    reached: bool = False
    excluded: bool = False


def handler_reach(cov: Any, handlers: Iterable[Handler]) -> list[HandlerReach]:
    """Read ``cov``'s measured data: which fault kinds (from context labels) reached each handler."""
    data = cov.get_data()
    by_file: dict[str, list[Handler]] = {}
    for h in handlers:
        by_file.setdefault(h.file, []).append(h)
    result: list[HandlerReach] = []
    for file, hs in by_file.items():
        contexts = data.contexts_by_lineno(file) or {}
        try:
            excluded = set(cov.analysis2(file)[2])
        except Exception:  # not measured at all (never imported): nothing is excluded
            excluded = set()
        for h in hs:
            reach = HandlerReach(h, excluded=h.line in excluded or h.body[0] in excluded)
            for line in range(h.body[0], h.body[1] + 1):
                if line in contexts:
                    reach.reached = True
                    for ctx in contexts[line]:
                        reach.faults |= kinds_in_context(ctx)
            result.append(reach)
    return result


def total_coverage(cov: Any, root: str | Path) -> float | None:
    """Coverage percentage of the files under ``root`` (branch coverage when coverage measures branches)."""
    root = Path(root).resolve()
    include = str(root) if root.is_file() else f"{root}/*"
    try:
        return float(cov.report(include=[include], file=io.StringIO(), ignore_errors=True))
    except Exception:  # coverage's NoDataError: nothing under root was measured
        return None


def build_coverage_report(
    cov: Any | None,
    root: str | Path,
    *,
    fail_under: float | None = None,
    relative_to: str | Path | None = None,
) -> dict[str, Any]:
    """The JSON-ready ``coverage`` section of the dbfault report.

    Keys: ``root``, ``measured`` (False with a ``reason`` when no coverage data was available),
    ``metric`` (``"branch"`` or ``"line"``), ``percent``, ``handlers`` (one per ``except`` / ``raise``:
    file, line, kind, function, catches, faults, reached, checked), ``except_handlers``,
    ``unreached_by_fault`` (``except`` handlers reached by no fault), ``fail_under``, ``failures``.

    :param fail_under: with a number, ``failures`` lists why the gate fails: percent below it, or
        any checked ``except`` handler that no fault reached.
    :param relative_to: file paths are shown relative to this directory.
    """
    root = Path(root)
    report: dict[str, Any] = {"root": str(root), "measured": False, "fail_under": fail_under, "failures": []}
    if cov is None:
        report["reason"] = "coverage was not running (run with --cov=<package> or under `coverage run`)"
        if fail_under is not None:
            report["failures"].append("no coverage data to check --dbfault-coverage-fail-under against")
        return report
    if not root.exists():
        report["reason"] = f"no directory or file {root} to look for error handlers in"
        if fail_under is not None:
            report["failures"].append(report["reason"])
        return report
    base = Path(relative_to).resolve() if relative_to is not None else None
    reach = handler_reach(cov, find_handlers(root))
    report["measured"] = True
    report["metric"] = "branch" if getattr(getattr(cov, "config", None), "branch", False) else "line"
    report["percent"] = total_coverage(cov, root)
    entries = []
    for r in reach:
        h = r.handler
        file = h.file
        if base is not None:
            try:
                file = str(Path(h.file).relative_to(base))
            except ValueError:
                pass
        entries.append({
            "file": file, "line": h.line, "kind": h.kind, "function": h.function, "catches": h.catches,
            "faults": sorted(r.faults), "reached": r.reached,
            "checked": h.kind == "except" and not (h.opted_out or r.excluded),
        })
    report["handlers"] = entries
    checked = [e for e in entries if e["checked"]]
    report["except_handlers"] = len(checked)
    unreached = [e for e in checked if not e["faults"]]
    report["unreached_by_fault"] = [f"{e['file']}:{e['line']}" for e in unreached]
    if fail_under is not None:
        pct = report["percent"]
        if pct is None:
            report["failures"].append(f"no coverage data for {root}")
        elif pct < fail_under:
            report["failures"].append(
                f"{report['metric']} coverage of {root} is {pct:.1f}%, under {fail_under:g}%")
        if unreached:
            report["failures"].append(f"{len(unreached)} of {len(checked)} except handlers in {root} "
                                      f"were reached by no fault")
    return report


def render_coverage_summary(data: Mapping[str, Any], *, verbose: bool = False) -> list[str]:
    """Terminal lines for :func:`build_coverage_report`: totals, handlers per fault kind, the unreached ones.

    Reached handlers are listed only with ``verbose``; unreached ones always.
    """
    if not data.get("measured"):
        lines = [f"error-handler coverage: not measured: {data.get('reason', 'no data')}"]
        return lines + [f"FAILED: {f}" for f in data.get("failures", [])]
    pct = data.get("percent")
    pct_text = f"{pct:.1f}%" if pct is not None else "no data"
    checked = [h for h in data["handlers"] if h["checked"]]
    by_fault = [h for h in checked if h["faults"]]
    lines = [f"error-handler coverage of {data['root']}: {data['metric']} coverage {pct_text}; "
             f"{len(by_fault)} of {len(checked)} except handlers reached under a fault"]
    kinds: dict[str, int] = {}
    for h in data["handlers"]:
        for kind in h["faults"]:
            kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        per_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        lines.append(f"handlers/raises reached per fault kind: {per_kind}")
    if verbose:
        for h in by_fault:
            kinds_text = ", ".join(h["faults"])
            lines.append(f"  {h['file']}:{h['line']} {h['function']} except {h['catches']}: {kinds_text}")
    unreached = [h for h in checked if not h["faults"]]
    if unreached:
        lines.append(f"NOT REACHED BY ANY FAULT: {len(unreached)} except handlers")
        for h in unreached:
            how = "reached without a fault" if h["reached"] else "never reached"
            lines.append(f"  {h['file']}:{h['line']} {h['function']} except {h['catches']} ({how})")
    lines.extend(f"FAILED: {f}" for f in data.get("failures", []))
    return lines
