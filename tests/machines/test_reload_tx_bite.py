"""The reload-effects machine judges a change of the watched ``.env`` file that a check meets while a transaction is
open on the same thread (rule ``reload_noticed_in_a_transaction``): no configuration is swapped under the open
transaction, and the next ``check_now()`` after it ends reports the changed key and puts the file's value in force.
Each check fails against a watcher with one realistic defect there, and the machine passes on the runtime."""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

BITE = bite_settings(max_examples=30, steps=15)


def test_it_bites_a_watcher_that_marks_every_version_it_looked_at_seen(tmp_path, monkeypatch):
    # "Each version of the file is read once": the watcher remembers the stat of every check, also of one that could
    # not apply the change (inside a transaction), so the next check finds the file unchanged and the edit is lost.
    from reliability.reload import ConfigWatcher

    real = ConfigWatcher.check_now

    def check_now(self, *, force=False):
        signature = self._stat()
        try:
            return real(self, force=force)
        finally:
            self._signature = signature

    monkeypatch.setattr(ConfigWatcher, "check_now", check_now)
    with pytest.raises(AssertionError, match=rf"{property_id(16)}.*first checked inside .*: the next check_now\(\) "
                                             r"after it returned \(\) and \w+ in force is"):
        run_machine(MACHINES["reload_effects"], settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_it_bites_a_reload_applied_under_an_open_transaction(tmp_path, monkeypatch):
    # The guard against an open transaction dropped ("the runtime's lock is re-entrant, so the same thread may
    # reload"): a change met inside a transaction is swapped in under it. (Emulated: the guard sees no transaction.)
    from reliability import reload

    real = reload.apply_config

    def apply_config(db, new):
        depth = db.transactions.depth
        db.transactions.depth = 0
        try:
            return real(db, new)
        finally:
            db.transactions.depth = depth

    monkeypatch.setattr(reload, "apply_config", apply_config)
    with pytest.raises(AssertionError, match=rf"{property_id(16)}.*first checked inside .*: inside it check_now\(\) "
                                             r"returned \[\('\w+',\)"):
        run_machine(MACHINES["reload_effects"], settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_the_same_search_passes_on_the_runtime(tmp_path):
    run_machine(MACHINES["reload_effects"], settings_=BITE, base_dir=str(tmp_path), enforce={16})
