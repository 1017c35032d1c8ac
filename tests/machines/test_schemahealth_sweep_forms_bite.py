"""The schema and health machines vary what a test author would hard-code: the migration file-name forms the loader
documents (``001_x.sql``, ``2-x.sql``, ``.SQL``, ``.DOWN.sql``: rule ``migrate_from_folder`` and the command-line and
rollback rules), the runtime's handle closed behind it before maintenance (rule ``maintenance_on_a_closed_handle``,
and one time in four in the folder and rollback rules), and the database's page size (512 to 65536 bytes: a copy
rebuilt with it is checked whenever a healthy file is, ``HealthMixin.page_size_copy_checked``). Each check fails
against a runtime with one realistic defect of that kind, written apart from the benchmark's planted ones."""

from __future__ import annotations

import os
import re

import pytest
from bite_settings import bite_settings, run_and_tear_down, started_machine

from pytest_dbfault.machines import MACHINES, run_machine

BITE = bite_settings(max_examples=30, steps=15)


def test_schema_bites_a_loader_that_takes_only_lower_case_sql(tmp_path, monkeypatch):
    # "Migration files are named 001_x.sql": the file-name pattern drops re.I, so 3_x.SQL (or .DOWN.sql) is refused
    # as an unnumbered file, although the folder walk itself accepts any case of the suffix.
    from reliability import schema

    monkeypatch.setattr(schema, "_FILE_NAME",
                        re.compile(r"^(?P<version>\d+)[_\-](?P<name>.+?)(?P<down>\.down)?\.sql$"))
    # (``with a folder of``: rule ``migrations_folder_with_a_stray_file``, session 29, which meets the refused form too)
    with pytest.raises(AssertionError, match=r"p0[45]_migration_\w+ violated .*(files numbered|`reliability migrate`|"
                                             r"rollback_migration|with a folder of)"):
        run_machine(MACHINES["schema"], settings_=BITE, base_dir=str(tmp_path), enforce={4, 5})


def trusts_the_connection_state(monkeypatch):
    # "Reopen when the handle is gone": the maintenance path asks the manager's own state, which still says
    # CONNECTED after the application closed db.connection itself, so validate/migrate/rollback use a closed handle.
    from reliability.connection import ConnectionManager, ConnectionState

    def live_connection(self):
        if self._conn is not None and self.state is ConnectionState.CONNECTED:
            return self._conn
        return self.connection

    monkeypatch.setattr(ConnectionManager, "live_connection", live_connection)


def closed_handle_machine(tmp_path):
    machine = started_machine("schema", tmp_path, frozenset({"migrate", "fault:disconnect_close"}))
    machine.add_migration("create", 1)
    machine.migrate()
    return machine


# (A direct call since session 29: the schema machine's new rules moved its search off this rule within 30 examples.)
@pytest.mark.parametrize("entry", ["validate_given", "migrate", "rollback"])
def test_maintenance_on_a_closed_handle_passes_on_the_runtime(tmp_path, entry):
    run_and_tear_down(closed_handle_machine(tmp_path), lambda m: m.maintenance_on_a_closed_handle(entry, 1, 0))


# (migrate and rollback on the closed handle are judged by the same rule; this defect shows through validate.)
@pytest.mark.parametrize("entry", ["validate_given", "validate_known"])
def test_schema_bites_maintenance_that_trusts_the_connection_state(tmp_path, monkeypatch, entry):
    trusts_the_connection_state(monkeypatch)
    with pytest.raises(AssertionError, match=r"p0[345]_\w+ violated \(faults: disconnect_close\)"):
        run_and_tear_down(closed_handle_machine(tmp_path), lambda m: m.maintenance_on_a_closed_handle(entry, 1, 0))


def test_health_bites_a_cut_off_check_that_counts_filesystem_blocks(tmp_path, monkeypatch):
    # "SQLite writes whole blocks": the cut-off check takes the file system's block size (4096 here) as the unit
    # instead of the database's page size, so a sound file of 512-byte pages is called cut off, and 4096 stray bytes
    # after the last 8192-byte page go unseen.
    from reliability import files, health

    def cut_off_problems(db_path, page_size):
        size = files.file_size(db_path)
        if size is None:
            return []
        block = os.statvfs(os.path.dirname(os.path.abspath(db_path)) or ".").f_bsize
        if page_size > 0 and size % block:
            return [f"the database file ends inside a block: {size} bytes is no whole number of {block}-byte blocks"]
        return []

    monkeypatch.setattr(health, "cut_off_problems", cut_off_problems)
    with pytest.raises(AssertionError, match=r"p11_integrity_checking violated .*copy .*\d+-byte pages"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})
