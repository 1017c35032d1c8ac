"""The only places dbfault reaches into pytest's private API, each with why no public way exists.

Kept in this one module so a pytest upgrade that changes them breaks here and nowhere else
(``tests/test_structure.py`` checks that no other module imports ``_pytest`` or uses private pytest names).
"""

from __future__ import annotations

from typing import Any

import pytest


def session_tmp_path_factory(config: pytest.Config) -> pytest.TempPathFactory | None:
    """The session's ``tmp_path_factory``, for code that is not a fixture; ``None`` with ``-p no:tmpdir``.

    Scenario items are not Python functions, so they cannot request the ``tmp_path`` fixture, and the
    fault path guard anchors itself to the basetemp at session start, before any fixture runs. pytest
    keeps the factory the ``tmp_path_factory`` fixture returns on ``config._tmp_path_factory``; a new
    ``TempPathFactory`` would make another numbered basetemp, not this session's.
    """
    return getattr(config, "_tmp_path_factory", None)


def early_cache(config: pytest.Config) -> Any:
    """pytest's cache (``config.cache``), also before the cache plugin's ``pytest_configure`` ran.

    ``--dbfault-seed=last`` is resolved in dbfault's ``pytest_configure``, which must run before
    Hypothesis reads ``--hypothesis-seed`` in its own and therefore before the cache plugin (both are
    ``tryfirst``, and a later-registered plugin runs first). ``None`` under ``-p no:cacheprovider``.
    """
    cache = getattr(config, "cache", None)
    if cache is None and config.pluginmanager.hasplugin("cacheprovider"):
        # pytest.Cache is public; building one is not (the private keyword, else a deprecation warning).
        cache = pytest.Cache.for_config(config, _ispytest=True)
    return cache
