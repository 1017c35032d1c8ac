"""The schema machine judges the startup check column by column (rule ``column_changed_behind_the_runtime``): a column
an applied migration made, dropped or renamed behind the runtime, is reported missing at the next start by a problem
naming its table and itself, and writes are refused as ``schema_mismatch``. Each check fails against a validator with
one realistic defect in how it compares the live columns (the table-level damage of ``damage_schema_and_restart``
does not see these: each defect still notices a dropped ``label`` column somehow)."""

from __future__ import annotations

import sqlite3

import pytest
from bite_settings import bite_settings, run_and_tear_down, started_machine

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.schema import MigrationError, SchemaValidator, apply_migrations, table_columns

BITE = bite_settings(max_examples=60, steps=15)
CAUGHT = r"p03_schema_validation violated .*column \w+\.\w+ was (dropped|renamed) behind the runtime"


def expected_columns(applied) -> dict[str, list[str]]:
    """What the applied migrations make on an empty database (as the real validator computes it)."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for migration in applied:
            try:
                apply_migrations(scratch, [migration], foreign_keys=False)
            except MigrationError:
                continue
        return table_columns(scratch)
    finally:
        scratch.close()


def test_it_bites_a_validator_that_looks_columns_up_in_the_create_text(tmp_path, monkeypatch):
    # A column counts as present when its name occurs in the table's CREATE statement: a renamed column's old name
    # is still part of its new one ("label" in "label_old"), so the rename goes unseen.
    def compare(self, conn, applied):
        text = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        problems = []
        for table, columns in expected_columns(applied).items():
            if table not in text:
                problems.append(f"table {table!r} is missing from the database")
                continue
            missing = [c for c in columns if c not in text[table]]
            if missing:
                problems.append(f"table {table!r} is missing column(s) {', '.join(missing)}")
        return problems

    monkeypatch.setattr(SchemaValidator, "_compare_live", compare)
    with pytest.raises(AssertionError, match=CAUGHT):
        rename_a_column(tmp_path)


def rename_a_column(tmp_path) -> None:
    """The rule called directly with a rename (since session 29: two rules joined the schema machine, and its search
    met no rename within this file's examples)."""
    machine = started_machine("schema", tmp_path)
    run_and_tear_down(machine, lambda m: m.column_changed_behind_the_runtime("rename", 1))


def test_a_rename_passes_on_the_runtime(tmp_path):
    rename_a_column(tmp_path)


def test_it_bites_a_validator_that_counts_columns(tmp_path, monkeypatch):
    # A shortcut: a table with as many columns as the migrations give it is taken as whole, one with fewer is
    # reported short by a number. A rename keeps the count; a drop is reported without naming the column.
    def compare(self, conn, applied):
        live = table_columns(conn)
        problems = []
        for table, columns in expected_columns(applied).items():
            if table not in live:
                problems.append(f"table {table!r} is missing from the database")
            elif len(live[table]) < len(columns):
                problems.append(f"table {table!r} is missing {len(columns) - len(live[table])} column(s)")
        return problems

    monkeypatch.setattr(SchemaValidator, "_compare_live", compare)
    with pytest.raises(AssertionError, match=CAUGHT):
        run_machine(MACHINES["schema"], settings_=BITE, base_dir=str(tmp_path), enforce={3})
