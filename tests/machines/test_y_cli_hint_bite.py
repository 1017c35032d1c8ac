"""The surface machine's rule ``command_line_on_a_missing_file`` (P8): ``reliability health`` (``check``, ``schema``,
``backup``) on a database file that does not exist says so and, only when verified backups of it exist, says they do
and names ``reliability recover``. Each test plants a realistic defect in that hint (``reliability/cli.py``,
``_require_db``) and the machine's search fails on it; the last runs the same search against the real runtime."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability import cli

pytestmark = pytest.mark.bite

BITE = bite_settings(max_examples=25, steps=12)
HINT_IF = "if _verified_backups(config):"


def plant(monkeypatch: pytest.MonkeyPatch, *edits: tuple[str, str]) -> None:
    """``cli._require_db`` with each ``(old, new)`` of ``edits`` made (``old`` exactly once in its source), for this
    test."""
    source = textwrap.dedent(inspect.getsource(cli._require_db))
    for old, new in edits:
        assert source.count(old) == 1, f"the planted defect's site occurs {source.count(old)} times: {old!r}"
        source = source.replace(old, new)
    namespace: dict[str, Any] = {}
    exec(compile(source, inspect.getsourcefile(cli._require_db) or "cli.py", "exec",
                 flags=annotations.compiler_flag, dont_inherit=True), cli._require_db.__globals__, namespace)
    monkeypatch.setattr(cli, "_require_db", namespace["_require_db"])


def test_it_bites_a_hint_given_whenever_a_backup_folder_is_configured(tmp_path, monkeypatch):
    # "Are backups set up?" asked of the folder's path, which is always truthy (a Path, configured or the default).
    plant(monkeypatch, (HINT_IF, "if config.backup_directory:"))
    with pytest.raises(AssertionError, match=r"p08_.*with the file missing \(no verified backup for it: .*\) speaks "
                                             r"of backups"):
        run_machine(MACHINES["surface"], settings_=BITE, base_dir=str(tmp_path), enforce={8})


def test_it_bites_a_hint_kept_out_of_the_operators_message(tmp_path, monkeypatch):
    # The hint goes to the technical detail (the log, `detail:` on stderr) and the message says only "missing".
    plant(monkeypatch, ('f"the database {path!r} does not exist",', 'f"the database {path!r} does not exist{hint}",'),
          ("nothing was done.{hint}", "nothing was done."))
    with pytest.raises(AssertionError, match=r"p08_.*with the file missing \(verified backups exist in .*\) does not "
                                             r"say so and name the remedy"):
        run_machine(MACHINES["surface"], settings_=BITE, base_dir=str(tmp_path), enforce={8})


def test_the_real_hint_passes(tmp_path):
    run_machine(MACHINES["surface"], settings_=BITE, base_dir=str(tmp_path), enforce={8})
