"""What a runtime's report says it lost, read back for the oracles (P13: "it says how many and which").

Recovery, a refused start and health describe committed transactions they cannot bring back in one shape:
``N committed transaction(s) <what> (sequence <ranges>; ...)``, where ``<ranges>`` lists the transactions'
global commit sequence numbers (``4-23, 30``). The machines know *how many* acknowledged writes are gone
only sometimes (a whole database lost under several writers); they can always hold the report to its own
word: the count must be the number of sequences the ranges list, every range must run upwards, and the
ranges must be in order without overlap. A report whose "how many" and "which" disagree is wrong about one
of them, and an operator acting on it restores the wrong thing.
"""

from __future__ import annotations

import re

#: A count and the sequence ranges that go with it, in any of the runtime's phrasings
#: ("... are missing from the redo journals (sequence 4-6; ...", "... that the redo journal(s) hold (sequence 7;").
_STATEMENT = re.compile(r"(\d+) committed transaction\(s\)(?:[^()]|\(s\))*?\(sequence ([0-9][0-9, -]*)[;)]")
_MISSING = re.compile(r"(\d+) committed transaction\(s\) are missing")
_HELD = re.compile(r"(\d+) later journaled transaction\(s\) were held back")
#: A replay stopped at a gap: the missing ones, the last sequence the journals reach, and the ones held back after it.
_STOPPED = re.compile(r"(\d+) committed transaction\(s\) are missing from the redo journals \(sequence "
                      r"([0-9][0-9, -]*); the journals reach (\d+)\)(?: and could not be replayed)?"
                      r"(?:; (\d+) later journaled transaction\(s\) were held back)?")


def reported_loss(problems: list[str]) -> int | None:
    """How many transactions a recovery report says it could not restore (None: it gives no count)."""
    text = " ".join(problems)
    counts = [int(n) for n in _MISSING.findall(text)] + [int(n) for n in _HELD.findall(text)]
    return sum(counts) if counts else None


def loss_statements(text: str) -> list[tuple[int, list[tuple[int, int]]]]:
    """Every ``(count, [(first, last), ...])`` the text states; a range that is no number pair is ``(1, 0)``
    (malformed, so it fails :func:`disagreements`)."""
    out = []
    for count, ranges in _STATEMENT.findall(text):
        parsed = []
        for part in ranges.split(","):
            a, _, b = part.strip().partition("-")
            try:
                parsed.append((int(a), int(b or a)))
            except ValueError:
                parsed.append((1, 0))
        out.append((int(count), parsed))
    return out


def disagreements(text: str) -> list[str]:
    """Where the text's counts and sequence ranges disagree (empty: every statement holds together)."""
    wrong = []
    for count, ranges in loss_statements(text):
        listed = sum(b - a + 1 for a, b in ranges)
        shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)
        if any(a > b for a, b in ranges):
            wrong.append(f"a range runs backwards ({shown})")
        elif any(prev[1] >= nxt[0] for prev, nxt in zip(ranges, ranges[1:], strict=False)):
            wrong.append(f"the ranges are out of order or overlap ({shown})")
        elif count != listed:
            wrong.append(f"it says {count} committed transaction(s) but lists {listed} sequence(s) ({shown})")
    # A replay stops at the first missing sequence (later ones are held back, so the database is a state that existed):
    # from there to the last sequence the journals reach, each one is either missing or held back, and only one of the
    # two. (Session 28: a merge that joined two gaps over the journaled sequence between them said one more missing.)
    for count, ranges, top, held in _STOPPED.findall(text):
        firsts = [int(part.strip().partition("-")[0]) for part in ranges.split(",") if part.strip()[:1].isdigit()]
        if not firsts:
            continue
        span = int(top) - min(firsts) + 1
        if int(count) + int(held or 0) != span:
            wrong.append(f"it says {count} missing and {held or 0} held back, but from the first missing sequence "
                         f"{min(firsts)} to the last the journals reach ({top}) there are {span}")
    return wrong
