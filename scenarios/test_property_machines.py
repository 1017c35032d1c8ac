"""The 17 reliability properties as Hypothesis stateful machines, run against the runtime under test.

``pytest --dbfault`` collects this module with the scenario files; each machine of
:mod:`pytest_dbfault.machines` is one test. The runtime comes from the
``pytest_dbfault_runtime_factory`` hook when the dbfault plugin is active (default
``reliability.DatabaseManager``), on the SQLite build ``RELIABILITY_SQLITE_MODULE`` names.
The Hypothesis profile is chosen by :mod:`pytest_dbfault.profiles` (``--hypothesis-profile``,
``HYPOTHESIS_PROFILE``, a loaded profile, else ``dbfault`` or ``dbfault-ci`` on CI) and named in
the header and the report. ``--hypothesis-seed`` is honoured (``--dbfault-seed`` seeds it) and a
failure prints the shrunk steps and the ``DBFAULT_REPRODUCE=...`` setting that replays it.

Each test records, for the report, the machine's name, the seed and the fault kinds it injected.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

from pytest_dbfault import profiles
from pytest_dbfault.machines import MACHINES, REPRODUCE_ENV, run_machine
from pytest_dbfault.stats import STATS


def profile_name(config: pytest.Config | None = None) -> str:
    """The machines' Hypothesis profile (see :mod:`pytest_dbfault.profiles`)."""
    cli = config.getoption("hypothesis_profile", None) if config is not None else None
    return profiles.current_profile(cli)[0]


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
def test_property_machine(machine: str, request: pytest.FixtureRequest, tmp_path: Any,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine finds no violation of its properties in the runtime under test."""
    try:
        profile = profiles.load(profile_name(request.config))
    except profiles.ProfileError as exc:
        pytest.fail(str(exc), pytrace=False)
    # Faults aimed at a path open their helper connections with the runtime's SQLite build: two copies of
    # SQLite in one process do not see each other's POSIX locks.
    wanted = os.environ.get(REPRODUCE_ENV, "").split()
    if wanted and wanted[0] not in MACHINES:
        pytest.fail(f"{REPRODUCE_ENV}: no machine named {wanted[0]!r}; machines: {', '.join(MACHINES)}",
                    pytrace=False)
    module = os.environ.get("RELIABILITY_SQLITE_MODULE", "").strip()
    if module and not os.environ.get("DBFAULT_SQLITE_MODULE"):
        monkeypatch.setenv("DBFAULT_SQLITE_MODULE", module)
    before = dict(STATS.faults)
    seed = getattr(request.config.option, "hypothesis_seed", None)
    request.node.user_properties.append(("dbfault_machine", machine))
    if seed is not None:
        request.node.user_properties.append(("dbfault_seed", str(seed)))
    try:
        run_machine(MACHINES[machine], runtime_factory(request.config),
                    settings_=settings(profile), base_dir=str(tmp_path))  # type: ignore[arg-type]
    finally:
        injected = [k for k, n in sorted(STATS.faults.items()) if n > before.get(k, 0)]
        request.node.user_properties.append(("dbfault_faults", ",".join(injected)))
