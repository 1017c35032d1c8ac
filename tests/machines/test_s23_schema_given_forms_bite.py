"""The schema machine's rule ``validate_with_the_migrations_given`` judges every field of
``db.validate_schema(migrations)`` for each accepted form of ``migrations`` (none, all, a prefix, a subset; a list, a
tuple, a folder, a ``pathlib.Path``): called with fixed arguments on a fresh machine, it passes on the runtime and
fails against a runtime with one realistic defect in the report's fields."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import schema as schema_module


def run_rule(base: Path, form: str, pick: int) -> None:
    """The rule once on a fresh schema machine (its migrations applied at start), then its teardown."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["schema"], None, base_dir=str(base), enforce={3})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()},
                  frozenset({"migrate", "schema_damage", "release"}))
    try:
        machine.add_migration("create", 1)  # (one known migration not applied: pending)
        machine.validate_with_the_migrations_given(form, pick)
    finally:
        machine.teardown()


FORMS = ["empty_list", "empty_tuple", "empty_folder", "all_list", "all_tuple", "all_folder", "all_path",
         "prefix_list", "prefix_folder", "subset_list", "subset_path"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("pick", [0, 7])
def test_the_rule_passes_on_the_runtime(tmp_path, form, pick):
    run_rule(tmp_path, form, pick)


def test_it_bites_an_empty_list_taken_for_no_list(tmp_path, monkeypatch):
    # ``if not self.migrations`` where ``is None`` was meant: validating with no migrations ([], an empty folder)
    # answers "nothing to compare, ok" although the file records versions the program does not know.
    real = schema_module.SchemaValidator.validate

    def validate(self, conn):
        if not self.migrations:
            current = max(schema_module.applied_versions(conn), default=0)
            return schema_module.SchemaReport(True, [], current, current)
        return real(self, conn)

    monkeypatch.setattr(schema_module.SchemaValidator, "validate", validate)
    with pytest.raises(AssertionError, match=r"validate_schema\((list|tuple|str) of versions \[\]\).*reported"):
        run_rule(tmp_path, "empty_list", 0)


@pytest.mark.parametrize("form", ["empty_tuple", "empty_folder"])
def test_it_bites_an_expected_version_of_one_without_migrations(tmp_path, monkeypatch, form):
    # The highest version given, counted from 1 (``max(..., default=1)``): a program with no migrations is said to
    # expect version 1.
    monkeypatch.setattr(schema_module.SchemaValidator, "_expected",
                        lambda self: max((m.version for m in self.migrations or ()), default=1))
    with pytest.raises(AssertionError, match=r"expected_version': 1.*expected .*'expected_version': 0"):
        run_rule(tmp_path, form, 3)


def test_it_bites_pending_versions_listed_newest_first(tmp_path, monkeypatch):
    # ``pending`` listed from a set, or newest first: the report's order is not the order they will be applied in.
    real = schema_module.SchemaValidator.validate

    def validate(self, conn):
        report = real(self, conn)
        report.pending.reverse()
        return report

    monkeypatch.setattr(schema_module.SchemaValidator, "validate", validate)

    def run() -> None:
        machine_base = tmp_path / "m"
        machine_base.mkdir()
        machine = bind(MACHINES["schema"], None, base_dir=str(machine_base), enforce={3})()
        machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()},
                      frozenset({"migrate", "schema_damage", "release"}))
        try:
            machine.add_migration("create", 1)
            machine.add_migration("create", 2)
            machine.validate_with_the_migrations_given("all_path", 5)
        finally:
            machine.teardown()

    with pytest.raises(AssertionError, match=r"'pending': \[\d+, \d+\].*expected"):
        run()
