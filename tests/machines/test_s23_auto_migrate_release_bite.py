"""The schema machine's rule ``new_release`` judges ``auto_migrate`` at a release's start (P4: every pending migration
above the current version is applied before the first call). Called with fixed arguments on a fresh machine, it passes
on the runtime and fails against a startup that applies the first pending migration only.

(Session 23: the search-based case ``p04_migration_application-schema-auto_migrates_first_pending_only`` of
``test_machines_bite.py`` stopped meeting its defect in its derandomized streams once the schema machine gained the
rule ``validate_with_the_migrations_given``; this test reaches the same defect without depending on the search.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.durability import trust


def run_rule(base: Path, new: int, auto: bool) -> None:
    """``new_release`` once on a fresh schema machine (its migrations applied at start), then its teardown."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["schema"], None, base_dir=str(base), enforce={3, 4, 5})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()},
                  frozenset({"migrate", "schema_damage", "release"}))
    try:
        machine.new_release(auto, new, None, 0)
    finally:
        machine.teardown()


@pytest.mark.parametrize(("new", "auto"), [(1, True), (2, True), (3, True), (2, False)])
def test_the_rule_passes_on_the_runtime(tmp_path, new, auto):
    run_rule(tmp_path, new, auto)


@pytest.mark.parametrize("new", [2, 3])
def test_it_bites_auto_migrate_applying_the_first_pending_only(tmp_path, monkeypatch, new):
    # The startup check hands ``migrate`` the pending migrations with all but the first left out (a loop that
    # returned after its first migration).
    real = trust.Trust._startup_schema

    def startup(self):
        migrate = self.migrate

        def first_only(items):
            pending = list(self.schema_report.pending if self.schema_report else [])
            return migrate([m for m in items if m.version not in pending[1:]])

        self.migrate = first_only
        try:
            real(self)
        finally:
            vars(self).pop("migrate", None)

    monkeypatch.setattr(trust.Trust, "_startup_schema", startup)
    with pytest.raises(AssertionError, match=r"p04.*after a release start \(auto_migrate=True.*records versions"):
        run_rule(tmp_path, new, True)
