"""Shared by the machine tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _quiet_runtime_logs() -> Iterator[None]:
    """The machines capture the runtime's records themselves; keep pytest's report small."""
    logger = logging.getLogger("reliability")
    old = logger.propagate
    logger.propagate = False
    yield
    logger.propagate = old
