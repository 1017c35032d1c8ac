"""The surface machine's rule ``restore_from_the_command_line`` judges two more operator promises: a backup named by a
path relative to the folder the command runs in is the one restored, also where the backup folder holds a file of that
name (P12), and the read-only inspection run first on
the stopped application's WAL database at rest (``reliability check`` / ``health``) leaves no ``-wal``/``-shm`` behind
(P11). Called with fixed arguments on a fresh machine, it passes on the runtime and fails against a runtime with one
realistic defect of each kind."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import cli as cli_module
from reliability import inspection as inspection_module

MACHINE = MACHINES["surface"]


class Last:
    """Stands in for Hypothesis' ``data``: every draw from ``sampled_from`` gives its last element."""

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return list(strategy.elements)[-1]


def run_rule(base: Path, cases: list[tuple[str, int]], journal_mode: str = "WAL") -> None:
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINE, None, base_dir=str(base), enforce={11, 12, 13})()
    machine.start(random.Random(0), {**{k: v[0] for k, v in CONFIG_SPACE.items()}, "journal_mode": journal_mode},
                  frozenset({"backup"}))
    try:
        for i, (how, n) in enumerate(cases):
            machine.put(i)
            machine.take_backup(False)
            machine.restore_from_the_command_line(Last(), how, n)
    finally:
        machine.teardown()


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE", "TRUNCATE"])
def test_the_rule_passes_on_the_runtime(tmp_path, journal_mode):
    run_rule(tmp_path, [(how, n) for n in range(6) for how in ("path", "name")] + [("newest", 2)], journal_mode)


def test_it_bites_a_restore_that_reads_a_relative_path_in_the_backup_folder(tmp_path, monkeypatch):
    # A path given on the command line always taken relative to the backup folder when it is not absolute.
    real = cli_module._restore

    def restore(args, config):
        if args.path and not Path(args.path).is_absolute():
            args.path = str(config.backup_directory / args.path)
        return real(args, config)

    monkeypatch.setitem(cli_module._HANDLERS, "restore", restore)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*`reliability restore \.\./.*` \(path\) "
                                             r"exited 2"):
        run_rule(tmp_path, [("path", 1)])


def test_it_bites_a_restore_that_prefers_the_backup_folder_to_the_path_given(tmp_path, monkeypatch):
    # A name found in the backup folder is taken from there even when the path given names an existing file.
    real = cli_module._restore

    def restore(args, config):
        if args.path and (config.backup_directory / args.path).exists():
            args.path = str(config.backup_directory / args.path)
        return real(args, config)

    monkeypatch.setitem(cli_module._HANDLERS, "restore", restore)
    # (Since session 29 such a name, two different files answering to it, is refused: the defect restores one.)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*`reliability restore backup-.*` "
                                             r"run in .*ops-.*, which holds a copy .* exited 0"):
        run_rule(tmp_path, [("name", 3)])


def test_it_bites_an_inspection_that_never_sees_a_wal_database_at_rest(tmp_path, monkeypatch):
    # The header read one byte too long for its own length test: no file is ever taken for a WAL database at rest,
    # so the -wal/-shm SQLite makes for the read-only connection stay.
    monkeypatch.setattr(inspection_module, "_wal_header", lambda path: False)
    with pytest.raises(AssertionError, match=r"p11_integrity_checking violated .*`reliability check` on the stopped "
                                             r"application's intact WAL database at rest exited 0 .* and left "
                                             r"\['app.db-wal', 'app.db-shm'\]"):
        run_rule(tmp_path, [("path", 0)])


@pytest.mark.parametrize("journal_mode", ["DELETE", "TRUNCATE"])
def test_it_bites_a_recover_that_does_not_say_it_rolled_back(tmp_path, monkeypatch, journal_mode):
    # The hot journal is rolled back, then the report is built from the second look alone: "nothing to recover".
    real = cli_module._recover

    def recover(args, config):
        out = real(args, config)
        value = out.value if isinstance(out.value, dict) else {}
        if value.get("rolled_back"):
            done = "nothing to recover: the database passes integrity_check; nothing was changed"
            return cli_module.Outcome(out.code, done, {**value, "rolled_back": False}, done)
        return out

    monkeypatch.setitem(cli_module._HANDLERS, "recover", recover)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated \(faults: crash\): `reliability "
                                             r"recover` after a writer was killed mid-transaction .* exited 0: "
                                             r"\"nothing to recover.*rolled_back=False"):
        # (n = 9: a relative path, and n % 3 == 0, the file not missing a write first: the plain rollback's case)
        run_rule(tmp_path, [("path", 9)], journal_mode)
