"""Schema migrations as plain data, applied one transaction each, and a validator run at startup.

Example::

    from reliability.schema import Migration

    MIGRATIONS = [
        Migration(1, "create_users", "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)"),
        Migration(2, "add_name", "ALTER TABLE users ADD COLUMN name TEXT"),
        Migration(3, "backfill", lambda conn: conn.execute("UPDATE users SET name = email")),
    ]
    db.migrate(MIGRATIONS)            # or db.migrate("migrations/") with 001_create_users.sql, ...
    db.validate_schema(MIGRATIONS)    # SchemaReport(ok=True, problems=[], ...)

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the row that
records it in ``_reliability_migrations`` (SQLite DDL is transactional as long as nothing
issues an implicit COMMIT: the runtime's connections use ``isolation_level=None`` and SQL
text is split into statements here, because ``executescript`` commits first). A failing
migration therefore leaves neither schema changes nor a recorded version behind.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatabaseError, ErrorKind, classify, sqlite_errors

#: The bookkeeping table; one row per applied migration.
MIGRATIONS_TABLE = "_reliability_migrations"
#: A comment in a ``.sql`` file that asks for foreign keys to be off while it runs (table rebuilds).
FOREIGN_KEYS_OFF_MARKER = "-- reliability: foreign_keys=off"
#: Tables the runtime itself keeps in the database; never compared with the expected schema.
INTERNAL_TABLE_PREFIXES = ("_reliability_", "sqlite_")

_FILE_NAME = re.compile(r"^(?P<version>\d+)[_\-](?P<name>.+?)(?P<down>\.down)?\.sql$", re.I)

Step = str | Callable[[sqlite3.Connection], Any]


class MigrationError(DatabaseError):
    """A migration could not be defined, loaded or applied; the message names it and the cause.

    ``applied``: the versions of the same batch applied before the failing one, which stay applied.
    """

    applied: tuple[int, ...] = ()


@dataclass(frozen=True)
class Migration:
    """One schema change: a version, a name, and ``up`` as SQL text or a callable taking a connection.

    :param down: the reverse change (SQL or callable), optional.
    :param foreign_keys_off: turn foreign keys off around the transaction (needed when the
        migration rebuilds a table referenced by others); ``PRAGMA foreign_key_check`` still
        runs before commit. Set automatically for SQL containing ``-- reliability: foreign_keys=off``.
    """

    version: int
    name: str
    up: Step
    down: Step | None = None
    foreign_keys_off: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise _definition_error(f"migration {self.name!r}: version must be a whole number >= 1, "
                                    f"got {self.version!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise _definition_error(f"migration {self.version}: name must be a non-empty string")
        if not (isinstance(self.up, str) or callable(self.up)):
            raise _definition_error(f"migration {self.version} ({self.name}): up must be SQL text or a callable "
                                    f"taking a connection, got {type(self.up).__name__}")
        if isinstance(self.up, str) and FOREIGN_KEYS_OFF_MARKER in self.up and not self.foreign_keys_off:
            object.__setattr__(self, "foreign_keys_off", True)

    @property
    def label(self) -> str:
        """``"3 (add_index)"``: how messages name this migration."""
        return f"{self.version} ({self.name})"

    @property
    def checksum(self) -> str:
        """SHA-256 of the migration's text (a callable's source code), to detect edits after apply."""
        return hashlib.sha256(_step_text(self.up).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationResult:
    """What :meth:`DatabaseManager.migrate` did: the versions applied now and the version reached."""

    applied: list[int]
    current_version: int
    backup: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SchemaReport:
    """Whether the database's schema can be trusted, and every problem found."""

    ok: bool
    problems: list[str]
    current_version: int
    expected_version: int
    pending: list[int] = field(default_factory=list)
    #: False when the database could not be read (locked, unreachable): nothing is known about the
    #: schema, so the report says so but must not change whether writes are trusted.
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


# -- loading -----------------------------------------------------------------------------------
def load_migrations(folder: str | os.PathLike[str]) -> list[Migration]:
    """Migrations from numbered ``.sql`` files: ``001_create_users.sql`` (+ optional ``001_create_users.down.sql``).

    Raises :class:`MigrationError` naming the file for a missing folder, an unnumbered ``.sql``
    file or two files with the same version.
    """
    root = Path(folder)
    if not root.is_dir():
        raise _file_error(f"migrations folder {str(root)!r} does not exist or is not a folder", root)
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix.lower() != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if not match:
            raise _file_error(f"migration file {str(path)!r}: name must start with a version number, "
                              f"e.g. 001_create_users.sql", path)
        version = int(match["version"])
        target = downs if match["down"] else ups
        if version in target:
            other = downs[version] if match["down"] else ups[version][1]
            raise _file_error(f"migration files {str(other)!r} and {str(path)!r} both have version {version}",
                              other, path)
        if match["down"]:
            downs[version] = path
        else:
            ups[version] = (match["name"], path)
    for version, path in downs.items():
        if version not in ups:
            raise _file_error(f"migration file {str(path)!r}: no matching up migration for version {version}",
                              path)
    migrations = []
    for version, (name, path) in sorted(ups.items()):
        down = downs.get(version)
        migrations.append(Migration(version, name, _read(path),
                                    _read(down) if down is not None else None))
    return migrations


def coerce_migrations(migrations: Sequence[Migration] | str | os.PathLike[str]) -> list[Migration]:
    """A checked, ordered list from a sequence of :class:`Migration` or a folder path."""
    if isinstance(migrations, (str, os.PathLike)):
        items = load_migrations(migrations)
    else:
        items = list(migrations)
        for i, item in enumerate(items):
            if not isinstance(item, Migration):
                raise _definition_error(f"migrations[{i}] is a {type(item).__name__}, expected Migration")
    seen: dict[int, Migration] = {}
    previous = 0
    for item in items:
        if item.version in seen:
            raise _definition_error(f"migrations {seen[item.version].label} and {item.label} share version "
                                    f"{item.version}")
        if item.version < previous:
            raise _definition_error(f"migration {item.label} comes after version {previous}: list migrations "
                                    f"in ascending version order")
        seen[item.version] = item
        previous = item.version
    return items


# -- applying ----------------------------------------------------------------------------------
def applied_versions(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """``{version: (name, checksum)}`` recorded in the database ({} before the first migration)."""
    if not _table_exists(conn, MIGRATIONS_TABLE):
        return {}
    rows = conn.execute(f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version").fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def apply_migrations(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration],
    *,
    foreign_keys: bool = True,
    clock: Callable[[], float] = time.time,
) -> list[int]:
    """Apply every migration not yet recorded, in order, each in its own transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``) and outside a transaction.
    ``foreign_keys`` is the setting restored after a migration that turned them off.
    Returns the versions applied. On failure raises :class:`MigrationError` naming the
    migration and the cause; that migration left nothing behind, earlier ones stay applied.
    """
    if conn.in_transaction:
        raise _definition_error("cannot migrate while a transaction is open on this connection")
    _ensure_table(conn)
    done = applied_versions(conn)
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        try:
            _apply_one(conn, migration, foreign_keys, clock)
        except MigrationError as exc:  # dbfault: no fault (a migration's own failure, under a fault or not)
            if applied:  # "nothing was changed" would be false of the batch: say what stays applied
                raise _failed_after(exc, migration, applied) from exc
            raise
        applied.append(migration.version)
    return applied


def _failed_after(exc: MigrationError, m: Migration, applied: list[int]) -> MigrationError:
    """``exc`` (``m`` failed and was rolled back) said of a batch in which ``applied`` went in before it."""
    versions = ", ".join(map(str, applied))
    err = MigrationError(exc.kind, f"{exc.detail}; applied before it in this batch, and kept: version(s) {versions}",
                         user_message=f"The database update {m.name!r} could not be applied and was rolled back; "
                                      f"{len(applied)} earlier update(s) of this batch were applied and stay "
                                      f"(version(s) {versions}). Please contact your administrator.")
    err.applied = tuple(applied)
    return err


def _apply_one(conn: sqlite3.Connection, m: Migration, foreign_keys: bool, clock: Callable[[], float]) -> None:
    t0 = time.perf_counter()
    _run_in_tx(conn, m, foreign_keys, lambda c: c.execute(
        f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum, applied_at, duration) VALUES (?, ?, ?, ?, ?)",
        (m.version, m.name, m.checksum, _iso(clock()), round(time.perf_counter() - t0, 6))))


def revert_migrations(
    conn: sqlite3.Connection,
    migrations: Sequence[Migration],
    to: int,
    *,
    foreign_keys: bool = True,
) -> list[int]:
    """Undo every recorded migration above version ``to``, newest first, each by its ``down`` step.

    Everything is checked before anything runs: each version to undo must be among ``migrations``,
    have a ``down`` step, and carry the checksum it was applied with (a ``down`` written for other
    SQL than what ran would leave a schema nobody described). Each reversal is its own
    transaction that also deletes the bookkeeping row, so a failure leaves the database at the
    last version fully undone and raises :class:`MigrationError` naming the migration.
    ``conn`` must be in autocommit mode and outside a transaction. Returns the versions undone.
    """
    check_rollback_target(to)
    if conn.in_transaction:
        raise _definition_error("cannot roll back migrations while a transaction is open on this connection")
    try:
        done = applied_versions(conn)
    except sqlite_errors() as exc:  # locked or unreadable: say so as a migration error, nothing was changed
        raise MigrationError(classify(exc), f"the recorded migrations could not be read, so nothing was rolled "
                             f"back: {type(exc).__name__}: {exc}") from exc
    known = {m.version: m for m in migrations}
    undo: list[Migration] = []
    for version in sorted((v for v in done if v > to), reverse=True):
        m = known.get(version)
        name, checksum = done[version]
        if m is None:
            raise _definition_error(f"migration {version} ({name}) is recorded in the database but not among "
                                    "the migrations given, so it cannot be rolled back")
        if m.down is None:
            raise _definition_error(f"migration {m.label} has no down step, so it cannot be rolled back; "
                                    "nothing was changed")
        if m.checksum != checksum:
            raise _definition_error(f"migration {m.label} changed since it was applied (checksum differs), so its "
                                    "down step may not undo what ran; nothing was changed")
        undo.append(m)
    reverted: list[int] = []
    for m in undo:
        assert m.down is not None  # checked above
        down = dataclasses.replace(m, up=m.down)
        _run_in_tx(conn, down, foreign_keys, functools.partial(_forget_version, version=m.version),
                   verb="rolled back")
        reverted.append(m.version)
    return reverted


def _forget_version(conn: sqlite3.Connection, *, version: int) -> None:
    conn.execute(f"DELETE FROM {MIGRATIONS_TABLE} WHERE version = ?", (version,))


def _run_in_tx(conn: sqlite3.Connection, m: Migration, foreign_keys: bool,
               record: Callable[[sqlite3.Connection], Any], *, verb: str = "applied") -> None:
    """Run ``m.up`` and ``record`` in one ``BEGIN IMMEDIATE`` transaction, all or nothing."""
    if m.foreign_keys_off:
        # PRAGMA foreign_keys is a no-op inside a transaction: switch it before BEGIN.
        conn.execute("PRAGMA foreign_keys = OFF")
    try:
        try:
            # BEGIN inside: a lock held elsewhere is this migration's error too, named like any other.
            conn.execute("BEGIN IMMEDIATE")
            _run_step(conn, m.up)
            if not conn.in_transaction:
                raise _definition_error("it committed or rolled back the migration's transaction itself; "
                                        "migrations must leave transaction control to the runner")
            violations = conn.execute("PRAGMA foreign_key_check").fetchall()
            if violations:
                shown = ", ".join(f"{r[0]} rowid {r[1]} -> {r[2]}" for r in violations[:5])
                raise MigrationError(ErrorKind.CONSTRAINT,
                                     f"foreign key check failed ({len(violations)} violation(s): {shown})")
            record(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback_quietly(conn)
            raise _failed(m, exc, verb) from exc
        except BaseException:  # dbfault: no fault (KeyboardInterrupt/SystemExit mid-migration, not a fault)
            _rollback_quietly(conn)
            raise
    finally:
        if m.foreign_keys_off:
            conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")


def _failed(m: Migration, exc: BaseException, verb: str = "applied") -> MigrationError:
    kind = exc.kind if isinstance(exc, DatabaseError) else classify(exc)
    cause = exc.detail if isinstance(exc, DatabaseError) else f"{type(exc).__name__}: {exc}"
    what = "failed and was rolled back" if verb == "applied" else "could not be undone and was left as it was"
    detail = f"migration {m.label} {what}: {cause}"
    # The user hears which update failed and that nothing changed; the cause is for the log.
    action = "applied" if verb == "applied" else "undone"
    return MigrationError(kind, detail, user_message=f"The database update {m.name!r} could not be {action}, "
                                                     "so nothing was changed. Please contact your administrator.")


def _run_step(conn: sqlite3.Connection, step: Step) -> None:
    if callable(step):
        step(conn)
        return
    for statement in split_sql(step):
        conn.execute(statement)


def split_sql(text: str) -> list[str]:
    """Split SQL text into complete statements (trigger bodies kept whole), dropping empty ones.

    ``executescript`` cannot be used inside a transaction (it COMMITs first on Python < 3.12).
    """
    statements: list[str] = []
    buf = ""
    for piece in text.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if _has_code(buf):
                statements.append(buf.strip())
            buf = ""
    if _has_code(buf.rstrip(";")):
        statements.append(buf.rstrip(";").strip())  # a last statement without ';'
    return statements


def _has_code(sql: str) -> bool:
    for line in sql.splitlines():
        code = line.split("--", 1)[0].strip().strip(";").strip()
        if code:
            return True
    return False


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, "
        "applied_at TEXT NOT NULL, duration REAL NOT NULL)"
    )


# -- validating --------------------------------------------------------------------------------
class SchemaValidator:
    """Compares a database with the known migrations: recorded versions, checksums and live tables.

    Example::

        report = SchemaValidator(MIGRATIONS).validate(conn)
        if not report.ok:
            print("\\n".join(report.problems))
    """

    def __init__(self, migrations: Sequence[Migration] | str | os.PathLike[str] | None = None) -> None:
        self.migrations = coerce_migrations(migrations) if migrations is not None else None

    def validate(self, conn: sqlite3.Connection) -> SchemaReport:
        """A :class:`SchemaReport`; problems are edited-after-apply, missing, unknown or pending
        versions, and tables or columns the applied migrations create but the database lacks."""
        try:
            recorded = applied_versions(conn)
        except Exception as exc:
            return SchemaReport(False, [f"cannot read {MIGRATIONS_TABLE}: {exc}"], 0, self._expected(),
                                complete=False)
        current = max(recorded, default=0)
        if self.migrations is None:
            return SchemaReport(True, [], current, current)
        known = {m.version: m for m in self.migrations}
        expected = self._expected()
        problems: list[str] = []
        pending: list[int] = []
        for version, (name, checksum) in recorded.items():
            m = known.get(version)
            if m is None:
                newer = " (newer than this program knows: was it migrated by a newer release?)" \
                    if version > expected else ""
                problems.append(f"version {version} ({name}) is recorded in the database but unknown{newer}")
            elif m.checksum != checksum:
                problems.append(f"migration {m.label} was edited after it was applied "
                                f"(recorded checksum {checksum[:12]}, now {m.checksum[:12]})")
        for version, m in known.items():
            if version in recorded:
                continue
            if version < current:
                problems.append(f"migration {m.label} is missing: later versions are applied but it is not")
            else:
                pending.append(version)
        if pending:
            problems.append("pending migration(s) not applied: " + ", ".join(known[v].label for v in pending))
        problems += self._compare_live(conn, [m for v, m in known.items() if v in recorded])
        return SchemaReport(not problems, problems, current, expected, pending)

    def _expected(self) -> int:
        return max((m.version for m in self.migrations or ()), default=0)

    def _compare_live(self, conn: sqlite3.Connection, applied: Iterable[Migration]) -> list[str]:
        """Tables/columns that the applied migrations create on an empty database but ``conn`` lacks."""
        # The same SQLite build as the live file: an older one may lack a function a migration uses.
        build = sys.modules.get(type(conn).__module__, sqlite3)
        scratch = getattr(build, "connect", sqlite3.connect)(":memory:", isolation_level=None)
        try:
            for migration in applied:
                try:
                    apply_migrations(scratch, [migration], foreign_keys=False)
                except MigrationError:  # dbfault: no fault (a :memory: scratch copy; fails by its own SQL)
                    # This one cannot run on an empty database (it alters a table made outside the
                    # migrations, or needs data): skip it and still compare what the others create.
                    continue
            expected = table_columns(scratch)
        finally:
            scratch.close()
        live = table_columns(conn)
        problems = []
        for table, columns in expected.items():
            if table not in live:
                problems.append(f"table {table!r} is missing from the database")
                continue
            missing = [c for c in columns if c not in live[table]]
            if missing:
                problems.append(f"table {table!r} is missing column(s) {', '.join(missing)}")
        return problems


def table_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """``{table: [column, ...]}`` for the user tables of ``conn`` (the runtime's own tables left out)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out: dict[str, list[str]] = {}
    for name in names:
        if name.startswith(INTERNAL_TABLE_PREFIXES):
            continue
        quoted = '"' + name.replace('"', '""') + '"'
        out[name] = [r[1] for r in conn.execute(f"PRAGMA table_info({quoted})")]
    return out


def has_user_data(conn: sqlite3.Connection) -> bool:
    """True when the database holds any schema object but the runtime's bookkeeping (so migrating it warrants a
    backup first). The runtime's ``_reliability_*`` tables alone are no data to protect: every start records
    where the queue lives, so a database the application has not filled yet already holds that table."""
    return any(not str(name).startswith(INTERNAL_TABLE_PREFIXES)
               for (name,) in conn.execute("SELECT name FROM sqlite_master"))


# -- helpers -----------------------------------------------------------------------------------
def check_rollback_target(to: object) -> None:
    """Raise :class:`MigrationError` (schema) unless ``to`` is a version number a rollback can go down to.

    Checked first, wherever a rollback starts: a target of the wrong type must get this message, not the
    ``TypeError`` of the first comparison made with it, and an invalid one is refused even when nothing
    would be undone."""
    if isinstance(to, bool) or not isinstance(to, int) or to < 0:
        raise _definition_error(f"rollback target must be a version number >= 0, got {to!r}")


def _definition_error(detail: str) -> MigrationError:
    return MigrationError(ErrorKind.SCHEMA, detail, user_message=detail)


def _file_error(detail: str, *paths: Path) -> MigrationError:
    """A definition error about migration files: ``detail`` (the log's) names each file by its path, the user
    message by its name alone (a user message shows no paths, README "Errors")."""
    shown = detail
    for path in paths:
        shown = shown.replace(repr(str(path)), repr(path.name))
    return MigrationError(ErrorKind.SCHEMA, detail, user_message=shown)


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except Exception:  # a broken handle: the transaction died with it
        pass


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
        is not None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # dbfault: no fault (unreadable or non-UTF-8 migration file)
        raise _file_error(f"migration file {str(path)!r} cannot be read: {exc}", path) from exc


def _step_text(step: Step) -> str:
    if isinstance(step, str):
        return step
    try:
        return inspect.getsource(step)
    except (OSError, TypeError):  # dbfault: no fault (a callable without source code: input, not a fault)
        # No source (built in, or defined in a REPL): the qualified name is the best identity left.
        return f"{getattr(step, '__module__', '')}.{getattr(step, '__qualname__', repr(step))}"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
