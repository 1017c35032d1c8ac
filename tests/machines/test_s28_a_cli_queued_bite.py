"""The degradation machine's ``served_once_the_outage_is_over``, ``read_once_the_outage_is_over`` and
``a_transaction_replays_the_backlog_first`` now also run, under a lock, an administrator's ``reliability flags set``
under that lock first (``operator_flag_under``), judged as ``flags_set_from_the_command_line`` judges it (exit 5
when the change is only queued; exit 0 only when the database file holds it). That rule alone met a queued change in
few draws, and default runs missed planted bug ``p14_cli_queued_exits_0`` (session 28, rare draws). The rules are
called directly with fixed arguments: they pass on the runtime and bite a command line that exits 0 for a change it
only queued."""

from __future__ import annotations

import pytest
from bite_settings import run_and_tear_down, started_machine

from reliability import cli as cli_module

RULES = {
    "served": lambda outage, param: lambda m: m.served_once_the_outage_is_over(outage, 1, 2, param, 0.0),
    "read": lambda outage, param: lambda m: m.read_once_the_outage_is_over(outage, 1, param, 0.0),
    "transaction": lambda outage, param: lambda m: m.a_transaction_replays_the_backlog_first(
        outage, 1, 2, "transaction", True, param),
}
CALLS = [("locked", 0), ("locked", 1), ("locked", 4)]


def run_rule(tmp_path, rule: str, outage: str, param: int, journal_mode: str) -> None:
    machine = started_machine("degradation_queue", tmp_path, journal_mode=journal_mode)
    run_and_tear_down(machine, RULES[rule](outage, param))


#: Each rule with its own outages: the locks, a moved file, and (``served`` only) a full disk.
PASSES = [(rule, outage, param) for rule in sorted(RULES)
          for outage, param in [*CALLS, ("disconnect_rename", 0), *([("disk_full", 0)] if rule == "served" else [])]]


@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
@pytest.mark.parametrize(("rule", "outage", "param"), PASSES)
def test_the_rule_passes_on_the_runtime(tmp_path, rule, outage, param, journal_mode):
    run_rule(tmp_path, rule, outage, param, journal_mode)


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("journal_mode", ["WAL", "DELETE"])
@pytest.mark.parametrize(("outage", "param"), CALLS)
def test_it_bites_a_queued_change_that_exits_0(tmp_path, monkeypatch, rule, outage, param, journal_mode):
    monkeypatch.setitem(cli_module._RESULT_EXIT, "queued", cli_module.EXIT_OK)
    with pytest.raises(AssertionError, match=r"p14_\w+ violated .*`reliability flags set .*exited 0.*but the file "
                                             r"holds"):
        run_rule(tmp_path, rule, outage, param, journal_mode)
