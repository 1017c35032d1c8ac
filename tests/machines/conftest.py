"""Shared by the machine tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pytest_dbfault.stats import STATS


@pytest.fixture(autouse=True)
def _quiet_runtime_logs() -> Iterator[None]:
    """The machines capture the runtime's records themselves; keep pytest's report small."""
    logger = logging.getLogger("reliability")
    old = logger.propagate
    logger.propagate = False
    yield
    logger.propagate = old


@pytest.fixture(autouse=True)
def _own_stats() -> Iterator[None]:
    """Machines run here against planted bugs and narrowed harnesses: their checks, faults and violations
    belong to the test, not to the run's property report (the main job's machines live in scenarios/).
    Without this, a run of the tests with ``--dbfault`` (the coverage gate) reported the bite tests'
    planted violations as the product's."""
    saved = STATS.to_json()
    STATS.reset()
    try:
        yield
    finally:
        STATS.reset()
        STATS.merge_json(saved)
