"""The commit-path machine (kill -9 at each point of a journaled commit, P13) passes on the runtime and bites.

Each broken runtime below takes out one mechanism of issue #17's commit path; the machine must report
a P13 violation against it. A machine that cannot fail checks nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import bite_settings
from hypothesis import settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.machines.commitpath import CommitPathMachine
from pytest_dbfault.stats import property_id
from reliability import DatabaseManager

BITE = bite_settings(max_examples=60, steps=15)



class NoAbortMarker(DatabaseManager):
    """A COMMIT that fails leaves its journal record as if it had committed (no abort marker)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        redo = self.redo_journal
        if redo is not None:
            redo.abort = lambda seq: redo.discard()


def test_the_machine_is_registered_and_passes_on_the_runtime(tmp_path):
    assert MACHINES["commit_path"] is CommitPathMachine
    run_machine(CommitPathMachine, settings_=settings(BITE, max_examples=8), base_dir=str(tmp_path))


def test_the_machine_bites_a_runtime_without_abort_markers(tmp_path):
    with pytest.raises(AssertionError, match=property_id(13)):
        run_machine(CommitPathMachine, NoAbortMarker, settings_=BITE, base_dir=str(tmp_path), enforce={13})


def test_the_machine_bites_backups_that_do_not_publish_the_commits_made_alone(tmp_path, monkeypatch):
    # The copy's sequence then lags behind its content: recovery replays those commits a second time.
    monkeypatch.setattr("reliability.durability.backup.prepare_backup", lambda *args, **kwargs: None)
    with pytest.raises(AssertionError, match=property_id(13)):
        run_machine(CommitPathMachine, DatabaseManager, settings_=BITE, base_dir=str(tmp_path), enforce={13})
