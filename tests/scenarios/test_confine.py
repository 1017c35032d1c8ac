"""A scenario's paths are confined to its tmp directory (#15 item 16): config, reload_config, restore."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from pytest_dbfault.scenarios.errors import ScenarioFailure
from pytest_dbfault.scenarios.parse import parse_file
from pytest_dbfault.scenarios.runner import run_scenario


@pytest.fixture
def outside() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="not-the-scenarios-"))  # like /var/tmp: a real place elsewhere
    yield folder
    shutil.rmtree(folder)


def scenario(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "s.dbfault.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return parse_file(path).scenarios[0]


def run(tmp_path: Path, text: str) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    run_scenario(scenario(tmp_path, text), work, seed=1)
    return work


@pytest.mark.parametrize("key", ["backup_dir", "write_queue_path", "operation_log_path", "audit_fallback_path",
                                 "audit_key_path"])
def test_a_config_path_outside_the_tmp_directory_is_refused_naming_the_key(tmp_path: Path, outside: Path,
                                                                           key: str) -> None:
    text = f"""
        scenarios:
          - name: escape
            config: {{{key}: "{outside / 'x'}", operation_log: true}}
            steps:
              - command: backup
    """
    with pytest.raises(ScenarioFailure) as info:
        run(tmp_path, text)
    message = str(info.value)
    assert key in message and "inside its tmp directory" in message
    assert list(outside.iterdir()) == []


def test_climbing_out_with_dot_dot_is_refused(tmp_path: Path) -> None:
    text = """
        scenarios:
          - name: escape
            config: {backup_dir: "../../elsewhere"}
            steps:
              - command: ping
    """
    with pytest.raises(ScenarioFailure, match="backup_dir"):
        run(tmp_path, text)
    assert not (tmp_path.parent / "elsewhere").exists()


def test_relative_paths_land_in_the_scenarios_tmp_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # before, a relative backup_dir was taken from the current directory
    work = run(tmp_path, """
        scenarios:
          - name: inside
            config: {backup_dir: backups, write_queue_path: q/queue.jsonl}
            steps:
              - command: backup
                expect: ok
    """)
    assert any((work / "backups").iterdir()) and not (cwd / "backups").exists()


def test_reload_config_and_restore_cannot_point_outside_either(tmp_path: Path, outside: Path) -> None:
    run(tmp_path, f"""
        scenarios:
          - name: later
            steps:
              - command: reload_config
                args: {{backup_dir: "{outside}"}}
                expect: rejected
              - command: backup
                expect: ok
              - command: restore
                args: {{path: "{outside / 'planted.db'}"}}
                expect: rejected
    """)
    assert list(outside.iterdir()) == []


def test_scenario_commands_enforce_the_same_authorization(tmp_path: Path) -> None:
    """#15 item 6: a scenario step is one more entry point; mallory is refused by each command path."""
    work = run(tmp_path, """
        scenarios:
          - name: authorization
            steps:
              - command: set_flag
                args: {name: pwned, value: "yes", actor: mallory}
                expect: {error: any, message: "mallory is not allowed"}
              - command: dispatch
                args: {name: flags.set, args: [pwned, "yes", mallory]}
                expect: {error: any, message: "not allowed to run 'flags.set'"}
              - command: audit
                args: {caller: mallory}
                expect: {error: any, message: "not allowed to run 'audit'"}
              - command: get_flag
                args: {name: pwned}
                expect: {result: null}
              - command: set_flag
                args: {name: ok, value: 1}
                expect: ok
    """)
    assert (work / "app.db").exists()
