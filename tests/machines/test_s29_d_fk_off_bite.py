"""The schema machine's rule ``rebuild_a_parent_table_with_foreign_keys_off`` (session 29): a migration marked
``-- reliability: foreign_keys=off`` rebuilds a parent table that a child row names. The runtime turns foreign keys off
outside the migration's transaction, runs ``PRAGMA foreign_key_check`` before its commit (a violation rolls the whole
migration back) and puts the configured setting back afterwards. Before this rule the main job never ran such a
migration to its end (only a failing one, in one draw of ``new_release``).

The rule is called directly on a freshly started machine (no Hypothesis search): it passes on the runtime, and bites
a runtime that leaves foreign keys on for the migration (the rebuild's DROP of the parent fails), one that skips the
foreign key check (the orphan row is committed), and one that leaves them off afterwards."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine
from test_s22_schema_rollback_bite import plant

import reliability.schema as schema_module


def rebuild(tmp_path, orphan: bool, as_folder: bool = False) -> None:
    machine = started_machine("schema", tmp_path)
    run_and_tear_down(machine, lambda m: m.rebuild_a_parent_table_with_foreign_keys_off(orphan, as_folder, 5))


@pytest.mark.parametrize("orphan", [False, True])
@pytest.mark.parametrize("as_folder", [False, True])
def test_the_rule_passes_on_the_runtime(tmp_path, orphan, as_folder):
    rebuild(tmp_path, orphan, as_folder)


def test_it_bites_foreign_keys_left_on_for_the_migration(tmp_path, monkeypatch):
    plant(monkeypatch, schema_module, "_run_in_tx",
          ('        conn.execute("PRAGMA foreign_keys = OFF")\n', "        pass\n"))
    with pytest.raises(AssertionError, match=r"p04_\w+ violated .*migrate\(\) with pending \[\d+\] .*failed"):
        rebuild(tmp_path, False)


def test_it_bites_a_skipped_foreign_key_check(tmp_path, monkeypatch):
    plant(monkeypatch, schema_module, "_run_in_tx",
          ('            violations = conn.execute("PRAGMA foreign_key_check").fetchall()\n',
           "            violations = []\n"))
    with pytest.raises(AssertionError,
                       match=r"p05_\w+ violated .*leaving a child row naming a missing parent.* succeeded"):
        rebuild(tmp_path, True)


@pytest.mark.parametrize("orphan", [False, True])
def test_it_bites_foreign_keys_left_off_afterwards(tmp_path, monkeypatch, orphan):
    plant(monkeypatch, schema_module, "_run_in_tx",
          ("            conn.execute(f\"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}\")\n",
           "            pass\n"))
    with pytest.raises(AssertionError, match=r"p0[45]_\w+ violated .*a row naming a missing parent was accepted"):
        rebuild(tmp_path, orphan)
