"""The restart machine's ``clean_restart_keeps_durable_health`` (session 29) also starts the runtime once with its
``backup_interval`` at 0.4 times the newest verified backup's age (``judge_stale_backup_at_start``): two scheduled
backups missed, so health must not say ``healthy`` (reliability/durability/__init__.py: "the last verified backup is
older than twice the backup interval"), which no default run reached before. Called directly (no Hypothesis
search), once the example's backup is a little older than the shortest interval allows: passes on the runtime, and
bites a health that leaves the missed backups out (planted bug ``s29_c_stale_backup_unreported``)."""

from __future__ import annotations

import inspect
import textwrap
import time

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import durability


def clean_restart(tmp_path) -> None:
    machine = started_machine("restart", tmp_path, frozenset({"restart", "backup"}))

    def call(m):
        m.db.backup()
        # (An older backup: interval = 0.4 x its age, so the first scheduled backup is due 1 s after the start, and
        # health stays within three intervals for 0.5 s more: slack for a loaded machine.)
        time.sleep(2.5)
        m.clean_restart_keeps_durable_health(False)

    run_and_tear_down(machine, call)


def test_passes_on_the_runtime_and_judges_a_stale_start(tmp_path, monkeypatch):
    judged = []
    real = durability.Durability.health

    def health(self):
        extra, reasons = real(self)
        judged.append(any("older than twice the backup interval" in r for r in reasons))
        return extra, reasons

    monkeypatch.setattr(durability.Durability, "health", health)
    clean_restart(tmp_path)
    assert True in judged  # the case is reached: one start saw its backup stale


def leave_out(real):
    def health(self):
        extra, reasons = real(self)
        return extra, [r for r in reasons if "older than twice the backup interval" not in r]
    return health


def three_intervals(real):
    """The planted bug's text: ``health`` recompiled with stale only past three intervals."""
    site = "time.time() - m.last_backup_at > 2 * cfg.backup_interval"
    source = textwrap.dedent(inspect.getsource(real))
    assert source.count(site) == 1
    namespace: dict = {}
    exec(compile(source.replace(site, site.replace("2 *", "3 *")), durability.__file__, "exec"),
         vars(durability), namespace)
    return namespace["health"]


@pytest.mark.parametrize("defect", [leave_out, three_intervals])
def test_bites_a_health_that_leaves_the_missed_backups_out(tmp_path, monkeypatch, defect):
    health = defect(durability.Durability.health)

    monkeypatch.setattr(durability.Durability, "health", health)
    with pytest.raises(AssertionError, match=r"p10_\w+ violated .*backup_interval=.*the missed backups go unreported"):
        clean_restart(tmp_path)
