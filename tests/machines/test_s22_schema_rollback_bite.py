"""The schema machine's rollbacks that the runtime must refuse, changing nothing (session 22, issue #14): rules
``roll_back_an_edited_migration``, ``roll_back_past_an_unknown_version``, ``roll_back_to_invalid_targets`` and
``roll_back_inside_transactions``. Each judges the file (schema, rows, recorded versions) before and after the call,
and the error.

Each test calls one rule with fixed arguments on a freshly started machine (so the bite does not depend on the
Hypothesis search order of the machine class), first against the runtime as shipped (it must pass, the machine's
invariants too), then with one realistic defect planted in the runtime: the rule must fail naming P5 and what it saw.
A defect is planted by text, as ``benchmarks/bug_finding.py`` plants bugs: the source of one runtime function with
lines replaced (each occurring exactly once), compiled in its place for the test. Per rule, one defect is the
``s22_`` Bug entry of the session's report, the other one written independently (the same class of mistake).
"""

from __future__ import annotations

import inspect
import random
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis.stateful import INVARIANT_MARKER

import reliability.durability.backup as backup_module
import reliability.durability.trust as trust_module
import reliability.schema as schema_module
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE

pytestmark = pytest.mark.bite


def plant(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, *edits: tuple[str, str], also: tuple[Any, ...] = ()
          ) -> None:
    """``owner.name`` with each ``(old, new)`` of ``edits`` applied to its source (``old`` occurring exactly once), for
    this test; also set in each module of ``also`` that imported the function by name."""
    fn = inspect.getattr_static(owner, name)
    source = textwrap.dedent(inspect.getsource(fn))
    for old, new in edits:
        assert source.count(old) == 1, f"the planted bug's site occurs {source.count(old)} times in {name}: {old!r}"
        source = source.replace(old, new)
    namespace: dict[str, Any] = {}
    code = compile(source, inspect.getsourcefile(fn) or name, "exec", flags=annotations.compiler_flag,
                   dont_inherit=True)  # (the __future__ feature imported above)
    exec(code, inspect.unwrap(fn).__globals__, namespace)  # (a decorated method: its own module's names)
    monkeypatch.setattr(owner, name, namespace[name])
    for module in also:
        monkeypatch.setattr(module, name, namespace[name])


def run_rule(rule: str, args: tuple[Any, ...], base: Path, plant_bug: Callable[[], None] | None = None) -> str:
    """``rule(*args)`` on a freshly started schema machine (the bug planted after the start, which migrates), then
    the machine's invariants: the first line of the violation raised, '' when none. The machine is torn down."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["schema"], None, base_dir=str(base))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | {"synchronous": "FULL"}
    machine.start(random.Random(0), config, frozenset({"fault:locked"}))
    try:
        if plant_bug is not None:
            plant_bug()
        getattr(machine, rule)(*args)
        for _, member in inspect.getmembers(type(machine)):
            invariant = getattr(member, INVARIANT_MARKER, None)
            if invariant is not None and all(p(machine) for p in invariant.preconditions):
                invariant.function(machine)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def bites(rule: str, args: tuple[Any, ...], plant_bug: Callable[[], None], says: str, base: Path) -> None:
    """The rule passes on the real runtime and fails naming P5 and ``says`` with the bug planted."""
    assert run_rule(rule, args, base / "good") == ""
    found = run_rule(rule, args, base / "broken", plant_bug)
    assert found.startswith("p05_") and says in found, found


# -- 1. a migration edited after it was applied --------------------------------------------------------------------
def test_an_edited_migration_bites_a_checksum_check_that_compares_names(tmp_path, monkeypatch):
    # (the s22_rollback_checks_names_not_checksums Bug entry) The "unchanged since applied" check compares the recorded
    # name instead of the checksum: a migration whose text was edited (same name) is rolled back by its down step.
    def bug() -> None:
        plant(monkeypatch, schema_module, "revert_migrations",
              ("        if m.checksum != checksum:\n", "        if m.name != name:\n"), also=(trust_module,))

    bites("roll_back_an_edited_migration", (1, 0, "default", False, 0, 0), bug,
          "edited since it was applied (default) (a list) succeeded", tmp_path)


def test_an_edited_migration_bites_a_checksum_checked_as_the_rollback_goes(tmp_path, monkeypatch):
    # Each version is checked just before its down step runs, not all before anything runs: the versions above the
    # edited one are undone before the refusal, whose message still says "nothing was changed".
    def bug() -> None:
        plant(monkeypatch, schema_module, "revert_migrations",
              ("        if m.checksum != checksum:\n", "        if False:\n"),
              ("        assert m.down is not None  # checked above\n",
               "        assert m.down is not None  # checked above\n"
               "        if m.checksum != done[m.version][1]:\n"
               "            raise _definition_error(f'migration {m.label} changed since it was applied (checksum "
               "differs); nothing was changed')\n"), also=(trust_module,))

    bites("roll_back_an_edited_migration", (3, 0, "comment", True, 0, 3), bug, "changed the database: recorded "
          "versions", tmp_path)


# -- 2. a recorded version the given migrations do not have --------------------------------------------------------
def test_an_unknown_version_bites_a_rollback_that_skips_it(tmp_path, monkeypatch):
    # (the s22_rollback_skips_unknown_versions Bug entry) A recorded version not among the migrations given is skipped
    # ("not this program's to undo") and the others are undone around it.
    def bug() -> None:
        plant(monkeypatch, schema_module, "revert_migrations",
              ('        if m is None:\n            raise _definition_error(f"migration {version} ({name}) is '
               'recorded in the database but not among "\n                                    "the migrations '
               'given, so it cannot be rolled back")\n', "        if m is None:\n            continue\n"),
              also=(trust_module,))

    bites("roll_back_past_an_unknown_version", (3, "dropped", 2, False, 0, 1), bug, "(dropped; a list) succeeded",
          tmp_path)


def test_an_unknown_version_bites_a_rollback_that_leaves_newer_versions_alone(tmp_path, monkeypatch):
    # Versions newer than every migration given are taken for a newer release's business and left recorded, while the
    # known ones below them are undone: the file then records a version above a hole.
    def bug() -> None:
        plant(monkeypatch, schema_module, "revert_migrations",
              ("        if m is None:\n",
               "        if m is None and version > max(known, default=0):\n            continue\n"
               "        if m is None:\n"),
              also=(trust_module,))

    bites("roll_back_past_an_unknown_version", (3, "newer", 1, True, 1, 0), bug, "(newer; a folder) succeeded",
          tmp_path)


# -- 3. a target that is no version ----------------------------------------------------------------------------------
def test_an_invalid_target_bites_a_rollback_without_the_range_check(tmp_path, monkeypatch):
    # (the s22_rollback_accepts_a_negative_target Bug entry) The target's type is checked, its range is not: -1 is taken
    # for "undo everything".
    def bug() -> None:
        plant(monkeypatch, schema_module, "check_rollback_target",
              ("    if isinstance(to, bool) or not isinstance(to, int) or to < 0:\n",
               "    if isinstance(to, bool) or not isinstance(to, int):\n"), also=(trust_module,))

    bites("roll_back_to_invalid_targets", (["negative"], 0), bug, "expected a refusal as schema naming -1", tmp_path)


def test_an_invalid_target_bites_a_rollback_that_rounds_the_target(tmp_path, monkeypatch):
    # A target of another form is made a version number (2.5 -> 2) instead of refused: versions are undone that the
    # caller never named.
    def bug() -> None:
        plant(monkeypatch, schema_module, "check_rollback_target",
              ("    if isinstance(to, bool) or not isinstance(to, int) or to < 0:\n",
               "    if int(to) < 0:  # (a version read as 2.0)\n"), also=(trust_module,))

    bites("roll_back_to_invalid_targets", (["fraction"], 3), bug, "rollback_migration(to=3.5) with versions", tmp_path)


# -- 4. a transaction of the caller open -----------------------------------------------------------------------------
#: The schema change's (and the backup's it takes first) own look for a transaction begun with execute("BEGIN") left
#: out: each defect below is one that would meet such a transaction, and the runtime refuses it before they run.
NOT_LOOKED_FOR = ("        if parts.connections.in_transaction():\n", "        if False:\n")


def not_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    plant(monkeypatch, backup_module.BackupTaker, "backup", NOT_LOOKED_FOR)

def test_an_open_transaction_bites_a_rollback_that_does_not_look_for_it(tmp_path, monkeypatch):
    # (the s22_rollback_ignores_an_open_transaction Bug entry) The connection's own open transaction is not looked
    # for (the manager's transaction depth is checked, a BEGIN issued through execute() is not seen): the first down
    # step's BEGIN fails and its rollback ends the caller's transaction, whose COMMIT then fails.
    def bug() -> None:
        plant(monkeypatch, schema_module, "revert_migrations",
              ('    if conn.in_transaction:\n        raise _definition_error("cannot roll back migrations while a '
               'transaction is open on this connection")\n', ""), also=(trust_module,))
        plant(monkeypatch, trust_module.Trust, "_change_schema", NOT_LOOKED_FOR)
        not_looked_for(monkeypatch)

    # (met first as the refusal's kind: the down step's own BEGIN fails as "cannot start a transaction within a
    # transaction", and its rollback ends the caller's transaction too)
    bites("roll_back_inside_transactions", (["begin_read"], 0, 0), bug, "inside a transaction (begin_read)", tmp_path)


def test_an_open_transaction_bites_a_schema_change_that_commits_it_first(tmp_path, monkeypatch):
    # The schema change makes room for itself: a transaction left open on the connection is committed first, then
    # the rollback runs. The caller's transaction is ended behind its back (its COMMIT fails) and versions go.
    def bug() -> None:
        not_looked_for(monkeypatch)
        plant(monkeypatch, trust_module.Trust, "_change_schema", NOT_LOOKED_FOR,
              ('        conn.execute("PRAGMA query_only = 0")\n',
               '        if conn.in_transaction:  # (finish what the caller left open before DDL)\n'
               '            conn.execute("COMMIT")\n'
               '        conn.execute("PRAGMA query_only = 0")\n'))

    bites("roll_back_inside_transactions", (["begin_read"], 1, 3), bug, "inside a transaction (begin_read)", tmp_path)
