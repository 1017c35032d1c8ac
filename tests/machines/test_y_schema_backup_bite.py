"""The backup machine judges which backup a recovery restores (rule ``recover_past_an_unverified_backup``): never one
that is not verified, even the newest. The schema machine applies migrations kept as files in version order, not in
file-name order. Each check fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import bite_settings, run_streams

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.durability.recovery import Recovery

BITE = bite_settings(max_examples=30, steps=15)


def test_it_bites_a_recovery_that_trusts_an_unverified_backup_whose_pages_read_back_whole(tmp_path, monkeypatch):
    # "Give it a second chance": recovery re-checks every backup listed unverified and, when its pages pass
    # integrity_check, takes it as verified (its manifest may be gone, say it failed, or disagree with its size).
    real = Recovery._recover_locked

    def recover_locked(self, reason, t0):
        store = self.store
        listed = store.list

        def relisted():
            return [b if b.verified or store.verify(b.path) else dataclasses.replace(b, verified=True)
                    for b in listed()]

        store.list = relisted
        try:
            return real(self, reason, t0)
        finally:
            del store.list

    monkeypatch.setattr(Recovery, "_recover_locked", recover_locked)
    # Either rule that judges which backup recovery restored may meet it first (the streams differ by SQLite build: on
    # pysqlite3 damage_backups_then_recover did, after session 29's new draws): the same defect, both P13.
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated \(faults: corrupt\): recovery (after "
                                             r".* damage restored .*, which was not verified|restored .*; the newest "
                                             r"backup listed verified that still passes integrity_check is)"):
        run_streams(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={13})


def test_it_bites_migration_files_sorted_by_their_names(tmp_path, monkeypatch):
    # A loader that "sorts the files so the order is stable": by file name, which puts 10_x.sql before 9_y.sql when
    # versions are not zero-padded. The schema machine's folders cross a digit (rules ``migrate_from_folder`` and
    # ``migrate_from_the_command_line``: db.migrate(folder) and `reliability migrate --migrations DIR`).
    from reliability import schema

    real = schema.load_migrations

    def load(folder):
        return sorted(real(folder), key=lambda m: f"{m.version}_{m.name}.sql")

    monkeypatch.setattr(schema, "load_migrations", load)
    with pytest.raises(AssertionError,
                       match=r"p04_migration_application violated .*(files numbered|`reliability migrate`)"):
        run_machine(MACHINES["schema"], settings_=bite_settings(max_examples=60, steps=15), base_dir=str(tmp_path),
                    enforce={4})
