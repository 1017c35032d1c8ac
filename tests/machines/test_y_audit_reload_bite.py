"""Two rules bite, each on a defect planted for the length of one test (the passing runs of the same machines,
``test_property_machine[...]`` in the main job, show the rules do not fail on the real runtime):

* the audit machine's ``record_once_the_database_is_back`` (P15): entries that waited in the fallback file during a
  lock are reconciled before the next entry is appended, so the log keeps the order they were recorded in;
* the reload-effects machine's ``reload_retry_delays`` (P16): ``retry_base_delay`` and ``retry_max_delay`` reloaded
  hold for the next retried call, each in its own place (the waits follow the new base, doubling, new max).

The defects are of the class of the planted bugs y15 and y16 of ``benchmarks/bug_finding.py``, written apart from
them (the backlog reconciled after the new entry instead of never; one delay left out of the reload instead of the
two swapped).
"""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite

BITE = bite_settings(max_examples=30, steps=15)


def test_the_audit_machine_bites_a_logger_that_reconciles_its_backlog_after_the_new_entry(tmp_path, monkeypatch):
    # The database back, the new entry is appended first and the entries waiting in the fallback file are reconciled
    # after it: none is lost, but the chain no longer holds them in the order they were recorded.
    from reliability import audit
    from reliability.errors import DatabaseError

    def append_then_reconcile(self, actor, action, target="", details=None):
        entry = self.new_entry(actor, action, target, details)
        with self._lock:
            if self._refusal() is not None:
                return self._to_fallback(entry)
            try:
                stored = self.db.run_in_transaction(self.append, entry)
            except DatabaseError:
                return self._to_fallback(entry)
            if self._fallback_files():
                try:
                    self.reconcile()
                except DatabaseError:
                    pass
            return stored

    monkeypatch.setattr(audit.AuditLogger, "record", append_then_reconcile)
    found = (rf"{property_id(15)}.*waited in the fallback file during a lock; the lock released, the next entry was "
             rf"recorded: the log holds")
    with pytest.raises(AssertionError, match=found):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_the_reload_effects_machine_bites_a_reload_that_leaves_the_retry_max_delay_out(tmp_path, monkeypatch):
    # The reload hands the retry policy its attempts, base delay and budget, but not its max delay: the config object
    # says the new cap, the next retried call still waits under the old one.
    from reliability import reload

    monkeypatch.setattr(reload, "_RETRY_KEYS", {"retry_attempts": "attempts", "retry_base_delay": "base_delay",
                                                "retry_budget": "budget"})
    with pytest.raises(AssertionError, match=rf"{property_id(16)}.*reloaded \(retry_base_delay=.*, retry_max_delay="
                                             r".* in force\): with the jitter at the top of its range a locked write "
                                             r"waited"):
        run_machine(MACHINES["reload_effects"], settings_=BITE, base_dir=str(tmp_path), enforce={16})
