"""``reliability selfcheck``: the shipped machines and scenarios run against the installed runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability import cli, selfcheck

ROOT = Path(__file__).parents[1]


@pytest.mark.filterwarnings("ignore::UserWarning:setuptools.config.pyprojecttoml")
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
