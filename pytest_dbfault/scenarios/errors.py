"""The two ways a scenario goes wrong, each able to say exactly where and why.

* :class:`ScenarioError` — the *file* is wrong (bad YAML, unknown key, wrong type, unknown
  command or fault...). Raised before anything runs; the message starts with ``file:line``,
  shows the offending line and says what was expected.
* :class:`ScenarioFailure` — the file is fine but the *runtime* did not behave as a step
  expected. The message names the step (``file:line``), what was expected, what happened,
  the faults active at that moment and the seed to replay the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The one "did you mean" helper of both wings; the scenario modules take it from here.
from reliability._suggest import closest, did_you_mean  # noqa: F401


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a scenario file, at a 1-based ``line`` (and ``column``, 0 if unknown)."""

    line: int
    message: str
    column: int = 0
    #: Where in the document: ``scenarios[0].steps[2].fault``; empty for the whole file.
    where: str = ""


class ScenarioError(Exception):
    """A scenario file (or one scenario in it) is malformed.

    :param file: the scenario file.
    :param problems: every problem found, each with its line; at least one.
    :param source: the file's text, used to quote the offending lines.

    ``str(error)`` is the full report; ``error.line`` / ``error.message`` / ``error.snippet``
    describe the first problem.
    """

    def __init__(self, file: str | Path, problems: list[Problem], source: str = "") -> None:
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.file = Path(file)
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        self.source = source
        first = self.problems[0]
        self.line = first.line
        self.message = first.message
        self.snippet = quote(source, first.line, first.column)
        super().__init__(self.render())

    def render(self, display_path: str | None = None) -> str:
        """Every problem as ``file:line: where: message`` followed by the quoted line."""
        name = display_path or str(self.file)
        blocks = []
        for p in self.problems:
            head = f"{name}:{p.line}: " + (f"{p.where}: " if p.where else "") + p.message
            snippet = quote(self.source, p.line, p.column)
            blocks.append(head + ("\n" + snippet if snippet else ""))
        return "\n".join(blocks)


@dataclass
class ScenarioFailure(Exception):
    """A step of a valid scenario did not get what it expected from the runtime."""

    scenario: str
    file: Path
    line: int
    step: str
    expected: str
    actual: str
    active_faults: list[str] = field(default_factory=list)
    seed: int = 0
    #: The steps that ran before this one, as short descriptions, for context.
    history: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.render())

    def render(self, display_path: str | None = None) -> str:
        """The report shown by pytest for a failing scenario."""
        name = display_path or str(self.file)
        lines = [
            f"scenario {self.scenario!r} failed at {name}:{self.line}",
            f"  step:          {self.step}",
            f"  expected:      {self.expected}",
            f"  got:           {_indent(self.actual, 17)}",
            f"  active faults: {', '.join(self.active_faults) or 'none'}",
            f"  seed:          {self.seed} (replay with --dbfault-seed={self.seed})",
        ]
        snippet = quote(self.source, self.line, 0)
        if snippet:
            lines.append(snippet)
        if self.history:
            lines.append("  steps before it:")
            lines.extend(f"    {h}" for h in self.history[-10:])
        return "\n".join(lines)


def quote(source: str, line: int, column: int = 0) -> str:
    """The ``line`` of ``source`` as ``   12 | text``, with a caret under ``column`` when known."""
    rows = source.splitlines()
    if not 1 <= line <= len(rows):
        return ""
    text = rows[line - 1].rstrip()
    out = f"  {line:>4} | {text}"
    if column > 0:
        out += "\n" + " " * 7 + "| " + " " * (column - 1) + "^"
    return out


def _indent(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)
