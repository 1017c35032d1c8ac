"""The schema machine's rule ``new_release`` judges a release whose migration marked ``foreign_keys=off`` fails (P5:
the failed migration changes nothing, and the runtime's connection keeps enforcing foreign keys afterwards). Called
with fixed arguments on a fresh machine, it passes on the runtime and fails against one that leaves foreign keys off
after such a migration failed.

(Session 23: the search-based case ``p05_migration_rollback-schema-foreign_keys_left_off`` of
``test_machines_bite.py`` stopped meeting its defect on Python 3.10 once the schema machine gained the rule
``validate_with_the_migrations_given``; this test reaches the same defect without depending on the search.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability.durability import trust
from reliability.schema import MigrationError


def run_rule(base: Path, auto: bool, at: int) -> None:
    """``new_release`` once (two new migrations, the one at ``at`` failing its foreign key check), then teardown."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["schema"], None, base_dir=str(base), enforce={3, 4, 5})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()},
                  frozenset({"migrate", "schema_damage", "release"}))
    try:
        machine.new_release(auto, 2, "foreign_key", at)
    finally:
        machine.teardown()


@pytest.mark.parametrize(("auto", "at"), [(True, 0), (True, 1), (False, 0), (False, 1)])
def test_the_rule_passes_on_the_runtime(tmp_path, auto, at):
    run_rule(tmp_path, auto, at)


@pytest.mark.parametrize(("auto", "at"), [(True, 1), (False, 1)])
def test_it_bites_foreign_keys_left_off_after_a_failed_migration(tmp_path, monkeypatch, auto, at):
    # The batch turned foreign keys off for the migration marked so, and its error path forgets to turn them on.
    real = trust.apply_migrations

    def leaves_off(conn, items, **kwargs):
        try:
            return real(conn, items, **kwargs)
        except MigrationError:
            conn.execute("PRAGMA foreign_keys = OFF")
            raise

    monkeypatch.setattr(trust, "apply_migrations", leaves_off)
    with pytest.raises(AssertionError, match=r"p05_migration_rollback violated.*foreign keys left off"):
        run_rule(tmp_path, auto, at)
