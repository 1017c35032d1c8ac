"""Keys of what the plugin keeps on ``config.stash``, in a module of their own.

The plugin, chaos mode and scenario collection all read the session's options; taking the
key from here rather than from :mod:`pytest_dbfault.plugin` keeps them free of an import cycle.
"""

from __future__ import annotations

import pytest

from .options import DbfaultOptions

#: The session's parsed ``--dbfault*`` options (set in ``pytest_configure``).
OPTIONS = pytest.StashKey[DbfaultOptions]()
