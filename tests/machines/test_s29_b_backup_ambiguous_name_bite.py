"""The backup machine's rule ``restore_backup`` first asks ``db.restore(name)`` for the chosen backup by its bare
name, run where the working directory holds another file of that name: two different files answer to it, so it must
be refused naming both, the database untouched (P12; ``resolve_backup_name``, the rule ``reliability restore NAME``
follows too). Called directly on a fresh machine: passes on the runtime; bites the runtime before session 29, which
silently took the working directory's file (here a stray file that is no database: refused as damaged, neither
file named), and one that silently takes the backup folder's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import backup as backup_module
from reliability.errors import ErrorKind


class Pick:
    """Stands in for Hypothesis' ``data``: every draw from ``sampled_from`` gives element ``i``."""

    def __init__(self, i: int) -> None:
        self.i = i

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        elements = list(strategy.elements)
        return elements[self.i % len(elements)]


def restore(tmp_path, picks=(0, -1)) -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset({"backup"}))

    def call(m: Any) -> None:
        for k in range(2):
            m.upsert(k)
            m.take_backup(False)
        for i in picks:
            m.restore_backup(Pick(i))

    run_and_tear_down(machine, call)


def test_the_rule_passes_on_the_runtime(tmp_path):
    restore(tmp_path)


def one_first(prefer_backup_folder: bool):
    def resolve_backup_name(directory, path):
        order = (Path(directory) / path, Path(path)) if prefer_backup_folder else (Path(path), Path(directory) / path)
        found = [c for c in order if c.is_file()]
        if not found:
            raise backup_module.BackupError(ErrorKind.CANTOPEN, f"backup {str(path)!r} does not exist")
        return found[0]
    return resolve_backup_name


@pytest.mark.parametrize("prefer_backup_folder", [False, True])
def test_it_bites_a_name_one_file_silently_wins(tmp_path, monkeypatch, prefer_backup_folder):
    monkeypatch.setattr(backup_module, "resolve_backup_name", one_first(prefer_backup_folder))
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*db.restore\('backup-.*'\) run in "
                                             r".*cwd-.*, which holds another file of that name"):
        restore(tmp_path, picks=(0,))
