"""The degradation machine's rule ``tamper_with_a_queued_flag`` also appends a damaged line to the write queue file
while the runtime runs (as another process would, after this runtime read the file): the runtime's catch-up reads
only what was appended (from where it had read to), and its ERROR record names that line by its number in the file
(session 27 surviving mutant ``degraded/queue.py:287``, the catch-up's seek dropped: it re-read the file from the
top and numbered the line as if the file were twice as long). Called with fixed arguments on a fresh machine: it
passes on the runtime and fails against a runtime whose catch-up reads from wherever the descriptor stands."""

from __future__ import annotations

import os

import pytest
from test_s24_degr_queue_lines_bite import CASES as S24_CASES
from test_s24_degr_queue_lines_bite import run_rule

from reliability.degraded import queue as queue_module

CASES = S24_CASES[:3]  # (the rule's runner and cases are the s24 bite's)


@pytest.mark.parametrize(("n", "value", "edit", "param"), CASES)
def test_the_rule_passes_on_the_runtime(tmp_path, n, value, edit, param):
    run_rule(tmp_path, n, value, edit, param)


def test_it_bites_a_catch_up_that_reads_from_the_top(tmp_path, monkeypatch):
    # The catch-up reads from the descriptor's position (the top of a freshly opened file), not from the offset
    # read so far: what was applied is applied again, and the line numbers run on from the count so far.
    real_lseek = os.lseek

    def lseek(fd, pos, how):
        return real_lseek(fd, 0, how) if how == os.SEEK_SET else real_lseek(fd, pos, how)

    monkeypatch.setattr(queue_module.os, "lseek", lseek)
    with pytest.raises(AssertionError, match=r"p14_\w+ violated .*appended by another process while the runtime ran"):
        run_rule(tmp_path, *CASES[0])
