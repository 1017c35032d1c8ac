"""The machines judge the other entry points to a rule too: the read-only inspection (``Inspector``) and the
command line (``reliability check``, ``reliability health``, ``reliability verify-audit``)."""

from __future__ import annotations

import argparse

import pytest
from bite_settings import bite_settings, run_and_tear_down, run_streams, started_machine

from pytest_dbfault.machines import MACHINES, run_machine
from pytest_dbfault.stats import property_id
from reliability.health import IntegrityReport

#: corrupt_and_check is one rule of the health machine's: enough examples to meet it a few times
BITE = bite_settings(max_examples=60, steps=15)


def index_entry_damage_checked(tmp_path, seed: int) -> None:
    """The health machine's corrupt_and_check called directly with index_entry damage (since session 24: the machine's
    new rules moved its derandomized search off this damage on Python 3.10 and pysqlite3); every entry point is
    asked: the runtime's quick and full check, the read-only inspection, `reliability check [--full]`."""
    machine = started_machine("health_integrity", tmp_path, frozenset({"integrity", "fault:locked"}))
    run_and_tear_down(machine, lambda m: m.corrupt_and_check("index_entry", seed))


def test_the_real_runtime_flags_index_entry_damage_everywhere(tmp_path):
    index_entry_damage_checked(tmp_path, 17)
    index_entry_damage_checked(tmp_path, 23)
    index_entry_damage_checked(tmp_path, 29)


def test_the_health_machine_bites_an_inspection_that_passes_a_damaged_file(tmp_path, monkeypatch):
    from reliability.inspection import Inspector

    monkeypatch.setattr(Inspector, "check_integrity",
                        lambda self, full=False, max_problems=100: IntegrityReport(True, [], "quick", 0.0))
    with pytest.raises(AssertionError, match=f"{property_id(11)}.*read-only inspection"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_the_health_machine_bites_an_inspection_that_writes_to_the_file(tmp_path, monkeypatch):
    from reliability.inspection import Inspector

    real = Inspector.check_integrity

    def touching(self, full=False, max_problems=100):
        report = real(self, full, max_problems)
        with open(self.path, "r+b") as fh:  # e.g. a "repair" of the header's change counter
            fh.seek(24)
            counter = fh.read(4)
            fh.seek(24)
            fh.write((int.from_bytes(counter, "big") + 1).to_bytes(4, "big"))
        return report

    monkeypatch.setattr(Inspector, "check_integrity", touching)
    with pytest.raises(AssertionError, match="read-only inspection changed the database file"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_the_health_machine_bites_a_full_check_that_runs_the_quick_one(tmp_path, monkeypatch):
    # A changed index entry passes quick_check: only a full check that really runs integrity_check flags it.
    from reliability.durability.upkeep import Upkeep

    real = Upkeep.check_integrity
    monkeypatch.setattr(Upkeep, "check_integrity", lambda self, full=False: real(self, False))
    # (Every full check is the quick one here, the schedule's too: the rule is called directly, see above.)
    with pytest.raises(AssertionError, match=r"index_entry damage .*not flagged: check_integrity\(full=True\)"):
        index_entry_damage_checked(tmp_path, 17)


def test_the_health_machine_bites_an_inspection_whose_full_check_is_quick(tmp_path, monkeypatch):
    from reliability.inspection import Inspector

    real = Inspector.check_integrity
    monkeypatch.setattr(Inspector, "check_integrity",
                        lambda self, full=False, max_problems=100: real(self, False, max_problems))
    flagged_by = r"read-only inspection \(Inspector\.check_integrity\(full=True\)\)"
    with pytest.raises(AssertionError, match=rf"index_entry damage .*{flagged_by}"):
        index_entry_damage_checked(tmp_path, 23)


def test_the_health_machine_bites_a_command_line_check_that_drops_full(tmp_path, monkeypatch):
    # The Inspector is right; `reliability check --full` forgets to pass --full on (the CLI's own wiring).
    from reliability import cli

    real = cli._check
    monkeypatch.setitem(cli._HANDLERS, "check",
                        lambda args, config: real(argparse.Namespace(**{**vars(args), "full": False}), config))
    with pytest.raises(AssertionError, match=r"index_entry damage .*not flagged by `reliability check --full`"):
        index_entry_damage_checked(tmp_path, 29)


def exits_0(monkeypatch, command, when=lambda outcome: True):
    """Plant a command-line defect: ``reliability <command>`` says what it found, then exits 0 (``when`` it holds)."""
    from reliability import cli

    real = cli._HANDLERS[command]

    def lenient(args, config):
        outcome = real(args, config)
        code = cli.EXIT_OK if when(outcome) else outcome.code
        return cli.Outcome(code, outcome.message, outcome.value, outcome.text)

    monkeypatch.setitem(cli._HANDLERS, command, lenient)


def test_the_health_machine_bites_a_command_line_check_that_exits_0_on_problems(tmp_path, monkeypatch):
    exits_0(monkeypatch, "check")
    # (found by the corruption rule, the orphan-row rule or the stray-bytes rule, whichever the stream meets first)
    with pytest.raises(AssertionError, match=r"(damage .*not flagged|a row whose parent is missing was not "
                                             r"reported|stray byte\(s\) after the last page .*not flagged) by "
                                             r"`reliability check"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={11})


def test_the_health_machine_bites_a_command_line_health_that_exits_0_when_degraded(tmp_path, monkeypatch):
    exits_0(monkeypatch, "health", when=lambda outcome: outcome.value.get("status") == "degraded")
    with pytest.raises(AssertionError, match=r"`reliability health` exited 0 .*after an integrity check found"):
        run_machine(MACHINES["health_integrity"], settings_=BITE, base_dir=str(tmp_path), enforce={10})


def test_the_audit_machine_bites_a_command_line_verify_audit_that_exits_0_when_broken(tmp_path, monkeypatch):
    exits_0(monkeypatch, "verify-audit")
    with pytest.raises(AssertionError, match=r"`reliability verify-audit` exited 0 .*in the file"):
        run_streams(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_the_backup_machine_bites_a_command_line_backup_that_claims_a_file_it_did_not_write(tmp_path, monkeypatch):
    # `reliability backup` says it wrote a backup and exits 0, but wrote nothing (the runtime lists no new one).
    from reliability import cli

    def claims(args, config):
        text = "backup written: nowhere.sqlite"
        return cli.Outcome(cli.EXIT_OK, text, {"path": str(tmp_path / "nowhere.sqlite"), "verified": True}, text)

    monkeypatch.setitem(cli._HANDLERS, "backup", claims)
    with pytest.raises(AssertionError, match=r"`reliability backup` wrote .*which the runtime does not list"):
        run_machine(MACHINES["backup_recovery"], settings_=BITE, base_dir=str(tmp_path), enforce={12})


def test_the_audit_machine_bites_a_command_line_audit_shown_to_anyone(tmp_path, monkeypatch):
    # `reliability audit` forgets to ask who is reading: the log is shown to someone who is no administrator.
    from reliability import cli

    monkeypatch.setattr(cli, "_denied_read", lambda user, what, config: None)
    shown = r"`reliability audit .*\(no administrator\) exited 0 .*administrators only"
    with pytest.raises(AssertionError, match=shown):
        run_streams(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})


def test_the_audit_machine_bites_a_command_line_audit_that_drops_its_action_filter(tmp_path, monkeypatch):
    # `reliability audit --action A` shows the newest entries whatever their action.
    from reliability import cli

    real = cli._HANDLERS["audit"]

    def unfiltered(args, config):
        return real(argparse.Namespace(**{**vars(args), "action": None}), config)

    monkeypatch.setitem(cli._HANDLERS, "audit", unfiltered)
    with pytest.raises(AssertionError, match=r"`reliability audit .*--action .*the file's newest are"):
        run_streams(MACHINES["audit"], settings_=BITE, base_dir=str(tmp_path), enforce={15})
