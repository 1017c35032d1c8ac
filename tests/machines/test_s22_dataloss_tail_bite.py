"""The dataloss machine's ``cut_tail_unreadable_sequence``: a journal whose last transaction records were cut off
exactly at a record boundary, while the damaged database can no longer say its sequence, is told from a complete
one (only its high-water mark tells). Recovery never reports ok while an acknowledged transfer is missing.

The rule is called directly with fixed arguments (no Hypothesis search), so adding rules to the machine does not
move these bites."""

from __future__ import annotations

import random
import zlib

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from reliability import redo


def run_rule(tmp_path, last: int, who: int, entries: int, part: str) -> str:
    """The rule once on a fresh example (the first value of every setting): its first violation, or ""."""
    machine = bind(MACHINES["dataloss"], None, base_dir=str(tmp_path), enforce={10, 13})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset())
    try:
        machine.transfer(0, 1, 2, 5)
        machine.cut_tail_unreadable_sequence(last, who, entries, part, 7, 3)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def older_copy_as_newest(data: bytes) -> tuple[int, int, int]:
    # The two alternating copies sorted, then the wrong end taken: the mark written before the newest record.
    copies = []
    for at in redo._HWM_AT:
        count, seq, crc = redo._HWM.unpack_from(data, at)
        if zlib.crc32(data[at:at + 16]) == crc:
            copies.append((count, seq))
    copies.sort(reverse=True)
    if not copies:
        return 0, 0, 0
    newest = copies[-1]
    return newest[0], newest[1], copies[0][1] if len(copies) == 2 else 0


def no_valid_copy(data: bytes) -> tuple[int, int, int]:
    # The checksum taken over the wrong bytes: no copy of the mark is ever valid, so no file looks cut short.
    return 0, 0, 0


@pytest.mark.parametrize(("last", "who", "part"), [(1, 0, "header"), (0, 1, "page_size"), (1, 2, "header")])
def test_real_runtime_passes(tmp_path, last, who, part):
    assert run_rule(tmp_path, last, who, 1, part) == ""


@pytest.mark.parametrize(("last", "who", "part"), [(1, 0, "header"), (0, 2, "page_size")])
def test_it_bites_a_reader_that_takes_the_older_mark(tmp_path, monkeypatch, last, who, part):
    monkeypatch.setattr(redo, "_read_hwm", older_copy_as_newest)
    assert "acknowledged transfer(s) lost" in run_rule(tmp_path, last, who, 1, part)


@pytest.mark.parametrize("entries", [1, 2])
def test_it_bites_a_mark_never_valid(tmp_path, monkeypatch, entries):
    monkeypatch.setattr(redo, "_read_hwm", no_valid_copy)
    message = run_rule(tmp_path, 0, 1, entries, "header")
    assert "p13_corruption_recovery violated" in message and "acknowledged transfer(s) lost" in message
