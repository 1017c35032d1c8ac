"""Scenario paths stay in the scenario's tmp directory: a scenario file never makes the runtime write elsewhere.

A scenario's ``config:`` (and a ``reload_config`` step, and ``restore: {path: ...}``) may name files:
``backup_dir``, ``write_queue_path``, ``operation_log_path``, ``audit_fallback_path``,
``audit_key_path`` — every setting whose name ends in ``_path`` or ``_dir``. A relative path is taken
relative to the scenario's tmp directory; an absolute one (or one climbing out with ``..`` or
through a symlink) must still lie inside it, else the setting is refused with a
:class:`~reliability.config.ConfigError` naming the key, the value and the directory.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any


def path_settings() -> tuple[str, ...]:
    """The ``ReliabilityConfig`` fields that name a file or directory (``db_path`` is the runner's)."""
    from reliability.config import ReliabilityConfig

    return tuple(f.name for f in dataclasses.fields(ReliabilityConfig)
                 if f.name != "db_path" and (f.name.endswith("_path") or f.name.endswith("_dir")))


def confine_path(key: str, value: Any, tmp_path: Path) -> str:
    """``value`` as a path inside ``tmp_path`` (relative paths are taken from there).

    :raises reliability.config.ConfigError: when it points outside ``tmp_path``.
    """
    from reliability.config import ConfigError

    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        return value  # type: ignore[no-any-return]  # empty: the runtime's default beside the database
    root = tmp_path.resolve()
    resolved = (root / Path(os.fspath(value)).expanduser()).resolve()
    if not resolved.is_relative_to(root):
        raise ConfigError([(key, value, f"a scenario's paths must stay inside its tmp directory ({root}); "
                                        f"use a relative path such as 'backups'")])
    return str(resolved)


def confine_settings(settings: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A copy of ``settings`` with every path setting confined to ``tmp_path``; all problems in one ConfigError."""
    from reliability.config import ConfigError

    out = dict(settings)
    problems: list[tuple[str, Any, str]] = []
    for key in path_settings():
        if key in out:
            try:
                out[key] = confine_path(key, out[key], tmp_path)
            except ConfigError as exc:
                problems += exc.problems
    if problems:
        raise ConfigError(problems, "the scenario's config")
    return out
