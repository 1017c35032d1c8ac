"""``reliability selfcheck``: the shipped machines and scenarios run against the installed runtime."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from reliability import cli, selfcheck

ROOT = Path(__file__).parents[1]


@pytest.mark.filterwarnings("ignore::UserWarning:setuptools.config.pyprojecttoml")
# setuptools >= 77 deprecates the license table; the build backend the project pins (>= 68) needs it.
@pytest.mark.filterwarnings("ignore::UserWarning:setuptools.config._apply_pyprojecttoml")
def test_the_wheel_installs_every_shipped_scenario_and_the_machines_module() -> None:
    from setuptools.config import pyprojecttoml
    from setuptools.dist import Distribution

    dist = Distribution()
    pyprojecttoml.apply_configuration(dist, str(ROOT / "pyproject.toml"))
    shipped = {Path(f).name for target, files in dist.data_files if target == selfcheck.DATA_DIR for f in files}
    expected = {p.name for p in (ROOT / "scenarios").glob("*.dbfault.yaml")} | {selfcheck.MACHINES_MODULE}
    assert len(expected) > 1 and shipped == expected


def test_the_files_come_from_this_source_tree() -> None:
    files, source = selfcheck.shipped_files()
    assert str(ROOT / "scenarios") in source
    assert {f.name for f in files} == {p.name for p in (ROOT / "scenarios").glob("*.dbfault.yaml")} | {
        selfcheck.MACHINES_MODULE}


def test_selfcheck_runs_the_shipped_files_and_prints_the_report(capfd: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["selfcheck", "--", "-k", "operations or connection"])
    out, _ = capfd.readouterr()
    assert code == cli.EXIT_OK, out
    assert "operations.dbfault.yaml" in out and "p01_connection_recovery" in out  # pytest's run and the report
    assert "a partial run" in out  # -k selected a part: the verdict does not claim the rest


def test_selfcheck_json_is_one_document_with_the_report(capfd: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--json", "selfcheck", "--", "-k", "operations"])
    out, err = capfd.readouterr()
    doc = json.loads(out)
    assert code == cli.EXIT_OK and doc["status"] == "ok" and "operations.dbfault.yaml" in err
    assert doc["value"]["report"] is not None and doc["value"]["pytest_exit_code"] == 0
    assert "operations.dbfault.yaml" in doc["value"]["scenario_files"]


def test_a_selfcheck_that_ran_nothing_is_not_a_pass(capfd: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--json", "selfcheck", "--", "-k", "no_such_test_anywhere"])
    doc = json.loads(capfd.readouterr().out)
    assert code == cli.EXIT_UNHEALTHY and doc["status"] == "unhealthy" and "nothing was checked" in doc["message"]


def test_without_the_plugin_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(selfcheck.REQUIRED, "no_such_module_for_dbfault", "no-such-dist")
    code = cli.main(["selfcheck"])
    assert code == cli.EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert "no-such-dist missing" in err and "pip install 'dbfault[plugin]'" in err


def test_outside_a_source_tree_it_looks_for_the_installed_files_and_says_when_they_are_missing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An installation whose data files are gone (this checkout is installed editable, so the wheel's
    ``share/dbfault/selfcheck`` files are not among its recorded files): the selfcheck refuses with a
    clear message instead of running nothing and calling it a pass."""
    fake = tmp_path / "site-packages" / "reliability" / "selfcheck.py"
    monkeypatch.setattr(selfcheck, "__file__", str(fake))
    files, source = selfcheck.shipped_files()
    assert files == [] and source.startswith("installed files")
    with pytest.raises(selfcheck.SelfcheckUnavailable, match="were not found .*reinstall dbfault"):
        selfcheck.run_selfcheck()


# -- from a wheel (#19) ---------------------------------------------------------------------------------
def _copy_source(dest: Path) -> Path:
    """The files a wheel is built from, copied: building in place would leave build/ and *.egg-info here."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, dest / name)
    for name in ("reliability", "pytest_dbfault", "scenarios"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{' '.join(cmd)}: exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_reliability_selfcheck_passes_from_an_installed_wheel(tmp_path: Path) -> None:
    """Build a wheel of this project, install it alone into a fresh venv, run ``reliability selfcheck`` there.

    Offline: the wheel is built without build isolation (setuptools comes from the test extra) and
    installed with ``--no-deps``; its dependencies are this environment's, seen through a ``.pth`` line, so
    what is under test (the runtime, the plugin, the shipped files) comes from the wheel only.
    """
    if importlib.util.find_spec("setuptools.command.bdist_wheel") is None:  # pragma: no cover - test extra
        pytest.skip("setuptools >= 70.1 is not installed (pip install -e '.[test]' brings it)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    src = _copy_source(Path(tempfile.mkdtemp(dir=tmp_path, prefix="src-")))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], tmp_path, env)
    wheels = list(dist.glob("dbfault-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(wheels[0])], tmp_path, env)
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env)
    # This environment's packages after the venv's own (a path line in a .pth: the .pth files there, such as
    # this checkout's editable install, are not read, so dbfault itself comes from the wheel).
    Path(site.stdout.strip(), "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(py), "-c", "import reliability, pytest_dbfault; print(reliability.__file__); "
                  "print(pytest_dbfault.__file__)"], elsewhere, env)
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout
    # A part of the shipped files, as the other selfcheck test runs (the whole run belongs to the main job).
    out = subprocess.run([str(venv / "bin" / "reliability"), "--json", "selfcheck", "--", "-k",
                          "operations or connection"], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    doc = json.loads(out.stdout)
    value = doc["value"]
    assert doc["exit_code"] == 0 and value["pytest_exit_code"] == 0
    assert value["files_from"] == f"installed files {venv / 'share' / 'dbfault' / 'selfcheck'}"
    assert value["runtime"] == str(Path(where.stdout.split()[0]).resolve().parent)  # the wheel's runtime
    assert "operations.dbfault.yaml" in value["scenario_files"]
    assert "a partial run" in doc["message"]  # -k selected a part: the verdict does not claim the rest
    report = value["report"]
    assert report is not None and report["verdict"] == "pass"


# -- a failing run is a failure (#14) -------------------------------------------------------------------
#: A planted defect a shipped scenario finds whatever the SQLite build and seed (its steps are fixed): a migration
#: whose statement fails is not rolled back, so its first statement's table stays (scenario "a failing migration is
#: rolled back entirely"). (A defect only a machine finds depends on the build: the transactions machine met a
#: savepoint defect with the stdlib's SQLite at seed 1 and not with pysqlite3's.)
_NOT_ROLLED_BACK = ("        except Exception as exc:\n            _rollback_quietly(conn)\n"
                    "            raise _failed(m, exc, verb) from exc\n",
                    "        except Exception as exc:\n            raise _failed(m, exc, verb) from exc\n")


def test_selfcheck_against_a_runtime_that_breaks_a_property_exits_non_zero(tmp_path: Path) -> None:
    """The shipped machines and scenarios run against a copy of this runtime with one defect: the selfcheck must
    fail (exit code, JSON status and message), name what failed, and keep the run's files for the operator."""
    (tmp_path / "broken").mkdir()
    src = _copy_source(tmp_path / "broken")
    site = src / "reliability" / "schema.py"
    text = site.read_text(encoding="utf-8")
    assert text.count(_NOT_ROLLED_BACK[0]) == 1, "the planted defect's site moved: update _NOT_ROLLED_BACK"
    site.write_text(text.replace(*_NOT_ROLLED_BACK), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "CI", "HYPOTHESIS_PROFILE")}
    env["PYTHONPATH"] = str(src)  # the copy's runtime, plugin and shipped files come before the installed ones
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-c", "import sys; from reliability.cli import main; sys.exit(main())",
                          "--json", "selfcheck", "--", "-k", "failing and migration and entirely"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    doc = json.loads(out.stdout)
    assert out.returncode == cli.EXIT_UNHEALTHY, f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    assert doc["status"] == "unhealthy" and doc["value"]["pytest_exit_code"] == 1
    assert doc["message"].startswith("selfcheck FAILED") and "passed" not in doc["message"]
    assert doc["value"]["runtime"] == str((src / "reliability").resolve())  # the broken copy was what ran
    assert "FAILED" in out.stderr and "a failing migration is rolled back entirely" in out.stderr
    work = Path(doc["value"]["work_dir"])
    assert work.is_dir() and doc["message"].endswith(f"kept in {work}")
    report = doc["value"]["report"]
    assert report is not None and report["verdict"] != "pass"
    shutil.rmtree(work, ignore_errors=True)
