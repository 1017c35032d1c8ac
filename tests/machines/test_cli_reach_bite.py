"""Bite tests of the rules that run the command line's ``migrate``, ``schema``, ``backups``, ``restore`` and
``config show`` (``tests/machines/test_public_reach.py``): each check of those rules, run against a runtime with a
realistic bug planted where it guards, fails naming its property; the same call passes against the real runtime.

A bug is planted by text: the source of one function of the runtime, with one line (occurring exactly once) replaced,
compiled in its own module and set in its place for the test (``plant``), as ``benchmarks/bug_finding.py`` plants
bugs in a copied tree; a few are a command handler wrapped (``wrap_handler``), as ``test_inspection_bite.py`` does.
"""

from __future__ import annotations

import inspect
import os
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest

import reliability.durability.backup as backup_module
import reliability.durability.recovery as recovery_module
import reliability.durability.trust as trust_module
import reliability.schema as schema_module
from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.machines.config import INVALID, SHOWN
from reliability import ReliabilityConfig, cli

pytestmark = pytest.mark.bite


def plant(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, old: str, new: str, *also: Any) -> None:
    """``owner.name`` with ``old`` (exactly once in its source) replaced by ``new``, for this test; also set in each
    module of ``also`` that imported the function by name, and in the command line's table of handlers."""
    raw = inspect.getattr_static(owner, name)
    fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
    source = textwrap.dedent(inspect.getsource(fn))
    assert source.count(old) == 1, f"the planted bug's site occurs {source.count(old)} times in {name}: {old!r}"
    namespace: dict[str, Any] = {}
    code = compile(source.replace(old, new), inspect.getsourcefile(fn) or name, "exec",
                   flags=annotations.compiler_flag, dont_inherit=True)  # (the __future__ feature imported above)
    exec(code, fn.__globals__, namespace)
    monkeypatch.setattr(owner, name, namespace[name])
    for module in also:
        monkeypatch.setattr(module, name, namespace[name])
    for command, handler in list(cli._HANDLERS.items()):
        if handler is raw:
            monkeypatch.setitem(cli._HANDLERS, command, namespace[name])


def wrap_handler(monkeypatch: pytest.MonkeyPatch, command: str, before: Any) -> None:
    """``reliability <command>`` runs ``before(args, config)`` first."""
    real = cli._HANDLERS[command]

    def handler(args: Any, config: Any) -> Any:
        before(args, config)
        return real(args, config)

    monkeypatch.setitem(cli._HANDLERS, command, handler)


class Data:
    """A stand-in for Hypothesis's ``data()``: draws the first choice."""

    def draw(self, strategy: Any, label: str = "") -> Any:
        return strategy.elements[0]


def run_rule(name: str, rule: str, args: tuple[Any, ...], base: Path, prepare: Any = None,
             plant_bug: Any = None) -> str:
    """``rule(*args)`` on a fresh machine (``prepare``d, then the bug planted): the first line of the violation it
    raises, '' when none. The machine is torn down."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES[name], None, base_dir=str(base))()
    config = {k: v[0] for k, v in CONFIG_SPACE.items()} | {"synchronous": "FULL"}
    machine.start(random.Random(0), config, frozenset({"fault:locked"}))
    try:
        if prepare:
            prepare(machine)
        if plant_bug:
            plant_bug()
        getattr(machine, rule)(*args)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def bites(name: str, rule: str, args: tuple[Any, ...], plant_bug: Any, prop: int, says: str, base: Path,
          prepare: Any = None) -> None:
    """The rule passes on the real runtime and fails naming P<prop> and ``says`` with the bug planted."""
    assert run_rule(name, rule, args, base / "good", prepare) == ""
    found = run_rule(name, rule, args, base / "broken", prepare, plant_bug)
    assert found.startswith(f"p{prop:02d}_") and says in found, found


# -- config show (P16) -------------------------------------------------------------------------------------------------
EVERYWHERE = {name: "both" for name in SHOWN}


def test_config_show_bites_a_file_that_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # dotenv's override=True, in effect: the file's values are laid over the environment's.
    bug = "values.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})"
    laid_over = "values = {**{k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}, **values}"
    bites("config", "show_config_from_the_command_line", (EVERYWHERE, "both", True, None),
          lambda: plant(monkeypatch, ReliabilityConfig, "from_env", bug, laid_over), 16, "the environment wins",
          tmp_path)


@pytest.mark.parametrize("as_json", [True, False])
def test_config_show_bites_an_invalid_file_replaced_by_the_defaults(as_json: bool, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    load = "config = ReliabilityConfig.from_env(env, environ=environ, **overrides)"
    lenient = (f"try:\n        {load}\n    except ConfigError:\n"
               "        config = ReliabilityConfig(**overrides)  # (planted: an invalid file is ignored)")
    bites("config", "show_config_from_the_command_line", ({n: "none" for n in SHOWN}, "none", as_json,
                                                          (INVALID[0], "file")),
          lambda: plant(monkeypatch, cli, "_load_config", load, lenient), 16, "configuration error", tmp_path)


# -- schema (P3) and migrate (P4, P5) ----------------------------------------------------------------------------------
def test_schema_bites_a_report_that_ignores_the_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    given = "migrations = coerce_migrations(_migrations(args)) if args.migrations else None"
    bites("schema", "schema_from_the_command_line", (2, True),
          lambda: plant(monkeypatch, cli, "_schema", given, "migrations = None"), 3, "expected {'ok': False",
          tmp_path)


def test_schema_bites_an_inspection_that_migrates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # "Bring the database up to date before comparing": the read-only command writes the file.
    bites("schema", "schema_from_the_command_line", (1, True),
          lambda: wrap_handler(monkeypatch, "schema", lambda args, config: args.migrations and cli._migrate(
              args, config)), 3, "changed the database", tmp_path)  # (the -wal's fingerprint, or the read-back)


def test_migrate_bites_migration_files_taken_in_name_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # 10_x.sql sorts before 1_y.sql: taken in the files' order, the versions are out of order (jump: 4 -> 10).
    bites("schema", "migrate_from_the_command_line", (1, -1, True),
          lambda: plant(monkeypatch, schema_module, "load_migrations", "in sorted(ups.items()):", "in ups.items():"),
          4, "exited 3", tmp_path)


def test_migrate_bites_a_failure_reported_as_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    call = 'result = _facade(db, "migrate", folder)'
    swallowed = (f"try:\n            {call}\n        except DatabaseError as exc:\n"
                 "            return Outcome(EXIT_OK, f'migrate: {exc.user_message}')  # (planted)")
    bites("schema", "migrate_from_the_command_line", (2, 1, False),
          lambda: plant(monkeypatch, cli, "_migrate", call, swallowed), 5, "exited 0", tmp_path)


def test_migrate_bites_a_failed_migration_that_keeps_what_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The failing migration is reported and not recorded, but what ran of it is committed: its CREATE TABLE stays.
    rollback = "_rollback_quietly(conn)\n            raise _failed(m, exc, verb) from exc"
    kept = 'conn.execute("COMMIT")  # (planted)\n            raise _failed(m, exc, verb) from exc'
    bites("schema", "migrate_from_the_command_line", (1, 0, False),
          lambda: plant(monkeypatch, schema_module, "_run_in_tx", rollback, kept), 5, "the applied migrations make",
          tmp_path)


def test_migrate_bites_a_batch_failure_that_says_nothing_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Two new migrations, the second failing: the first stays applied, and the message said "nothing was changed"
    # (the runtime before session 16: the failing migration's own message, passed on for the whole batch).
    bites("schema", "migrate_from_the_command_line", (2, 1, False),
          lambda: plant(monkeypatch, schema_module, "apply_migrations", "if applied:", "if False:", trust_module), 5,
          "what stays applied", tmp_path)


# -- backups (P12) -----------------------------------------------------------------------------------------------------
def two_backups_one_cut_short(machine: Any) -> None:
    """Three backups of three states; the oldest then cut short (no longer verified, known to the machine)."""
    for n in (1, 2, 3):
        machine.put(n)
        machine.take_backup(False)
    path = machine.taken.pop(0)
    os.truncate(path, os.path.getsize(path) // 2)
    machine.snapshots.pop(path)
    machine.damaged_backups = {path}


LIST = ("list_backups_from_the_command_line", (Data(), False, 50))


def test_backups_bites_a_listing_of_verified_backups_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    listing = "infos = BackupManager(directory, config.backup_keep).list()"
    bites("surface", *LIST, lambda: plant(monkeypatch, cli, "_backups", listing, "infos = _verified_backups(config)"),
          12, "the folder holds", tmp_path, two_backups_one_cut_short)


def test_backups_bites_a_size_no_longer_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    compared = 'verified = bool(manifest.get("verified")) and manifest.get("size") == size'
    bites("surface", *LIST, lambda: plant(monkeypatch, backup_module.BackupManager, "list", compared,
                                          'verified = bool(manifest.get("verified"))'),
          12, "one cut short", tmp_path, two_backups_one_cut_short)


def test_backups_bites_a_listing_oldest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    newest_first = "out.sort(key=lambda b: (b.created_at, b.path), reverse=True)"
    bites("surface", *LIST, lambda: plant(monkeypatch, backup_module.BackupManager, "list", newest_first,
                                          "out.sort(key=lambda b: (b.created_at, b.path))"),
          12, "not newest first", tmp_path, two_backups_one_cut_short)


def test_backups_bites_a_listing_that_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # "Tidy up while listing": a backup that fails verification is removed (unverified files are left for a human).
    listing = "infos = BackupManager(directory, config.backup_keep).list()"
    pruning = f"{listing}\n    for i in infos:\n        if not i.verified:\n            os.remove(i.path)  # (planted)"
    bites("surface", *LIST, lambda: plant(monkeypatch, cli, "_backups", listing, pruning),
          12, "changed the backup folder", tmp_path, two_backups_one_cut_short)


# -- restore (P12) -----------------------------------------------------------------------------------------------------
def one_backup_then_a_write(machine: Any) -> None:
    machine.put(1)
    machine.take_backup(False)
    machine.put(2)


RESTORE = "restore_from_the_command_line"


def test_restore_bites_the_oldest_verified_backup_taken_for_the_newest(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    bites("surface", RESTORE, (Data(), "newest", 5),
          lambda: plant(monkeypatch, cli, "_restore", "chosen = verified[0].path", "chosen = verified[-1].path"),
          12, "and exactly its rows", tmp_path, one_backup_then_a_write)


def test_restore_bites_a_named_backup_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The path is checked, then the runtime's default (the newest verified backup) is restored instead.
    def two_states(machine: Any) -> None:
        one_backup_then_a_write(machine)
        machine.take_backup(False)

    bites("surface", RESTORE, (Data(), "path", 5),
          lambda: plant(monkeypatch, cli, "_restore", 'info = _facade(db, "restore", chosen)',
                        'info = _facade(db, "restore")'),
          12, "exactly its rows", tmp_path, two_states)


def test_restore_bites_the_previous_file_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # (A name the folder the command runs in holds another file of: refused since session 29, nothing moved aside;
    # so a name found in the backup folder only, n even.)
    bites("surface", RESTORE, (Data(), "name", 4),
          lambda: plant(monkeypatch, backup_module, "move_aside", "os.replace(src, target + suffix)", "os.remove(src)",
                        recovery_module),
          12, "kept aside", tmp_path, one_backup_then_a_write)


def test_restore_bites_a_damaged_backup_put_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The backup's check reads nothing: the CLI's and the runtime's (both use verify_file).
    bites("surface", RESTORE, (Data(), "damaged", 5),
          lambda: plant(monkeypatch, backup_module, "verify_file", "return check_pragma(conn)", "return []", cli),
          12, "must be refused", tmp_path, one_backup_then_a_write)


# -- recover (P13) -----------------------------------------------------------------------------------------------------
def test_recover_bites_index_damage_judged_by_quick_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The command's look before repairing was quick_check, which passes a changed index entry: "nothing to recover"
    # (recovery_fuzz.py seeds 697, 1039: acknowledged rows lost through that index afterwards).
    bites("surface", "recover_from_the_command_line", ("index_entry", 5),
          lambda: plant(monkeypatch, cli, "_recover", "report = view.check_integrity(full=True)\n"
                                                     "                missing = _missing_commits(config, view) if "
                                                     "report.ok else None  # (damaged: recovered anyway)",
                        "report = view.check_integrity()\n"
                        "                missing = _missing_commits(config, view) if report.ok else None"),
          13, "left a file with a damaged index_entry alone", tmp_path)
