"""I/O-level faults through a VFS shim registered in the SQLite library of the build under test.

One shim per build (:func:`get_shim` takes the DB-API module): the stdlib's ``libsqlite3`` by default,
or the copy of SQLite linked into another build's extension (``pysqlite3``, ``sqlean``: both export
``sqlite3_vfs_register``). A fault given a path acts on the build ``$DBFAULT_SQLITE_MODULE`` names.

Public names: :func:`vfs_available`, :func:`get_shim`, :class:`FailRule`,
:class:`PowerLossRecorder`, :func:`sweep` / :func:`run_once` and their result types, and the
exceptions :class:`VfsUnavailable` / :class:`VfsUsageError`. The faults themselves
(``io_error``, ``enospc``, ``short_read``, ``power_loss``) live in :mod:`.faults`.
"""

from .errors import VfsUnavailable, VfsUsageError
from .powerloss import PowerLossRecorder, copy_database
from .rules import ERRORS, KINDS, OPS, FailRule
from .shim import VFS_NAME, FailedCall, Shim, get_shim, vfs_available
from .sweep import SweepFailure, SweepResult, SweepRun, run_once, sweep

__all__ = [
    "ERRORS",
    "FailRule",
    "FailedCall",
    "KINDS",
    "OPS",
    "PowerLossRecorder",
    "Shim",
    "SweepFailure",
    "SweepResult",
    "SweepRun",
    "VFS_NAME",
    "VfsUnavailable",
    "VfsUsageError",
    "copy_database",
    "get_shim",
    "run_once",
    "sweep",
    "vfs_available",
]
