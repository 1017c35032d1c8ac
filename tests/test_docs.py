"""Docs that run: every code block of README.md and docs/*.md is executed here, as written.

Blocks are collected from the Markdown when the tests are collected, so a new block is a new test:

* A ``python`` or ``yaml`` block whose first line is ``# <file name>`` (``# conftest.py``,
  ``# tests/test_orders.py``, ``# scenarios/orders.dbfault.yaml``) is a **file**. The files of one
  document make one project in a fresh directory (blocks naming the same file are joined in order).
* A ``bash``/``sh`` block holds **commands**, a ``console`` block commands after ``$ `` prompts and their
  output (``# comments`` dropped, ``\\`` continuations joined). The ``pytest``, ``python -m pytest`` and
  ``reliability`` commands of a block run in order, as one shell session, in a fresh copy of the
  document's project, and must each exit 0, or with the status a trailing ``# exit N`` comment gives
  (``$ reliability --db missing.db health   # exit 3``). ``pip install`` commands are not re-run here
  (they would install into this venv): each ``&&`` part must be in ``.ci/run``, which runs them on a
  fresh venv. When a document has files but
  no command, its project runs ``python -m pytest --dbfault`` and must pass.
* Any other ``python`` block is a **script**: it runs in a fresh directory, twice (an example that only
  works once, e.g. a second INSERT hitting UNIQUE, fails).
* ``text`` and untagged blocks are output samples, not code.
* A block that cannot run here says why in the Markdown, on the line before it:
  ``<!-- not run: the reason -->`` (an empty reason is an error). Every other block runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CI = ROOT / ".ci" / "run"
BIN = Path(sys.executable).parent
OUTPUT_LANGS = ("", "text")
COMMAND_LANGS = ("bash", "console", "sh", "shell")
FILE_LANGS = ("python", "yaml")
NOT_RUN = re.compile(r"<!--\s*not run:(.*?)-->", re.S)
FILE_LINE = re.compile(r"#\s*([\w./-]+\.[A-Za-z]+)\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
#: ``$ reliability --db missing.db health   # exit 3``: the exit status a documented command must have.
EXIT_NOTE = re.compile(r"\s#\s*exit\s+(\d+)\s*$")
#: How long one command of the docs may take before it counts as hung (they take seconds).
TIMEOUT = 300


@dataclass
class Block:
    """One fenced block: where it is, its language, its text and, if given, why it is not run."""

    doc: Path
    line: int
    lang: str
    text: str
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        first = self.text.splitlines()[0] if self.text.strip() else ""
        match = FILE_LINE.fullmatch(first.strip())
        return match.group(1) if match and self.lang in FILE_LANGS else None


def blocks_of(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, with the reason of a ``<!-- not run: ... -->`` just before one."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang = match.group(1), match.group(2)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        before = [line for line in lines[:start] if line.strip()][-1:] or [""]
        reason = NOT_RUN.search(before[0])
        out.append(Block(doc, start + 1, lang, "\n".join(body) + "\n",
                         reason.group(1).strip() if reason else None))
    return out


def commands_of(block: Block) -> list[str]:
    """The commands of a shell block, one string each (prompts, comments and continuations handled)."""
    commands: list[str] = []
    pending = ""
    prompted = block.lang == "console"  # a console block shows output too: only `$ ` lines are commands
    for raw in block.text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("$ "):
            line = line[2:]
        elif prompted and not pending:
            continue
        status = EXIT_NOTE.search(line)
        line = re.sub(r"\s+#\s.*$", "", line) + (f"  # exit {status.group(1)}" if status else "")
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append(pending + line)
        pending = ""
    return commands


def command_kind(command: str) -> str:
    """``install`` (checked against .ci/run), ``run`` (run here) or ``unknown`` (must be marked not run)."""
    if "pip install" in command:
        return "install"
    words = command.split()
    if words[:1] in (["pytest"], ["reliability"]) or words[:3] == ["python", "-m", "pytest"]:
        return "run"
    return "unknown"


@dataclass
class Project:
    """What one document runs: its files, its commands, its scripts."""

    doc: Path
    files: dict[str, str] = field(default_factory=dict)
    commands: list[tuple[str, list[str]]] = field(default_factory=list)  # (where, the block's commands)
    scripts: list[Block] = field(default_factory=list)


ALL_BLOCKS = [b for doc in DOCUMENTS for b in blocks_of(doc)]


def project_of(doc: Path) -> Project:
    project = Project(doc)
    for block in (b for b in ALL_BLOCKS if b.doc == doc and b.not_run is None):
        if block.lang in COMMAND_LANGS:
            runnable = [c for c in commands_of(block) if command_kind(c) == "run"]
            if runnable:
                project.commands.append((block.where, runnable))
        elif block.file_name is not None:
            project.files[block.file_name] = project.files.get(block.file_name, "") + block.text
        elif block.lang == "python":
            project.scripts.append(block)
    return project


PROJECTS = [project_of(doc) for doc in DOCUMENTS]


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment of a user's shell: this venv first on PATH, nothing from the pytest run around us."""
    drop = ("PYTEST_", "DBFAULT", "COV_CORE", "COVERAGE_", "PYTHONPATH", "HYPOTHESIS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and not k.startswith("RELIABILITY_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp / "home")
    (tmp / "home").mkdir(exist_ok=True)
    return env


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def make_project(project: Project, where: Path) -> Path:
    where.mkdir(parents=True)
    for name, text in project.files.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return where


def report(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


# -- every block is accounted for ----------------------------------------------------------------------
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.where for b in ALL_BLOCKS])
def test_every_block_runs_or_says_why_not(block: Block) -> None:
    if block.not_run is not None:
        assert block.not_run, f"{block.where}: `<!-- not run: -->` needs a reason after the colon"
        return
    if block.lang in OUTPUT_LANGS:
        return
    runnable = (block.lang in COMMAND_LANGS or block.file_name is not None or block.lang == "python")
    assert runnable, (f"{block.where}: a ```{block.lang} block is neither a file (first line `# name.ext`), "
                      f"a python script nor shell commands; make it one, or put `<!-- not run: why -->` "
                      f"on the line before it")
    if block.lang in COMMAND_LANGS:
        for command in commands_of(block):
            assert command_kind(command) != "unknown", (
                f"{block.where}: cannot run {command!r} here (only pytest, python -m pytest, reliability and "
                f"pip install commands); mark the block `<!-- not run: why -->`")


def test_the_collector_sees_the_blocks_it_must() -> None:
    # A guard on the collector itself: these blocks exist today, so finding none means it broke.
    readme = [b for b in ALL_BLOCKS if b.doc.name == "README.md"]
    assert any(b.lang == "python" and b.file_name is None for b in readme)
    assert any("pip install" in c for b in readme for c in commands_of(b))
    plugin = next(p for p in PROJECTS if p.doc.name == "plugin.md")
    assert {"conftest.py", "tests/test_orders.py", "test_readonly.py"} <= set(plugin.files)
    assert sum(len(commands) for _, commands in plugin.commands) >= 4


def test_a_not_run_marker_needs_a_reason(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("<!-- not run: needs pyenv -->\n```bash\ntox\n```\n\n<!-- not run: -->\n```bash\ntox\n```\n")
    reasons = [b.not_run for b in blocks_of(doc)]
    assert reasons == ["needs pyenv", ""]


# -- running them --------------------------------------------------------------------------------------
INSTALLS = [(b.where, c) for b in ALL_BLOCKS if b.not_run is None and b.lang in COMMAND_LANGS
            for c in commands_of(b) if command_kind(c) == "install"]


@pytest.mark.parametrize(("where", "command"), INSTALLS, ids=[w for w, _ in INSTALLS])
def test_install_commands_are_what_ci_runs_on_a_fresh_venv(where: str, command: str) -> None:
    # .ci/run makes a fresh venv and runs each part (the README's test command whole, the main job's
    # pytest with its report options added); re-running them here would install into this venv.
    ci = CI.read_text()
    for part in (p.strip() for p in command.split("&&")):
        assert part in ci, f"{where}: {part!r} is not in .ci/run"


SCRIPTS = [s for p in PROJECTS for s in p.scripts]


@pytest.mark.parametrize("block", SCRIPTS, ids=[b.where for b in SCRIPTS])
def test_python_examples_run_twice_in_a_fresh_directory(tmp_path: Path, block: Block) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "example.py").write_text(block.text, encoding="utf-8")
    env = clean_env(tmp_path)
    for attempt in ("first", "second"):
        done = run(f'"{sys.executable}" example.py', work, env)
        assert done.returncode == 0, f"{block.where}, {attempt} run:\n{report(done)}"


RUNS = [(p, where, commands) for p in PROJECTS for where, commands in p.commands]
RUNS += [(p, f"{p.doc.relative_to(ROOT)} (its files)", ["python -m pytest --dbfault -p no:cacheprovider"])
         for p in PROJECTS if p.files and not p.commands]


@pytest.mark.parametrize(("project", "where", "commands"), RUNS, ids=[w for _, w, _ in RUNS])
def test_documented_commands_pass_in_the_documents_project(tmp_path: Path, project: Project, where: str,
                                                           commands: list[str]) -> None:
    # The commands of one block are one shell session: in order, in one copy of the project.
    work = make_project(project, tmp_path / "project")
    env = clean_env(tmp_path)
    for command in commands:
        done = run(command, work, env)
        status = EXIT_NOTE.search(command)
        expected = int(status.group(1)) if status else 0
        assert done.returncode == expected, f"{where}: {command}\nfiles: {sorted(project.files)}\n{report(done)}"
        if "pytest" in command and expected == 0:
            assert re.search(r"\b[1-9]\d* passed", done.stdout), f"{where}: {command}: nothing passed\n{report(done)}"
    shutil.rmtree(work, ignore_errors=True)


def test_console_blocks_yield_their_prompted_commands_with_exit_notes(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("```console\n$ reliability --db gone.db health   # exit 3\nERROR: no database\n"
                   "$ pytest --dbfault \\\n    --dbfault-seed=3   # replay\n```\n")
    (block,) = blocks_of(doc)
    assert commands_of(block) == ["reliability --db gone.db health  # exit 3", "pytest --dbfault --dbfault-seed=3"]
    assert [EXIT_NOTE.search(c) is not None for c in commands_of(block)] == [True, False]
