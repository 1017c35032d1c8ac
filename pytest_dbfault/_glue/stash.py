"""Keys of what the plugin keeps on ``config.stash`` and ``item.stash``, in a module of their own.

The plugin, its glue modules and scenario collection all read the session's options; taking the
keys from here rather than from :mod:`pytest_dbfault.plugin` keeps them free of an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..options import DbfaultOptions

if TYPE_CHECKING:  # pragma: no cover
    from ..per_test import FaultFactory  # noqa: F401  (named in a string below)

#: The session's merged ``--dbfault*`` options (set in ``pytest_configure``).
OPTIONS = pytest.StashKey[DbfaultOptions]()
#: Fault names registered through ``pytest_dbfault_register_faults`` for this session (unregistered at the end).
REGISTERED = pytest.StashKey[list[str]]()
#: The ``dbfault`` fixture's factory of a test.
FACTORY = pytest.StashKey["FaultFactory"]()
#: The ``dbfault_paths`` collected instead of ``testpaths`` (relative, for the header).
COLLECTING = pytest.StashKey[list[str]]()
#: Fault names a test without the ``dbfault`` fixture met (scenarios), for the report.
ITEM_FAULTS = pytest.StashKey[list[str]]()
#: The outer run's counts, kept aside while a run inside a run (pytester, in-process) counts its own.
SAVED_STATS = pytest.StashKey[dict[str, Any]]()
#: (collector nodeid, test nodeid, problems) of every bad ``@pytest.mark.dbfault`` found while collecting.
MARKER_PROBLEMS = pytest.StashKey[list[tuple[str, str, list[str]]]]()

# The names the glue registers its plugin objects under (``config.pluginmanager.get_plugin(name)``).
#: The hooks of a run with ``--dbfault`` (:class:`~.active_run.ActiveRun`).
ACTIVE_PLUGIN = "dbfault-active"
#: Chaos mode (:class:`~.chaos_run.ChaosRun`).
CHAOS_PLUGIN = "dbfault-chaos"
#: Coverage per fault (:class:`~.coverage_run.CoverageRun`).
COVERAGE_PLUGIN = "dbfault-coverage"

#: Suffix of scenario files: collected by the plugin, parsed by :mod:`pytest_dbfault.scenarios.collect`;
#: node ids of scenario items contain ``SCENARIO_SUFFIX + "::"``.
SCENARIO_SUFFIX = ".dbfault.yaml"
