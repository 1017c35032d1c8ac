"""The schema machine judges ``auto_migrate`` on a schema it cannot trust (rule ``release_on_an_untrusted_schema``),
the transactions machine a ``with db.transaction()`` block ended by ``KeyboardInterrupt``/``SystemExit`` (rule
``interrupted_transaction``). Each check fails against a runtime with one realistic defect of that kind."""

from __future__ import annotations

import sys

import pytest
from bite_settings import bite_settings

from pytest_dbfault.machines import MACHINES, run_machine
from reliability.durability import trust
from reliability.errors import DatabaseError
from reliability.transaction import TransactionManager

BITE = bite_settings(max_examples=60, steps=15)


def test_it_bites_auto_migrate_that_runs_whenever_something_is_pending(tmp_path, monkeypatch):
    # A "second chance" at startup: the schema was refused, but migrations are pending, so auto_migrate runs them
    # anyway (as if applying them could make the schema whole), on top of an edited or damaged schema.
    real = trust.Trust._startup_schema

    def startup(self):
        real(self)
        report = self.schema_report
        if self.parts.config.auto_migrate and report is not None and not report.ok and report.pending:
            try:
                self.migrate(self.migrations or [])
            except DatabaseError:
                pass

    monkeypatch.setattr(trust.Trust, "_startup_schema", startup)
    with pytest.raises(AssertionError, match=r"p04_migration_application violated .*auto_migrate on, .* pending and "
                                             r".*nothing applied to a schema that cannot be trusted"):
        run_machine(MACHINES["schema"], settings_=BITE, base_dir=str(tmp_path), enforce={4})


def test_it_bites_a_rollback_skipped_for_an_interrupt(tmp_path, monkeypatch):
    # "The process is going away anyway": no ROLLBACK when the block ended by KeyboardInterrupt or SystemExit. The
    # application that catches it carries on with a transaction still open on the connection.
    real = TransactionManager._rollback

    def rollback(self, conn, level, name):
        if not isinstance(sys.exc_info()[1], (Exception, type(None))):
            return
        real(self, conn, level, name)

    monkeypatch.setattr(TransactionManager, "_rollback", rollback)
    with pytest.raises(AssertionError, match=r"p07_transaction_rollback violated .*(KeyboardInterrupt|SystemExit) "
                                             r"inside .*db.transaction\(\), caught outside it"):
        run_machine(MACHINES["transactions"], settings_=BITE, base_dir=str(tmp_path), enforce={7})
