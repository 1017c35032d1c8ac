"""P3 schema validation at startup, P4 migrations applied in order, P5 a failing migration changes nothing."""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .base import swarm
from .workload import Workload

MIGRATION_KINDS = ("create", "column", "index", "seed", "failing")
DAMAGE = ("drop_table", "drop_column", "unknown_version", "edited_checksum")


def run_migrate(db: Any, migrations: list[Any]) -> Any:
    """``db.migrate(migrations)``: the public API an application migrates with (no private fallback)."""
    return db.migrate(migrations)


def run_validate(db: Any, migrations: list[Any]) -> Any:
    """``db.validate_schema(migrations)``: the public API an application validates with."""
    return db.validate_schema(migrations)


def schema_shape(conn: sqlite3.Connection) -> dict[str, Any]:
    """User tables with their columns, and index names (the runtime's own tables left out)."""
    from reliability.schema import table_columns

    indexes = sorted(r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"))
    # The runtime's own tables (audit, queue bookkeeping, flags) are not the application's schema.
    tables = {t: c for t, c in table_columns(conn).items() if not t.startswith("reliability_")}
    return {"tables": tables, "indexes": indexes}


class SchemaMixin(Workload):
    """Grows a list of migrations (some failing), migrates under faults, damages the schema."""

    def after_start(self) -> None:
        super().after_start()
        self.migrations: list[Any] = []
        self.tables: list[str] = ["kv"]
        # Start from a migrated database, so schema damage (P3) is reachable in short runs.
        self.add_migration("create", 0)
        self.migrate()

    def expected_shape(self) -> dict[str, Any]:
        """The shape the start tables plus the applied migrations give on an empty database."""
        from reliability.schema import apply_migrations

        from .base import KV_TABLE, PAIRS_TABLE

        scratch = sqlite3.connect(":memory:", isolation_level=None)
        try:
            scratch.execute(KV_TABLE)
            scratch.execute(PAIRS_TABLE)
            applied = [m for m in self.migrations if m.version in set(self.model.applied_versions)]
            apply_migrations(scratch, applied)
            return schema_shape(scratch)
        finally:
            scratch.close()

    def stored_versions(self) -> list[int] | None:
        """The versions recorded in the file; None when it cannot be read now (away, or locked for readers)."""
        if any(f in self.faults for f in ("disconnect_rename", "disconnect_delete")):
            return None
        try:
            return self._stored_versions()
        except sqlite3.OperationalError:
            if self.faults:
                return None
            raise

    def _stored_versions(self) -> list[int]:
        with self.raw() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_reliability_migrations'").fetchone() is None:
                return []
            return [r[0] for r in conn.execute("SELECT version FROM _reliability_migrations ORDER BY rowid")]

    @precondition(swarm("migrate"))
    @rule(kind=st.sampled_from(MIGRATION_KINDS), pick=st.integers(0, 20))
    def add_migration(self, kind: str, pick: int) -> None:
        from reliability.schema import Migration

        if any(m.name.startswith("failing") for m in self.migrations if m.version not in self.model.applied_versions):
            kind = "create" if kind == "failing" else kind
        version = len(self.migrations) + 1
        table = self.tables[pick % len(self.tables)]
        word = "".join(ch for ch in self.pick("word").lower() if ch.isascii() and ch.isalpha())[:12] or "col"
        if kind == "create" or (kind in ("column", "index", "seed") and table == "kv" and pick % 2):
            name = f"t{version}_{word}"
            sql = f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '')"
            self.tables.append(name)
            kind = "create"
        elif kind == "column":
            sql = f"ALTER TABLE {table} ADD COLUMN c{version}_{word} TEXT"
        elif kind == "index":
            sql = f"CREATE INDEX ix{version}_{word} ON {table} ({'k' if table == 'kv' else 'id'})"
        elif kind == "seed":
            rows = ", ".join(f"('{self.pick('name').replace(chr(39), '')}')" for _ in range(3))
            sql = (f"CREATE TABLE s{version} (label TEXT); INSERT INTO s{version} (label) VALUES {rows}; "
                   f"INSERT INTO s{version} SELECT label || randomblob(2000) FROM s{version}")
        else:
            sql = f"CREATE TABLE f{version} (x INTEGER); INSERT INTO no_such_table_{version} VALUES (1)"
        self.migrations.append(Migration(version, f"{kind}_{word}", sql))

    @precondition(lambda self: any(m.name.startswith("failing") and m.version not in self.model.applied_versions
                                   for m in self.migrations))
    @rule()
    def fix_failing_migration(self) -> None:
        """Replace the failing (never applied) migration by a working one of the same version."""
        from reliability.schema import Migration

        for i, m in enumerate(self.migrations):
            if m.name.startswith("failing") and m.version not in self.model.applied_versions:
                self.migrations[i] = Migration(m.version, f"fixed_{m.version}",
                                               f"CREATE TABLE fixed{m.version} (x INTEGER, label TEXT)")
                self.tables.append(f"fixed{m.version}")

    @precondition(swarm("migrate"))
    @precondition(lambda self: bool(getattr(self, "migrations", None)))
    @rule()
    def migrate(self) -> None:
        """P4 on success, P5 on failure."""
        pending = [m.version for m in self.migrations if m.version not in self.model.applied_versions]
        faults = self.active_fault_names
        out = self.call(None, self.absorb, run_migrate, self.db, list(self.migrations), expected_message=False)
        after = self.stored_versions()
        if out.ok:
            self.check(4, list(out.value.applied) == pending,
                       f"migrate reported {list(out.value.applied)} applied, pending were {pending}", faults=faults)
            self.model.applied_versions += pending
            if after is not None:
                self.check(4, after == self.model.applied_versions,
                           f"recorded versions {after}, expected {self.model.applied_versions} in order",
                           faults=faults)
                self.check_shape(4, faults)
            return
        if after is None:
            return
        # Earlier migrations of this batch may have been applied; the failing one left nothing.
        newly = after[len(self.model.applied_versions):]
        self.check(5, after[:len(self.model.applied_versions)] == self.model.applied_versions
                   and newly == pending[:len(newly)] and (len(newly) < len(pending) or not pending),
                   f"after a failed migrate the recorded versions are {after} (before {self.model.applied_versions},"
                   f" pending {pending})", faults=faults)
        self.model.applied_versions += newly
        self.check_shape(5, faults)

    def check_shape(self, number: int, faults: list[str]) -> None:
        with self.raw() as conn:
            live = schema_shape(conn)
        want = self.expected_shape()
        self.check(number, live == want, lambda: f"schema is {live}, the applied migrations make {want}",
                   faults=faults)

    @precondition(swarm("schema_damage"))
    @precondition(lambda self: bool(getattr(self, "model", None)) and bool(self.model.applied_versions)
                  and not self.faults)
    @rule(how=st.sampled_from(DAMAGE))
    def damage_schema_and_restart(self, how: str) -> None:
        """P3: a damaged or unknown schema is reported when the runtime starts again; then repaired."""
        self.db.close()
        saved = self.db_path + ".schema-copy"
        shutil.copyfile(self.db_path, saved)
        created = [t for t in self.tables if t != "kv" and self._created_by_applied(t)]
        with self.raw() as conn:
            if how == "drop_table" and created:
                conn.execute(f"DROP TABLE {created[-1]}")
            elif how == "drop_column" and created:
                conn.execute(f"ALTER TABLE {created[-1]} DROP COLUMN label")
            elif how == "edited_checksum":
                conn.execute("UPDATE _reliability_migrations SET checksum = 'edited' WHERE version = ?",
                             (self.model.applied_versions[-1],))
            else:
                conn.execute("INSERT INTO _reliability_migrations (version, name, checksum, applied_at, duration) "
                             "VALUES (9999, 'from_the_future', 'x', '2099-01-01T00:00:00Z', 0)")
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        report = self.absorb(run_validate, self.db, list(self.migrations))
        self.check(3, not report.ok and bool(report.problems),
                   f"schema damaged by {how} but validation said ok={report.ok} problems={report.problems}",
                   faults=["schema_tamper"])
        self.check_report_versions(report, ["schema_tamper"])
        self.db.close()
        shutil.move(saved, self.db_path)
        for side in ("-wal", "-shm"):
            try:
                import os

                os.remove(self.db_path + side)
            except OSError:
                pass
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        applied_all = all(m.version in self.model.applied_versions for m in self.migrations)
        report = self.absorb(run_validate, self.db, list(self.migrations))
        if applied_all:
            self.check(3, report.ok, f"the repaired schema was reported damaged: {report.problems}")
        self.check_report_versions(report, None)

    def check_report_versions(self, report: Any, faults: list[str] | None) -> None:
        """P3: the report's versions are the file's: ``current_version`` is the highest recorded (an unknown,
        newer one included), ``pending`` the known versions above it that are not recorded, in order."""
        recorded = self.stored_versions()
        if recorded is None or not getattr(report, "complete", True):
            return
        current = max(recorded, default=0)
        pending = sorted(m.version for m in self.migrations if m.version not in recorded and m.version > current)
        self.check(3, report.current_version == current and list(report.pending) == pending,
                   lambda: f"validation reports current_version={report.current_version}, pending={report.pending}; "
                           f"the file records {sorted(recorded)} (current {current}, pending {pending})", faults=faults)

    def _created_by_applied(self, table: str) -> bool:
        applied = {m.version for m in self.migrations if m.version in self.model.applied_versions}
        return any(m.version in applied and isinstance(m.up, str) and f"CREATE TABLE {table} " in m.up
                   for m in self.migrations)


class SchemaMachine(SchemaMixin):
    """Migrations under lock and disk-full faults, and schema damage between restarts."""

    core_groups = frozenset(("migrate", "schema_damage"))
    fault_kinds = ("none", "locked", "disk_full")
