"""The schema machine's rule ``migrations_folder_with_a_stray_file`` (session 29): migrations kept as ``.sql`` files
pair a down file with its up file by version (``load_migrations``); a down file whose version has no up file, or two
files of one version, must make ``migrate(folder)`` and ``rollback_migration(to, folder)`` refuse as a schema error
naming the file, changing nothing. Before this rule the main job never loaded such a folder.

The rule is called directly on a freshly started machine (no Hypothesis search): it passes on the runtime, and bites a
loader that ignores a down file without its up migration, and one that lets a later file of a version replace the
earlier one."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine
from test_s22_schema_rollback_bite import plant

import reliability.schema as schema_module


def stray(tmp_path, kind: str, rollback: bool) -> None:
    machine = started_machine("schema", tmp_path)
    run_and_tear_down(machine, lambda m: m.migrations_folder_with_a_stray_file(kind, rollback, 7))


@pytest.mark.parametrize("kind", ["down_alone", "two_downs", "two_ups"])
@pytest.mark.parametrize("rollback", [False, True])
def test_the_rule_passes_on_the_runtime(tmp_path, kind, rollback):
    stray(tmp_path, kind, rollback)


@pytest.mark.parametrize("rollback", [False, True])
def test_it_bites_a_down_file_without_its_up_ignored(tmp_path, monkeypatch, rollback):
    plant(monkeypatch, schema_module, "load_migrations",
          ('            raise _file_error(f"migration file {str(path)!r}: no matching up migration for version '
           '{version}",\n                              path)\n', "            continue\n"))
    with pytest.raises(AssertionError, match=r"p05_\w+ violated .*down_alone: \d+_dropped\.down\.sql\) succeeded"):
        stray(tmp_path, "down_alone", rollback)


@pytest.mark.parametrize("kind", ["two_downs", "two_ups"])
def test_it_bites_a_later_file_of_a_version_taking_its_place(tmp_path, monkeypatch, kind):
    plant(monkeypatch, schema_module, "load_migrations", ("        if version in target:\n", "        if False:\n"))
    with pytest.raises(AssertionError, match=rf"p05_\w+ violated .*{kind}: [\w.]+\.sql\)"):
        stray(tmp_path, kind, True)
