"""``reliability selfcheck``: run the shipped property machines and scenarios against the installed runtime.

Someone who installed dbfault with pip can check the runtime on their own file system and SQLite
build with one command::

    pip install 'dbfault[plugin]'
    reliability selfcheck                      # or: reliability selfcheck -- -k "transactions or faults"

It copies the shipped scenario files and the property machines' test module into a fresh temporary
folder and runs ``python -m pytest --dbfault`` there in a subprocess (this package never imports
pytest), with this interpreter, so the runtime under test is the one installed here. pytest's output,
the property x fault report included, is shown as it runs; the exit code is pytest's verdict.

Where the files come from: a source checkout's ``scenarios/`` folder when this package is imported
from one (the freshest copy), otherwise the data files the wheel installs under
``<prefix>/share/dbfault/selfcheck/`` (found through the distribution's file list, so ``--user`` and
virtualenv installs work alike).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Where the wheel installs the selfcheck files, relative to the installation prefix.
DATA_DIR = "share/dbfault/selfcheck"
#: The property machines' test module (shipped next to the scenario files).
MACHINES_MODULE = "test_property_machines.py"
#: What the selfcheck needs besides the runtime: the ``plugin`` extra.
REQUIRED = {"pytest": "pytest", "hypothesis": "hypothesis", "yaml": "PyYAML", "faker": "Faker"}


class SelfcheckUnavailable(Exception):
    """The selfcheck cannot run here (the plugin extra is missing, or the shipped files are not found)."""


def shipped_files() -> tuple[list[Path], str]:
    """The scenario files and the machines' test module to run, and where they were found."""
    root = Path(__file__).resolve().parents[1]
    source = root / "scenarios"
    if (root / "pyproject.toml").is_file() and (source / MACHINES_MODULE).is_file():
        return sorted(source.glob("*.dbfault.yaml")) + [source / MACHINES_MODULE], f"source tree {source}"
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("dbfault").files or []
    except PackageNotFoundError:  # dbfault: no fault (the package is not installed as a distribution)
        files = []
    # (pip also records the bytecode it compiled for the module: only the shipped files themselves count)
    found = sorted(Path(os.path.normpath(str(f.locate()))) for f in files
                   if f"{DATA_DIR}/" in str(f).replace("\\", "/")
                   and (f.name.endswith(".dbfault.yaml") or f.name == MACHINES_MODULE))
    where = str(found[0].parent) if found else DATA_DIR
    return found, f"installed files {where}"


def missing_requirements() -> list[str]:
    """The distributions of the ``plugin`` extra that are not importable here."""
    return [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]


def run_selfcheck(pytest_args: Sequence[str] = (), *, as_json: bool = False) -> tuple[int, dict[str, Any]]:
    """Run the selfcheck; returns (pytest's exit code, a summary). pytest's output goes to stdout
    (to stderr when ``as_json``, so that stdout stays one JSON document).

    :raises SelfcheckUnavailable: when the plugin extra is missing or no shipped files are found.
    """
    missing = missing_requirements()
    if missing:
        raise SelfcheckUnavailable(f"the selfcheck needs the plugin extra ({', '.join(missing)} missing): "
                                   "pip install 'dbfault[plugin]'")
    files, source = shipped_files()
    scenarios = [f for f in files if f.name.endswith(".dbfault.yaml")]
    if not scenarios or not any(f.name == MACHINES_MODULE for f in files):
        raise SelfcheckUnavailable(f"the shipped scenarios and property machines were not found ({source}); "
                                   "reinstall dbfault")
    work = Path(tempfile.mkdtemp(prefix="dbfault-selfcheck-"))
    for f in files:
        shutil.copyfile(f, work / f.name)
    # Our own ini file: the run must not pick up the configuration of whatever folder it sits in.
    (work / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n", encoding="utf-8")
    report = work / "dbfault-report.json"
    cmd = [sys.executable, "-m", "pytest", "--dbfault", f"--dbfault-report={report}", "--rootdir", str(work),
           "-c", str(work / "pytest.ini"), str(work), *pytest_args]
    import reliability

    runtime = str(Path(reliability.__file__).resolve().parent)
    target = sys.stderr if as_json else sys.stdout
    try:
        out: Any = target.fileno()
    except (AttributeError, OSError, ValueError):  # dbfault: no fault (a stream without a file, e.g. captured)
        out = subprocess.PIPE
    proc = subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT if out is subprocess.PIPE else None,
                          check=False, text=True)
    if out is subprocess.PIPE:
        target.write(proc.stdout)
    code = proc.returncode
    summary: dict[str, Any] = {"pytest_exit_code": code, "runtime": runtime, "files_from": source,
                               "scenario_files": [f.name for f in scenarios], "command": cmd, "work_dir": str(work)}
    try:
        summary["report"] = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # dbfault: no fault (pytest stopped before writing its report)
        summary["report"] = None
    if code == 0 and pytest_args:
        # Never claim more than ran: extra arguments (-k, -x, paths...) may have selected a part.
        summary["message"] = (f"selfcheck passed for what pytest {' '.join(pytest_args)} selected (a partial run "
                              f"may have skipped machines or scenarios) against the runtime at {runtime}")
    if code == 0 and not pytest_args:
        summary["message"] = (f"selfcheck passed: every property machine and {len(scenarios)} scenario file(s) "
                              f"ran against the runtime at {runtime}")
    if code == 0:
        shutil.rmtree(work, ignore_errors=True)
        summary["work_dir"] = None
    elif code == 5:
        summary["message"] = "selfcheck ran no test (pytest collected nothing): nothing was checked"
    else:
        summary["message"] = (f"selfcheck FAILED (pytest exit code {code}); the run's files are kept in {work}")
    return code, summary


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - `python -m reliability.selfcheck`
    """Run the selfcheck from ``python -m reliability.selfcheck [PYTEST_ARGS...]``."""
    try:
        code, summary = run_selfcheck(list(sys.argv[1:] if argv is None else argv))
    except SelfcheckUnavailable as exc:
        print(f"reliability selfcheck: {exc}", file=sys.stderr)
        return 4
    print(summary["message"])
    return 0 if code == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
