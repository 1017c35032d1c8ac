"""The connection machine judges what a read serves after the file was replaced at its path, and what a call says
when the runtime starts with its database file missing. Each check fails against a runtime with one realistic
defect of its kind (rules ``fetch_*_after_file_replaced`` and ``*_with_the_file_missing_at_start``)."""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.connection import ConnectionManager
from reliability.executor import Executor

BITE = bite_settings(max_examples=60, steps=15)


def test_it_bites_reads_that_check_the_path_in_the_wrong_unit(tmp_path, monkeypatch):
    # The interval between two path checks read as milliseconds where it is seconds: after the first read a
    # replaced file is noticed 50 s later, i.e. never within a session; the old file keeps being served.
    def reads_follow_the_path(self, t0):
        self._identity_due = t0 + self.identity_check_interval * 1000
        if self.transactions.depth:
            return True
        if self.connections.file_replaced():
            self.drop()
            return False
        return True

    monkeypatch.setattr(Executor, "reads_follow_the_path", reads_follow_the_path)
    with pytest.raises(AssertionError, match=r"p01.* 50\+ ms after another database file was put at the path gave"):
        run_machine(MACHINES["connection"], settings_=BITE, base_dir=str(tmp_path), enforce={1})


def test_it_bites_a_refusal_whose_user_message_is_the_generic_one(tmp_path, monkeypatch):
    # The refusal's own message dropped: the caller sees the generic "unavailable, try again" of its kind, which
    # neither says what happened nor names the remedy (waiting does not bring a deleted file back).
    real = ConnectionManager.refuse
    monkeypatch.setattr(ConnectionManager, "refuse", lambda self, detail, user_message=None: real(self, detail))
    with pytest.raises(AssertionError, match=r"p08.*does not .*name the remedy `reliability recover`"):
        run_machine(MACHINES["connection"], settings_=BITE, base_dir=str(tmp_path), enforce={8})


def test_it_bites_a_refusal_that_shows_its_detail_to_the_user(tmp_path, monkeypatch):
    # The technical detail (file paths, the backup's path) handed to the user as the message.
    real = ConnectionManager.refuse
    monkeypatch.setattr(ConnectionManager, "refuse",
                        lambda self, detail, user_message=None: real(self, detail, detail))
    with pytest.raises(AssertionError, match=r"p08.*user message .*contains a file path"):
        run_machine(MACHINES["connection"], settings_=BITE, base_dir=str(tmp_path), enforce={8})
