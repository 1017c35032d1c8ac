"""Proof that the checks made *while a fault is in force* bite (``pytest_dbfault/machines/cells.py``).

Each case runs the under-fault machine, its rounds narrowed to one fault family (or one of the
other injected kinds), against a
``DatabaseManager`` with one realistic defect, with only the case's property enforced. Hypothesis
must report that property violated *under a fault of that family* (the label in the message), so
the cell of the matrix the check fills is shown to be able to fail.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bite_settings import bite_settings, first_violation
from hypothesis import seed, settings

from pytest_dbfault.machines import run_machine
from pytest_dbfault.machines.cells import ROUND_FAMILIES, VFS_KINDS, UnderFaultMachine
from pytest_dbfault.stats import property_id
from pytest_dbfault.vfs import vfs_available
from reliability import DatabaseError, DatabaseManager, RetryPolicy
from reliability.errors import ErrorKind
from reliability.observers import Observer
from reliability.schema import MigrationResult, SchemaReport, applied_versions

BITE = bite_settings(max_examples=30, steps=10)

# Tests of the harness's checks (each case runs in a fresh interpreter): .ci/run runs them once, in the README's
# test command; the coverage gate and the tox cells deselect them (-m "not bite"): coverage does not measure a
# subprocess, and what a cell checks is the runtime and the faults on its SQLite build.
pytestmark = pytest.mark.bite


# -- broken runtimes ----------------------------------------------------------------------------
class SwallowsMigrationErrors(DatabaseManager):
    """A too-broad ``except`` around migrate: a failed migration is reported as applied (P4)."""

    def migrate(self, migrations: Any) -> Any:
        items = list(migrations)
        try:
            return super().migrate(items)
        except DatabaseError:
            with self._lock:
                done = applied_versions(self.connection)
            return MigrationResult([m.version for m in items if m.version not in done],
                                   max((m.version for m in items), default=0))


class BeginlessTransactions(DatabaseManager):
    """``db.transaction()`` that never issues BEGIN: each statement commits on its own (P6, P7)."""

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        yield self.connection


class BusyMeansCorrupt(DatabaseManager):
    """Takes a lock for damage: a busy or locked error marks the database corrupt (P13)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

        monitor = self.monitor

        class Listener(Observer):
            def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
                if err.kind in (ErrorKind.BUSY, ErrorKind.LOCKED):
                    monitor.integrity_ok = False
                    monitor.integrity_problems = [f"database error {err.kind}"]

        self.observers.add(Listener())


class RefusesReadsOnceDegraded(DatabaseManager):
    """Once an error degraded it, refuses reads too instead of serving the intact tables (P1)."""

    def fetch_all(self, sql: str, params: Any = ()) -> list[Any]:
        if self.commands.degraded:
            raise DatabaseError(ErrorKind.UNAVAILABLE, "degraded: reads refused")
        return super().fetch_all(sql, params)


def backup_without_copy_check(config: Any) -> DatabaseManager:
    """Backups whose copy is never checked: a copy of a damaged file is marked verified (P12)."""
    import reliability.durability.backup as backup

    backup.check_pragma = lambda *a, **k: []
    return DatabaseManager(config)


class StampsValidatedVersion(DatabaseManager):
    """Validation that also stamps the validated version into ``PRAGMA user_version`` (a write inside an
    inspection) and reports a failed stamp as a schema problem: under another writer's lock an intact
    schema is condemned (P3)."""

    def validate_schema(self, migrations: Any = None) -> SchemaReport:
        report = super().validate_schema(migrations)
        try:
            with self._lock:
                self.connection.execute(f"PRAGMA user_version = {int(report.current_version)}")
        except Exception as exc:  # noqa: BLE001  the planted defect: any failure condemns the schema
            return dataclasses.replace(report, ok=False,
                                       problems=[*report.problems, f"cannot stamp the schema version: {exc}"])
        return report


class SchemaDistrustedWhenDamaged(DatabaseManager):
    """Validation reading the wrong field: once the monitor marked the file damaged, the schema is called
    untrusted, though the schema's own pages are intact (P3 under corruption of a table's pages)."""

    def validate_schema(self, migrations: Any = None) -> SchemaReport:
        report = super().validate_schema(migrations)
        if self.monitor.integrity_ok is False:
            return dataclasses.replace(report, ok=False, problems=[
                *report.problems, "the schema is not verified: the last integrity check failed"])
        return report


class FailedBackupCleansUpNewest(DatabaseManager):
    """A failed backup "removes its partial copy" by deleting the newest backup listed, which is the last
    good one (P12: a failed backup takes a verified one with it)."""

    def backup(self) -> Any:
        try:
            return super().backup()
        except DatabaseError:
            listed = self.backups()
            if listed:
                Path(listed[0].path).unlink(missing_ok=True)
                Path(f"{listed[0].path}.json").unlink(missing_ok=True)
            raise


def journal_failures_unrecorded(config: Any) -> DatabaseManager:
    """The redo journal logs a failed write but never records it: health stays healthy while commits
    go unjournaled (P10 under file_full)."""
    import reliability.redo as redo

    def fail(self: Any, why: str) -> None:
        redo.log.error("%s", why)

    redo.RedoJournal._fail = fail  # type: ignore[method-assign]
    return DatabaseManager(config)


def io_errors_not_retried(config: Any) -> DatabaseManager:
    """An I/O error mapped to the full-disk action (degrade) instead of a reconnect: a one-off I/O error is
    never retried (P1 under io_error)."""
    import reliability.errors as errors

    info = errors.KIND_INFO[ErrorKind.IOERR]
    errors.KIND_INFO[ErrorKind.IOERR] = dataclasses.replace(info, action=errors.RecoveryAction.DEGRADE)
    return DatabaseManager(config)


def read_error_is_a_verdict(config: Any) -> DatabaseManager:
    """The integrity check takes the first failed read for the file's state: no second, fresh read, and an I/O
    error on one attempt is reported as a problem (P11 under io_error: a transient error is never a verdict)."""
    import reliability.health as health

    health.confirmed_problems = lambda check, what, fresh=None: check()  # type: ignore[assignment]
    health.persistent_ioerr = lambda err: err.kind is ErrorKind.IOERR  # type: ignore[assignment]
    return DatabaseManager(config)  # (shows in the examples that draw retry_attempts=1: one attempt only)


class RaisesFirstError(RetryPolicy):
    """Remembers the first failure and raises it even when a retry succeeded: a stored write is reported
    failed (P6 under io_error: the file holds a write that was never acknowledged)."""

    def call(self, fn: Callable[[], Any], **kwargs: Any) -> Any:
        failures: list[BaseException] = []

        def attempt() -> Any:
            try:
                return fn()
            except BaseException as exc:
                failures.append(exc)
                raise

        result = super().call(attempt, **kwargs)
        if failures:
            raise failures[0]
        return result


def raises_first_error_runtime(config: Any) -> DatabaseManager:
    return DatabaseManager(config, policy=RaisesFirstError.from_config(config))


#: The kinds a too-broad ``except`` below takes for "another writer is busy".
BUSY_KINDS = (ErrorKind.BUSY, ErrorKind.BUSY_SNAPSHOT, ErrorKind.LOCKED)


class SwallowsBusyErrors(DatabaseManager):
    """A too-broad ``except``: a write or transaction that failed busy returns as if it succeeded ("another
    writer is at it") — acknowledged, not stored (P6 under busy_snapshot and busy_commit)."""

    def execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return super().execute(sql, params)
        except DatabaseError as err:
            if err.kind in BUSY_KINDS:
                return None
            raise

    def run_in_transaction(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return super().run_in_transaction(fn, *args, **kwargs)
        except DatabaseError as err:
            if err.kind in BUSY_KINDS:
                return None
            raise


class AcksWritesToMissingTables(DatabaseManager):
    """A too-broad ``except``: a write whose table is missing ("nothing there to change") returns as done
    instead of raising: with another database at the path the write is acknowledged and lost (P2 under
    disconnect_replace)."""

    def execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return super().execute(sql, params)
        except DatabaseError as err:
            if err.kind is ErrorKind.SCHEMA and "no such table" in str(err.detail):
                return None
            raise


class CommandsRefusedOnReplacedFile(DatabaseManager):
    """A guard at the command entry that refuses every command, those needing no database too, while the
    path names another file than the one opened (P14 under disconnect_replace)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        run = self.commands.run

        def guarded(name: str, *a: Any, **k: Any) -> Any:
            if self.connections.file_replaced():
                from reliability.degraded import CommandResult

                return CommandResult("unavailable", "The database is not available right now.")
            return run(name, *a, **k)

        self.commands.run = guarded  # type: ignore[method-assign]


def _bite_module() -> Any:
    sys.path.insert(0, str(Path(__file__).parent))
    import test_machines_bite

    return test_machines_bite


def _from_bite(name: str) -> Callable[[Any], Any]:
    """A broken runtime of test_machines_bite.py (built lazily: that module is a test module)."""

    def build(config: Any) -> Any:
        return getattr(_bite_module(), name)(config)

    build.__name__ = name
    return build


#: (property, family the rounds put in force, broken runtime)
CASES: list[tuple[int, str, Callable[[Any], Any]]] = [
    (1, "corrupt", RefusesReadsOnceDegraded),
    (3, "locked", _from_bite("TrustingValidator")),
    (3, "corrupt", _from_bite("TrustingValidator")),
    (3, "locked", StampsValidatedVersion),  # the other branch: an intact schema is not condemned
    (3, "corrupt", SchemaDistrustedWhenDamaged),
    (4, "locked", SwallowsMigrationErrors),
    (5, "disk_full", _from_bite("MigratesWithoutTransaction")),
    (6, "disk_full", BeginlessTransactions),
    (7, "disk_full", BeginlessTransactions),
    (7, "disconnect_close", _from_bite("NoRollback")),
    (10, "corrupt", _from_bite("HealthyWhenCorrupt")),
    (11, "corrupt", _from_bite("BlindIntegrityCheck")),
    (12, "corrupt", backup_without_copy_check),
    (12, "locked", _from_bite("UnverifiedBackup")),
    (12, "corrupt", FailedBackupCleansUpNewest),  # a failed backup removes no good one
    (13, "locked", BusyMeansCorrupt),
    (13, "corrupt", _from_bite("RestoreWithoutReplay")),
    (16, "disk_full", _from_bite("IgnoresReload")),
    # the other kinds (KindsMixin): the case's "family" is the kind itself
    (2, "enospc", _from_bite("RawErrors")),
    (7, "busy_commit", _from_bite("NoRollback")),
    (11, "short_read", _from_bite("BlindIntegrityCheck")),
    (14, "enospc", _from_bite("NoContinuity")),
    (10, "short_read", _from_bite("HealthyWhenCorrupt")),
    (10, "file_full", journal_failures_unrecorded),
    (1, "io_error", io_errors_not_retried),
    (11, "io_error", read_error_is_a_verdict),
    (6, "io_error", raises_first_error_runtime),
    (1, "busy_snapshot", RefusesReadsOnceDegraded),
    (6, "busy_snapshot", SwallowsBusyErrors),
    (1, "busy_commit", _from_bite("gives_up_early_runtime")),
    (6, "busy_commit", SwallowsBusyErrors),
    (2, "disconnect_replace", _from_bite("RawErrors")),
    (2, "disconnect_replace", AcksWritesToMissingTables),
    (8, "disconnect_replace", _from_bite("SqlInUserMessages")),
    (14, "disconnect_replace", CommandsRefusedOnReplacedFile),
]


def _skip_without_shim(family: str) -> None:
    """Skip a case of a kind made by the VFS shim where the shim cannot live in the runtime's SQLite build."""
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"
    if family in VFS_KINDS:
        ok, reason = vfs_available(module)
        if not ok:
            pytest.skip(f"{family} is made by the VFS shim, which cannot be registered in the SQLite of {module} "
                        f"(the runtime's build): {reason}")


def _case_id(case: tuple[int, str, Callable[[Any], Any]]) -> str:
    return f"{property_id(case[0])}-under-{case[1]}-{case[2].__name__}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(c) for c in CASES])
def test_the_check_under_the_fault_bites(index: int, tmp_path: Any) -> None:
    number, family, _ = CASES[index]
    _skip_without_shim(family)
    # A fresh interpreter per case, as in test_machines_bite.py (a defect may patch a module).
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_cells_bite as b; b.run_case({index}, {str(tmp_path)!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    first = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    prefix = f"found {property_id(number)} violated (faults: "
    assert first.startswith(prefix), out.stdout[-2000:]
    assert labelled_under(first, family), f"violation not labelled under {family}: {first}"


#: every family (or kind) a case above narrows the rounds to, with the properties its cases enforce
FAMILIES_OF_CASES: dict[str, set[int]] = {}
for _number, _family, _broken in CASES:
    FAMILIES_OF_CASES.setdefault(_family, set()).add(_number)


@pytest.mark.parametrize("family", sorted(FAMILIES_OF_CASES))
def test_the_unplanted_runtime_passes_the_same_checks(family: str, tmp_path: Any) -> None:
    """The same narrowed machine, with the same properties enforced, finds nothing in the runtime as
    shipped: the bites above are the planted defects', not the checks' own."""
    _skip_without_shim(family)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_cells_bite as b; b.run_case(None, {str(tmp_path)!r}, family={family!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[:1] == ["no violation found"], out.stdout[-2000:]


def run_case(index: int | None, base_dir: str, family: str = "") -> None:
    """Run one case; print what Hypothesis found (used by the test above, in a subprocess)."""
    import logging

    if index is None:  # the runtime as shipped, every property of the family's cases enforced
        enforce, broken = FAMILIES_OF_CASES[family], DatabaseManager
        number = 12 if 12 in enforce else 0
    else:
        number, family, broken = CASES[index]
        enforce = {number}
    logging.getLogger("reliability").propagate = False
    if family in ROUND_FAMILIES:
        narrowed = {"round_families": (family,), "other_kinds": ()}
    elif family in ROUND_FAMILIES["disconnect"]:  # one kind of the disconnect family's rounds
        narrowed = {"round_families": ("disconnect",), "round_kinds": {"disconnect": (family,)}, "other_kinds": ()}
    else:
        narrowed = {"round_families": (), "other_kinds": (family,)}
    machine = type(f"UnderFault_{family}", (UnderFaultMachine,), narrowed)
    # (A backup missing the last row shows only once rows exist: P12 gets more examples to meet that.)
    chosen = settings(BITE, max_examples=80) if number == 12 else BITE
    if index is None:
        # (A sanity run, not a search: the main job runs this machine on the shipped runtime at length.)
        chosen = settings(BITE, max_examples=8)
    # Two fixed streams of examples for a search (as in test_machines_bite.py): the derandomized one, then
    # seed 1 if the first found nothing. What one stream explores depends on every rule the machine has
    # (a rule added to a mixin shifts it), not on the check under test.
    # A stream ends the search only with a violation labelled under the family (the cell under test): one
    # met only after the heal is the after-column's, and the next stream may meet it while the fault holds.
    streams = (None,) if index is None else (None, 1)
    found = None
    for stream in streams:
        cls = machine if stream is None else seed(stream)(type(machine.__name__, (machine,), {}))
        found = first_violation(lambda cls=cls: run_machine(cls, broken, settings_=chosen, base_dir=base_dir,
                                                            enforce=enforce)) or found
        if found and labelled_under(found, family):
            break
    print(found or "no violation found")


def labelled_under(found: str, family: str) -> bool:
    """Whether ``found`` (``found P.. violated (faults: a, b): ...``) is labelled with a fault of ``family``."""
    if "(faults: " not in found:
        return False
    labels = found.split("(faults: ", 1)[1].split(")", 1)[0].split(", ")
    return bool(set(labels) & set(ROUND_FAMILIES.get(family, (family,))))
