"""The audit machine's rule ``edit_the_fallback_file``: after the fallback file was left ending with a line torn by a
crash mid-append, one more entry is recorded during the outage (acknowledged as pending) and must be chained at
reconcile (session 28: the append was glued onto the torn fragment, and reconcile dropped the glued last
line as a crash's torn append: the acknowledged entry was lost in silence).

Called directly on a fresh machine: it passes on the runtime, and fails against a runtime whose fallback append does
not end a torn last line first."""

from __future__ import annotations

import pytest
from test_s27_a_fallback_torn_bite import run_rule  # (the same rule, called the same way)

from reliability import files
from reliability.audit import AuditLogger


@pytest.mark.parametrize("n", [1, 2, 5])
def test_the_rule_passes_on_the_runtime(tmp_path, n):
    run_rule(tmp_path, n)


def test_it_bites_an_append_glued_onto_a_torn_last_line(tmp_path, monkeypatch):
    # The append writes its line as it is, whatever the file ends with (the runtime before session 28).
    real = files.write_all

    def write_all(fd, data):
        real(fd, data[1:] if data.startswith(b"\n{") else data)

    monkeypatch.setattr(files, "write_all", write_all)
    assert AuditLogger._to_fallback  # (the fallback append is the one writer of a line starting with a newline)
    with pytest.raises(AssertionError, match=r"p15_\w+ violated .*torn by a crash mid-append.*did not chain it"):
        run_rule(tmp_path)
