"""Three rules bite, each on a defect planted for the length of one test (the passing runs of the same machines,
``test_property_machine[...]`` in the main job, show the rules do not fail on the real runtime):

* the audit machine's ``edit_the_fallback_file`` (P15): an entry waiting in the fallback file, edited there, must be
  rejected at reconcile, never chained as genuine: every field of the entry is covered by its line's MAC;
* the reload-effects machine's ``reload_operation_log_format`` (P16): ``log_json`` reloaded holds for the operation
  log's next record;
* the errors-and-logging machine's ``read_rows_are_counted`` (P17): a read's record counts its rows, not its
  columns, also for the first read after ``db.reconnect()``.

The defects are of the class of the planted bugs x15, x16 and x17 of ``benchmarks/bug_finding.py``, written apart
from them (another field left out of the MAC, another way of keeping the log's old format, another wrong count).
"""

from __future__ import annotations

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id

pytestmark = pytest.mark.bite

BITE = bite_settings(max_examples=30, steps=15)


def test_the_audit_machine_bites_a_fallback_mac_over_the_entry_id_and_time_only(tmp_path, monkeypatch):
    # The line's MAC names the entry (its id and time) but not what it says: an edited actor, action, target or
    # details passes the check, and the edited entry is chained as genuine.
    from reliability import audit

    def identity_mac(self, d, key=None):
        return audit._mac(self.key if key is None else key, ["fallback", d["entry_id"], d["ts"]])

    monkeypatch.setattr(audit.AuditLogger, "_fallback_mac", identity_mac)
    found = (rf"{property_id(15)}.*had its (actor|action|target|details) edited in the file, and reconcile\(\) "
             rf"chained it as genuine")
    with pytest.raises(AssertionError, match=found):
        run_machine(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_the_reload_effects_machine_bites_an_operation_log_that_keeps_its_file_format(tmp_path, monkeypatch):
    # Reopened after a reload, the log "keeps the file consistent": it appends in the format of the lines already
    # there, whatever log_json now says.
    from reliability.oplog import OperationLog

    real = OperationLog._open

    def consistent_open(self):
        fh = real(self)
        try:
            with open(self.path, encoding="utf-8") as existing:
                first = existing.readline()
        except OSError:
            first = ""
        if first.strip():
            self.json_lines = first.lstrip().startswith("{")
        return fh

    monkeypatch.setattr(OperationLog, "_open", consistent_open)
    with pytest.raises(AssertionError, match=rf"{property_id(16)}.*log_json=(True|False) in the watched file "
                                             r"\(only log_json changed by this reload\)"):
        run_machine(MACHINES["reload_effects"], settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_the_errors_logging_machine_bites_a_read_record_with_the_cursor_rowcount(tmp_path, monkeypatch):
    # A read that went through the retrying path (the first one on a new connection) records SQLite's rowcount,
    # which is -1 for a SELECT, instead of the rows it returned.
    from reliability.executor import Executor

    real = Executor.done

    def done(self, op, sql, t0, rows, attempts=1):
        real(self, op, sql, t0, -1 if op in ("fetch_one", "fetch_all") else rows, attempts)

    monkeypatch.setattr(Executor, "done", done)
    # (Found first by the reconnect rule, or by the check made on every read's record.)
    with pytest.raises(AssertionError, match=rf"{property_id(17)}.*(the first read after db.reconnect\(\)\) has "
                                             r"the operation record\(s\) \[\('fetch_one', -1\)\]|the operation record "
                                             r"of a fetch_(one|all) that returned \d+ row\(s\) says rows=-1)"):
        run_machine(MACHINES["errors_logging"], settings_=BITE, base_dir=str(tmp_path), enforce={17})
