"""The 17 reliability properties as Hypothesis stateful machines, run against the runtime under test.

``pytest --dbfault`` collects this module with the scenario files; each machine of
:mod:`pytest_dbfault.machines` is one test. The runtime comes from the
``pytest_dbfault_runtime_factory`` hook when the
dbfault plugin is active (default ``reliability.DatabaseManager``). The Hypothesis profile
is ``dbfault`` (fast), or ``dbfault-ci`` when ``CI`` is set, or the one named by
``HYPOTHESIS_PROFILE`` if it is one of those two. ``--hypothesis-seed`` is honoured and a
failure prints the shrunk steps and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

from pytest_dbfault.machines import MACHINES, run_machine


def profile_name() -> str:
    """``dbfault`` by default, ``dbfault-ci`` on CI; ``HYPOTHESIS_PROFILE`` picks either explicitly."""
    chosen = os.environ.get("HYPOTHESIS_PROFILE", "")
    if chosen in ("dbfault", "dbfault-ci"):
        return chosen
    return "dbfault-ci" if os.environ.get("CI") else "dbfault"


def runtime_factory(config: pytest.Config) -> Any:
    """The plugin hook's answer when the plugin is active, else ``reliability.DatabaseManager``."""
    hook = getattr(config.hook, "pytest_dbfault_runtime_factory", None)
    if hook is not None:
        factory = hook(config=config)
        if factory is not None:
            return factory
    from reliability import DatabaseManager

    return DatabaseManager


@pytest.mark.parametrize("machine", list(MACHINES))
def test_property_machine(machine: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
    """The machine finds no violation of its properties in the runtime under test."""
    run_machine(MACHINES[machine], runtime_factory(request.config),
                settings_=settings(settings.get_profile(profile_name())), base_dir=str(tmp_path))
