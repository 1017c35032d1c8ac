"""The surface machine's rule ``restore_from_the_command_line`` where the folder ``reliability restore NAME`` runs in
holds another file of the backup's name (the operator's copy of the database): two different files answer to the
name, so it is refused (exit 2) naming both, the database untouched (P12; ``resolve_backup_name``, the rule
``db.restore(name)`` follows too). Called with fixed arguments on a fresh machine: passes on the runtime; bites the
runtime before session 29, which silently restored the working directory's file."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_s24_surface_restore_inspect_bite import run_rule

from reliability import cli as cli_module
from reliability.durability.backup import BackupError
from reliability.errors import ErrorKind


@pytest.mark.parametrize("cases", [[("name", 3)], [("name", 9), ("path", 3)]])
def test_the_rule_passes_on_the_runtime(tmp_path, cases):
    run_rule(tmp_path, cases)


def test_it_bites_a_name_the_working_directory_silently_wins(tmp_path, monkeypatch):
    def resolve_backup_name(directory, path):
        candidate = Path(path)
        if not candidate.exists() and (Path(directory) / candidate).exists():
            candidate = Path(directory) / candidate
        if not candidate.is_file():
            raise BackupError(ErrorKind.CANTOPEN, f"backup {str(path)!r} does not exist")
        return candidate

    monkeypatch.setattr(cli_module, "resolve_backup_name", resolve_backup_name)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*`reliability restore backup-.*` run in "
                                             r".*ops-.*, which holds a copy .* exited 0"):
        run_rule(tmp_path, [("name", 3)])
