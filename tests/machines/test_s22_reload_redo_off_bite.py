"""The reload machine judges reloads whatever the settings read at start are (redo journal on or off): a valid
``synchronous`` reload takes effect for the next call and never fails (``reload_synchronous``,
``reload_connection_settings``; issue #14, surviving mutant ``reload.py:90``). The rules are called directly with
chosen arguments on a machine started with a chosen configuration: no Hypothesis search order involved."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import reload as reload_module


def started(tmp_path, redo_journal: bool):
    return started_machine("reload_effects", tmp_path, redo_journal=redo_journal)


def journal_told_first(monkeypatch) -> None:
    # The reload hands the new level to the redo journal before anything else, forgetting that it may be off.
    real = reload_module.apply_config

    def apply(db, new):
        if new.synchronous != db.config.synchronous:
            db.redo_journal.follow_synchronous(new.synchronous)
        return real(db, new)

    monkeypatch.setattr(reload_module, "apply_config", apply)


CALLS = {
    "synchronous, journal off from the start": (False, lambda m: m.reload_synchronous(0, 1, False)),
    "synchronous, restarted with the journal off": (True, lambda m: m.reload_synchronous(1, 2, True)),
    "connection settings with synchronous": (False, lambda m: m.reload_connection_settings(True, 20, 3, "FULL")),
}


@pytest.mark.parametrize("case", sorted(CALLS))
def test_it_bites_a_synchronous_reload_that_needs_the_redo_journal(case, tmp_path, monkeypatch):
    journal_told_first(monkeypatch)
    redo, call = CALLS[case]
    machine = started(tmp_path, redo)
    with pytest.raises(AssertionError, match=r"p16_config_hot_reload violated .*a valid reload of .*"
                                             r"RELIABILITY_SYNCHRONOUS.*redo_journal=False.*raised AttributeError"):
        run_and_tear_down(machine, call)


def test_it_bites_a_synchronous_reload_ignored_with_the_journal_off(tmp_path, monkeypatch):
    # With no journal to tell, the reload forgets to reopen the connection: SQLite keeps the old level.
    real = reload_module.apply_config

    def apply(db, new):
        if db.redo_journal is None and new.synchronous != db.config.synchronous:
            keys = reload_module.RECONNECT_KEYS
            monkeypatch.setattr(reload_module, "RECONNECT_KEYS", keys - {"synchronous"})
            try:
                return real(db, new)
            finally:
                monkeypatch.setattr(reload_module, "RECONNECT_KEYS", keys)
        return real(db, new)

    monkeypatch.setattr(reload_module, "apply_config", apply)
    machine = started(tmp_path, False)
    with pytest.raises(AssertionError, match=r"p16_config_hot_reload violated .*synchronous reloaded to FULL, the "
                                             r"next call runs with PRAGMA synchronous=1"):
        run_and_tear_down(machine, lambda m: m.reload_synchronous(0, 1, False))


@pytest.mark.parametrize("case", sorted(CALLS))
def test_the_same_calls_pass_on_the_runtime(case, tmp_path):
    redo, call = CALLS[case]
    run_and_tear_down(started(tmp_path, redo), call)
