"""The backup machine's rule ``unjournaled_writer_after_the_backup``: a manager without a redo journal writes after
the backup beside a journaled one and does not close; the file is damaged and the journaled manager recovers. The
recovery brings the write back or says it is not ok (session 29 survivor ``redo.py:387``: such a writer that started
at sequence 0 was left unnamed, and the recovery said ok with its write lost). Called with fixed arguments on a fresh
machine: it passes on the runtime, and fails against a recovery that does not name a writer registered at 0."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import redo
from reliability.durability import recovery


def run_rule(tmp_path, before: int) -> None:
    machine = started_machine("backup_recovery", tmp_path, frozenset({"recover", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.unjournaled_writer_after_the_backup(before, 1))


@pytest.mark.parametrize("before", [0, 2])
def test_the_rule_passes_on_the_runtime(tmp_path, before):
    run_rule(tmp_path, before)


def test_it_bites_a_recovery_blind_to_a_writer_from_sequence_0(tmp_path, monkeypatch):
    real = recovery.unjournaled_writers

    def blind(committed, backup_seq):  # a writer registered at sequence 0 read as one that closed there
        return real({slot: seq for slot, seq in (committed or {}).items()
                     if seq != 0 or slot > redo.UNJOURNALED_SLOTS}, backup_seq)

    monkeypatch.setattr(recovery, "unjournaled_writers", blind)
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*without a redo journal wrote after the backup"):
        run_rule(tmp_path, 0)


def test_it_bites_a_fresh_journal_that_takes_sequence_1_for_seen(tmp_path, monkeypatch):
    # A journal opened on no file yet counts sequence 1 as seen: a recovery before its first commit says it is lost.
    real = redo.RedoJournal._adopt

    def adopt(self, fd, state):
        real(self, fd, state)
        self.seen = max(self.seen, state.last_seq, state.hwm or 1)

    monkeypatch.setattr(redo.RedoJournal, "_adopt", adopt)
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*committed transactions are missing from the"):
        run_rule(tmp_path, 0)


def test_it_bites_an_audit_reconcile_that_ignores_the_write_gate(tmp_path, monkeypatch):
    # The write gate refuses, yet reconcile() moves the fallback's entries into the damaged file.
    from reliability.degraded import damage

    real = damage.DamageGate.ensure_writable

    def ensure_writable(self, what):
        if what != "audit fallback entries":
            real(self, what)

    monkeypatch.setattr(damage.DamageGate, "ensure_writable", ensure_writable)
    with pytest.raises(AssertionError, match=r"p13_\w+ violated .*db.audit.reconcile\(\) returned"):
        run_rule(tmp_path, 1)
