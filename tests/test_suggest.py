"""The one "did you mean" helper of both wings (``reliability/_suggest.py``)."""

from __future__ import annotations

from reliability._suggest import closest, did_you_mean, unknown_name_message


def test_a_near_miss_is_suggested_quoted() -> None:
    assert did_you_mean("disk_ful", ["locked", "disk_full"]) == "; did you mean 'disk_full'?"


def test_nothing_is_suggested_for_a_far_miss_or_a_non_string() -> None:
    assert did_you_mean("zzz", ["locked", "disk_full"]) == ""
    assert closest(3, ["locked"]) is None
    assert closest("lockd", ["locked", 7]) == "locked"  # type: ignore[list-item]


def test_the_suggestion_can_be_spelled_as_the_user_would_write_it() -> None:
    assert did_you_mean("busy_timout_ms", ["busy_timeout_ms"], spell=lambda k: "RELIABILITY_" + k.upper()) \
        == "; did you mean RELIABILITY_BUSY_TIMEOUT_MS?"


def test_the_unknown_name_message_lists_every_known_name_sorted() -> None:
    assert unknown_name_message("fault", "lockd", {"locked", "corrupt"}) \
        == "unknown fault 'lockd'; did you mean 'locked'? (known: corrupt, locked)"
