"""Proof that the checks made *while a fault is in force* bite (``pytest_dbfault/machines/cells.py``).

Each case runs the under-fault machine, its rounds narrowed to one fault family (or one of the
other injected kinds), against a
``DatabaseManager`` with one realistic defect, with only the case's property enforced. Hypothesis
must report that property violated *under a fault of that family* (the label in the message), so
the cell of the matrix the check fills is shown to be able to fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bite_settings import bite_settings, first_violation
from hypothesis import settings

from pytest_dbfault.machines import run_machine
from pytest_dbfault.machines.cells import ROUND_FAMILIES, UnderFaultMachine
from pytest_dbfault.stats import property_id
from reliability import DatabaseError, DatabaseManager
from reliability.errors import ErrorKind
from reliability.schema import MigrationResult, applied_versions

BITE = bite_settings(max_examples=30, steps=10)


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

        def listener(err: DatabaseError) -> None:
            if err.kind in (ErrorKind.BUSY, ErrorKind.LOCKED):
                self.monitor.integrity_ok = False
                self.monitor.integrity_problems = [f"database error {err.kind}"]

        self.error_listeners.append(listener)


class RefusesReadsOnceDegraded(DatabaseManager):
    """Once an error degraded it, refuses reads too instead of serving the intact tables (P1)."""

    def fetch_all(self, sql: str, params: Any = ()) -> list[Any]:
        if self.commands.degraded:
            raise DatabaseError(ErrorKind.UNAVAILABLE, "degraded: reads refused")
        return super().fetch_all(sql, params)


def backup_without_copy_check(config: Any) -> DatabaseManager:
    """Backups whose copy is never checked: a copy of a damaged file is marked verified (P12)."""
    import reliability.durability.backup as backup

    backup.quick_check = lambda *a, **k: []
    return DatabaseManager(config)


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
    (4, "locked", SwallowsMigrationErrors),
    (5, "disk_full", _from_bite("MigratesWithoutTransaction")),
    (6, "disk_full", BeginlessTransactions),
    (7, "disk_full", BeginlessTransactions),
    (7, "disconnect_close", _from_bite("NoRollback")),
    (10, "corrupt", _from_bite("HealthyWhenCorrupt")),
    (11, "corrupt", _from_bite("BlindIntegrityCheck")),
    (12, "corrupt", backup_without_copy_check),
    (12, "locked", _from_bite("UnverifiedBackup")),
    (13, "locked", BusyMeansCorrupt),
    (13, "corrupt", _from_bite("RestoreWithoutReplay")),
    (16, "disk_full", _from_bite("IgnoresReload")),
    # the other kinds (KindsMixin): the case's "family" is the kind itself
    (2, "enospc", _from_bite("RawErrors")),
    (7, "busy_commit", _from_bite("NoRollback")),
    (11, "short_read", _from_bite("BlindIntegrityCheck")),
    (14, "enospc", _from_bite("NoContinuity")),
]


def _case_id(case: tuple[int, str, Callable[[Any], Any]]) -> str:
    return f"{property_id(case[0])}-under-{case[1]}-{case[2].__name__}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(c) for c in CASES])
def test_the_check_under_the_fault_bites(index: int, tmp_path: Any) -> None:
    number, family, _ = CASES[index]
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip() or "sqlite3"
    if module != "sqlite3" and family in ("enospc", "io_error", "short_read"):
        pytest.skip(f"{family} is made by the VFS shim, which lives in the stdlib's SQLite; this runtime uses {module}")
    # A fresh interpreter per case, as in test_machines_bite.py (a defect may patch a module).
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_cells_bite as b; b.run_case({index}, {str(tmp_path)!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    first = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    prefix = f"found {property_id(number)} violated (faults: "
    assert first.startswith(prefix), out.stdout[-2000:]
    labels = first[len(prefix):].split(")", 1)[0].split(", ")
    assert set(labels) & set(ROUND_FAMILIES.get(family, (family,))), f"violation labelled {labels}, not under " \
                                                                     f"{family}: {first}"


def run_case(index: int, base_dir: str) -> None:
    """Run one case; print what Hypothesis found (used by the test above, in a subprocess)."""
    import logging

    number, family, broken = CASES[index]
    logging.getLogger("reliability").propagate = False
    if family in ROUND_FAMILIES:
        narrowed = {"round_families": (family,), "other_kinds": ()}
    elif family.startswith("disconnect_"):  # one kind of the disconnect family
        narrowed = {"round_families": ("disconnect",), "round_kinds": {"disconnect": (family,)}, "other_kinds": ()}
    else:
        narrowed = {"round_families": (), "other_kinds": (family,)}
    machine = type(f"UnderFault_{family}", (UnderFaultMachine,), narrowed)
    # (A backup missing the last row shows only once rows exist: P12 gets more examples to meet that.)
    chosen = settings(BITE, max_examples=80) if number == 12 else BITE
    found = first_violation(lambda: run_machine(machine, broken, settings_=chosen, base_dir=base_dir,
                                                enforce={number}))
    print(found or "no violation found")
