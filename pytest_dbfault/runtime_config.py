"""The runtime settings of tests, in one place: fail fast, retry briefly, no background schedules.

:data:`FAST_TEST_SETTINGS` is what ``reliable_db`` uses; the property machines, the scenarios and
the runtime's own tests start from it and state only what they change (``{**FAST_TEST_SETTINGS,
"busy_timeout_ms": 0}``), so a new setting that would slow tests down is turned off everywhere at
once. Imports nothing heavy: :func:`fast_test_config` loads the runtime when called::

    config = fast_test_config(tmp_path / "app.db", journal_mode="DELETE")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only; the runtime is imported when a config is made
    from reliability import ReliabilityConfig

#: The settings ``reliable_db`` uses: fail fast, retry briefly, no background schedules.
FAST_TEST_SETTINGS: dict[str, Any] = {
    "busy_timeout_ms": 50,
    "retry_attempts": 3,
    "retry_base_delay": 0.001,
    "retry_max_delay": 0.01,
    "retry_budget": 0.5,
    "backup_interval": 0,
    "config_reload_interval": 0,
    "health_check_interval": 0,
    "quick_check_interval": 0,
    "integrity_check_interval": 0,
}


def fast_test_config(db_path: str | Path, **overrides: Any) -> ReliabilityConfig:
    """A ``ReliabilityConfig`` on ``db_path`` with :data:`FAST_TEST_SETTINGS` (and ``overrides``)."""
    from reliability import ReliabilityConfig  # imported here: only tests using reliable_db pay for it

    return ReliabilityConfig(db_path=str(db_path), **{**FAST_TEST_SETTINGS, **overrides})
