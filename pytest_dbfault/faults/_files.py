"""File helpers shared by the destructive faults: copies for restore, moving a db with its sidecars."""

from __future__ import annotations

import os
from pathlib import Path

from . import outside

#: Suffixes of the files SQLite keeps next to a database.
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")


def database_files(path: Path) -> list[Path]:
    """``path`` and those of its sidecars that exist, database first."""
    return [path] + [p for p in (path.with_name(path.name + s) for s in SIDECAR_SUFFIXES) if p.exists()]


def backup_files(path: Path, tag: str = "dbfault-backup") -> list[tuple[Path, Path]]:
    """Copy the database and its -wal/-journal next to it; returns ``(original, copy)`` pairs.

    ``-shm`` is skipped: it is a cache SQLite rebuilds, and copying it back under live
    connections would hand them a stale index.
    """
    pairs = []
    for original in database_files(path):
        if original.name.endswith("-shm"):
            continue
        copy = original.with_name(f"{original.name}.{tag}")
        outside.copy_file(original, copy)  # never a close of the live file here: it drops this process's locks
        pairs.append((original, copy))
    return pairs


def restore_files(pairs: list[tuple[Path, Path]]) -> list[str]:
    """Copy each backup back over its original *in place* (same inode) and delete the backup."""
    restored = []
    for original, copy in pairs:
        outside.copy_file(copy, original)  # in place, from another process: the live connections keep their locks
        copy.unlink()
        restored.append(str(original))
    return restored


def moved_name(path: Path, original: Path, tag: str) -> Path:
    """Where ``original`` (the db or a sidecar of ``path``) goes when the set is moved away.

    ``app.db`` → ``app.db.<tag>`` and ``app.db-wal`` → ``app.db.<tag>-wal`` so the moved
    files still form a consistent database SQLite can open.
    """
    return original.with_name(f"{path.name}.{tag}{original.name[len(path.name):]}")


def move_away(path: Path, tag: str) -> list[tuple[Path, Path]]:
    """Rename the database and its sidecars away; returns ``(original, moved)`` pairs."""
    pairs = []
    for original in database_files(path):
        moved = moved_name(path, original, tag)
        os.replace(original, moved)
        pairs.append((original, moved))
    return pairs


def move_back(path: Path, pairs: list[tuple[Path, Path]]) -> list[str]:
    """Undo :func:`move_away`, dropping sidecars a stand-in file grew meanwhile.

    Returns the stray files removed (a -wal/-journal left at ``path`` by another file
    would otherwise be replayed into the restored database).
    """
    moved_back = {original for original, _ in pairs}
    strays = []
    for suffix in SIDECAR_SUFFIXES:
        side = path.with_name(path.name + suffix)
        if side not in moved_back and side.exists():
            side.unlink()
            strays.append(str(side))
    for original, moved in pairs:
        os.replace(moved, original)
    return strays
