"""The schema machine judges a rollback whose down step fails part way (rule ``roll_back_with_a_failing_down_step``):
the versions above the failing one are undone, each in its own transaction, and no longer recorded; the failing one
and those below stay; what the runtime knows follows the file (validation of the known migrations is ok with nothing
pending, writes are served); a later migrate re-applies exactly the undone versions. Each check fails against a
runtime with one realistic defect of that kind (``roll_back_migrations`` sees none of them: its down steps all work)."""

from __future__ import annotations

import sqlite3

import pytest
from bite_settings import bite_settings

import reliability.durability.trust as trust
import reliability.schema as schema
from pytest_dbfault.machines import MACHINES, run_machine

BITE = bite_settings(max_examples=60, steps=15)
CAUGHT = r"p05_migration_rollback violated .*the down step of \d+ \(\w+\) failing"


def test_it_bites_a_runtime_that_keeps_what_it_knew_after_a_failed_rollback(tmp_path, monkeypatch):
    # After a change that failed part way, the runtime keeps the migrations it knew before plus any applied now,
    # forgetting to drop the ones the failed rollback did undo: validation then calls them pending and writes are
    # refused although the file is exactly where the rollback left it.
    def known_after(self, before, after, offered):
        if self.migrations is None:
            return None
        pool = {m.version: m for m in offered}
        pool.update({m.version: m for m in self.migrations})
        keep = {m.version for m in self.migrations} | (set(after) - set(before))
        return [pool[v] for v in sorted(keep)]

    monkeypatch.setattr(trust.Trust, "_known_after", known_after)
    with pytest.raises(AssertionError, match=CAUGHT):
        run_machine(MACHINES["schema"], settings_=BITE, base_dir=str(tmp_path), enforce={5})


def test_it_bites_a_rollback_that_forgets_a_version_before_its_down_step_ran(tmp_path, monkeypatch):
    # The bookkeeping row is deleted first, in its own statement, and the down step runs after it: a down step that
    # fails leaves its version unrecorded while everything it made is still there.
    real_run = schema._run_in_tx

    def run_in_tx(conn, m, foreign_keys, record, *, verb="applied"):
        if verb != "rolled back":
            return real_run(conn, m, foreign_keys, record, verb=verb)
        record(conn)
        return real_run(conn, m, foreign_keys, lambda _conn: None, verb=verb)

    monkeypatch.setattr(schema, "_run_in_tx", run_in_tx)
    with pytest.raises(AssertionError, match=CAUGHT):
        run_machine(MACHINES["schema"], settings_=BITE, base_dir=str(tmp_path), enforce={5})


def test_it_bites_a_rollback_run_as_one_transaction(tmp_path, monkeypatch):
    # Every down step in one transaction (the documented contract is one per reversal): a failing step takes the
    # reversals that worked before it back with it, so the versions above it are recorded again.
    def revert(conn, migrations, to, *, foreign_keys=True):
        # (the target is checked as the runtime checks it: the one defect planted here is the single transaction)
        if isinstance(to, bool) or not isinstance(to, int) or to < 0:
            raise schema.MigrationError(schema.ErrorKind.SCHEMA, f"rollback target must be a version number >= 0, "
                                                                 f"got {to!r}")
        if conn.in_transaction:
            raise schema.MigrationError(schema.ErrorKind.SCHEMA, "cannot roll back migrations while a transaction is "
                                                                 "open on this connection")
        done = schema.applied_versions(conn)
        known = {m.version: m for m in migrations}
        for version in (v for v in done if v > to):  # (unknown and edited versions refused first, as the runtime does)
            if version not in known:
                raise schema.MigrationError(schema.ErrorKind.SCHEMA, f"migration {version} is recorded in the database "
                                                                     "but not among the migrations given")
            if known[version].checksum != done[version][1]:
                raise schema.MigrationError(schema.ErrorKind.SCHEMA, f"migration {known[version].label} changed since "
                                                                     "it was applied")
        undone = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for version in sorted((v for v in done if v > to), reverse=True):
                m = known[version]
                if m.down is None:
                    raise schema.MigrationError(schema.ErrorKind.SCHEMA, f"migration {m.label} has no down step")
                try:
                    schema._run_step(conn, m.down)
                except sqlite3.Error as exc:
                    raise schema.MigrationError(schema.ErrorKind.SCHEMA,
                                                f"migration {m.label} could not be undone and was left as it was: "
                                                f"{exc}") from exc
                schema._forget_version(conn, version=version)
                undone.append(version)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return undone

    monkeypatch.setattr(trust, "revert_migrations", revert)
    with pytest.raises(AssertionError, match=CAUGHT):
        run_machine(MACHINES["schema"], settings_=BITE, base_dir=str(tmp_path), enforce={5})
