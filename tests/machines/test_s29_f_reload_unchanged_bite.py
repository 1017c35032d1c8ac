"""The config machine's rule ``reload_sweep`` also judges that a second ``check_now()`` of an unchanged file says
nothing about the configuration (session 29 survivor ``reload.py:231``: the watcher did not remember the signature of
the file it applied, so every later look read the file again and warned again of each restart-only setting waiting in
it). Called with fixed steps on a fresh machine: it passes on the runtime, and fails against a watcher that forgets
the signature of what it applied."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import reload

# One step: a restart-only setting (where backups go) changed in the watched file, checked without force.
STEPS = [([("backup_dir", "good", 0, ""), ("retry_attempts", "good", 1, "")], "", False)]


def run_rule(tmp_path) -> None:
    machine = started_machine("config", tmp_path, frozenset({"reload", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.reload_sweep(STEPS))


def test_the_rule_passes_on_the_runtime(tmp_path):
    run_rule(tmp_path)


def test_it_bites_a_watcher_that_forgets_what_it_applied(tmp_path, monkeypatch):
    real = reload.ConfigWatcher.check_now

    def forgetful(self, *, force=False):
        signature = self._signature
        try:
            return real(self, force=force)
        finally:
            self._signature = signature  # the file applied is not remembered: the next look reads it again

    monkeypatch.setattr(reload.ConfigWatcher, "check_now", forgetful)
    with pytest.raises(AssertionError, match=r"p16_\w+ violated .*file unchanged: it logged about the configuration"):
        run_rule(tmp_path)
