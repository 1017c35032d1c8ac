"""A restore or a recovery installs the database by renaming a prepared copy into place, documented as "Atomically
rename a prepared, fsynced database file" (``reliability.durability.backup.install``). Session 25's surviving mutant
``durability/backup.py:520`` dropped that fsync (``fsync_file``): no machine saw it, because the power-loss model of
issue #14 (``pytest_dbfault/machines/powerloss.py``) leaves SQLite's files, the database among them, unmodelled.

The model now records each rename of a file the runtime prepared under one of its own names onto the database's
name, with the bytes of that file's last fsync; the backup machine's ``corrupt_and_recover`` and ``restore_backup``
and the restart machine's ``power_loss_then_damage`` judge (``BackupMixin.check_install_durable``) that a power loss
right after the install would leave every acknowledged write at the database's path.

The rules are called directly on a fresh restart machine (the model on), once against the real runtime (they pass)
and once against a runtime whose restore and recovery skip the fsync of the installed copy (they fail)."""

from __future__ import annotations

from typing import Any

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability.durability import recovery as recovery_module

GROUPS = frozenset({"power_loss", "restart", "backup", "recover"})


def recover_after_damage(tmp_path, part: str = "btree_root") -> None:
    machine = started_machine("restart", tmp_path, GROUPS)

    def call(m: Any) -> None:
        assert m.powerloss is not None
        for k in range(4):
            m.upsert(k)
        m.take_backup(False)
        m.upsert(7)
        m.corrupt_and_recover(part, 3)

    run_and_tear_down(machine, call)


def power_loss_then_damage(tmp_path, part: str = "btree_root") -> None:
    machine = started_machine("restart", tmp_path, GROUPS)

    def call(m: Any) -> None:
        assert m.powerloss is not None
        m.power_loss_then_damage(True, [1, 2, 3], part, 5)

    run_and_tear_down(machine, call)


def restore(tmp_path) -> None:
    machine = started_machine("restart", tmp_path, GROUPS)

    class First:  # st.data() stand-in: the first choice, no Hypothesis search
        def draw(self, strategy: Any, label: Any = None) -> Any:
            return strategy.elements[0]

    def call(m: Any) -> None:
        assert m.powerloss is not None
        for k in range(3):
            m.upsert(k)
        m.take_backup(False)
        m.upsert(9)
        m.restore_backup(First())

    run_and_tear_down(machine, call)


def no_install_fsync(monkeypatch) -> None:
    # The copy put in place by restore() and recover() is renamed without being fsynced first.
    monkeypatch.setattr(recovery_module, "fsync_file", lambda path: None)


@pytest.mark.parametrize("part", ["btree_root", "header"])
def test_recovery_passes_on_the_runtime(tmp_path, part):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    recover_after_damage(tmp_path / "a", part)
    power_loss_then_damage(tmp_path / "b", part)


def test_restore_passes_on_the_runtime(tmp_path):
    restore(tmp_path)


def test_it_bites_a_recovery_that_installs_an_unsynced_copy(tmp_path, monkeypatch):
    no_install_fsync(monkeypatch)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated .*recovery from btree_root damage: "
                                             r"a power loss right after it renamed its file into place"):
        recover_after_damage(tmp_path)


def test_it_bites_a_recovery_after_power_loss_that_installs_an_unsynced_copy(tmp_path, monkeypatch):
    no_install_fsync(monkeypatch)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated .*recovery after a power loss and "
                                             r"btree_root damage: a power loss right after it renamed"):
        power_loss_then_damage(tmp_path)


def test_it_bites_a_restore_that_installs_an_unsynced_copy(tmp_path, monkeypatch):
    no_install_fsync(monkeypatch)
    with pytest.raises(AssertionError, match=r"p12_automatic_backup violated .*restoring .*: a power loss right after "
                                             r"it renamed its file into place .* 0 of the \d+ bytes"):
        restore(tmp_path)
