"""The backup machine judges which backup a recovery restores (rule ``recover_past_an_unverified_backup``): never one
that is not verified, even the newest. The check fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import dataclasses

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.durability.recovery import Recovery

BITE = bite_settings(max_examples=30, steps=15)


def test_it_bites_a_recovery_that_trusts_an_unverified_backup_whose_pages_read_back_whole(tmp_path, monkeypatch):
    # "Give it a second chance": recovery re-checks every backup listed unverified and, when its pages pass
    # integrity_check, takes it as verified (its manifest may be gone, say it failed, or disagree with its size).
    real = Recovery._recover_locked

    def recover_locked(self, reason, t0):
        store = self.store
        listed = store.list

        def relisted():
            return [b if b.verified or store.verify(b.path) else dataclasses.replace(b, verified=True)
                    for b in listed()]

        store.list = relisted
        try:
            return real(self, reason, t0)
        finally:
            del store.list

    monkeypatch.setattr(Recovery, "_recover_locked", recover_locked)
    with pytest.raises(AssertionError, match=r"p13_corruption_recovery violated \(faults: corrupt\): recovery after "
                                             r".* damage restored .*, which was not verified"):
        run_machine(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={13})
