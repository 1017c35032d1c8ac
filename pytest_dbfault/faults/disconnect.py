"""Take the database away from under an application: close, delete, move, swap (for a while or for good), make
read-only, remove its WAL.

What SQLite answers (FAULTS.md): a closed handle raises ``ProgrammingError: Cannot
operate on a closed database.``; a deleted, renamed or replaced file leaves an open
rollback-journal connection able to read but its writes fail with
1032/SQLITE_READONLY_DBMOVED (in WAL mode writes silently go to the lost file);
``query_only`` gives 8/SQLITE_READONLY; a file truncated under a connection gives
11/SQLITE_CORRUPT. A ``-wal`` removed under open connections (a cleanup script) goes unnoticed: they
keep reading and writing the unlinked file, a connection opened since gets a disk I/O error (or, with
the ``-shm`` removed too, the database as of the last checkpoint), and the frames reach the database
only if one of the old handles checkpoints them or closes as the last connection.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

from . import _files
from .base import Fault, FaultError
from .safety import check_path
from .target import TargetLike, resolve_target

#: The ways :class:`DisconnectFault` can take a database away.
MODES = ("close", "delete", "rename", "replace", "replace_for_good", "readonly", "truncate", "remove_wal",
         "remove_wal_shm")
_MOVED_TAG = "dbfault-moved"
_STAGED_TAG = "dbfault-staged"


class DisconnectFault(Fault):
    """Make the database unavailable to its application in one of several ways.

    :param target: database path, ``sqlite3.Connection`` or manager.
    :param mode:
        ``close`` — close the target connection (not reopenable: heal only records that);
        ``delete`` — unlink the database and its -wal/-shm/-journal;
        ``rename`` — move them to ``<name>.dbfault-moved``; heal moves them back;
        ``replace`` — move them away and put ``replacement`` (a copy of that file) or an
        empty file in their place; heal puts the original back;
        ``replace_for_good`` — ``os.replace()`` a copy of ``replacement`` (or an empty database) over the
        path in one atomic rename, as an operator installing another copy of the database does: the
        original is unlinked (open handles keep reading it, nothing keeps a copy) and its -wal/-shm/-journal
        are left as they are, as ``mv`` leaves them. The replacement stays: heal restores nothing;
        ``readonly`` — ``PRAGMA query_only=1`` on the target connection (heal restores the
        previous value), or, given only a path, ``chmod a-w`` on the file, which only
        affects *new* connections and does **nothing for root** (root ignores mode bits;
        the record says whether it is effective);
        ``truncate`` — cut the file to ``fraction`` of its size;
        ``remove_wal`` — unlink the database's ``-wal`` only (the file and the ``-shm`` stay), as a
        cleanup script does under running connections; ``remove_wal_shm`` — the ``-wal`` and the
        ``-shm``. Nothing is copied and heal restores nothing: putting a ``-wal`` back under live
        connections would hand them frames their index no longer describes (the frames live on only
        in the handles that had the removed file open).
    :param readonly_via: force ``"query_only"`` or ``"chmod"`` for ``mode="readonly"``.
    :param backup_before: for ``delete`` and ``truncate``, copy the files first so heal restores them.
    :param allow_unsafe: act on files outside the allowed roots (see :mod:`.safety`).
    """

    name = "disconnect"
    param_choices = {"mode": MODES, "readonly_via": (None, "query_only", "chmod")}

    def __init__(
        self,
        target: TargetLike,
        *,
        mode: str = "close",
        replacement: str | os.PathLike[str] | None = None,
        readonly_via: str | None = None,
        fraction: float = 0.5,
        backup_before: bool = False,
        allow_unsafe: bool = False,
    ) -> None:
        if mode not in MODES:
            raise FaultError(f"DisconnectFault mode {mode!r} is not one of {', '.join(MODES)}")
        if readonly_via not in (None, "query_only", "chmod"):
            raise FaultError(f"DisconnectFault readonly_via must be 'query_only', 'chmod' or None, "
                             f"got {readonly_via!r}")
        if not 0 <= fraction < 1:
            raise FaultError(f"DisconnectFault fraction must be in [0, 1), got {fraction!r}")
        if replacement is not None and not Path(replacement).is_file():
            raise FaultError(f"DisconnectFault replacement {os.fspath(replacement)!r} is not a file")
        params: dict[str, Any] = {"mode": mode}
        if replacement is not None:
            params["replacement"] = os.fspath(replacement)
        if mode == "truncate":
            params["fraction"] = fraction
        super().__init__(target=target, **params)
        self.target = resolve_target(target)
        if isinstance(target, (str, os.PathLike)) and (
                mode == "close" or (mode == "readonly" and readonly_via == "query_only")):
            # Said at construction, with what to pass instead: a path has no connection to act on.
            what = "mode='close'" if mode == "close" else "mode='readonly', readonly_via='query_only'"
            raise FaultError(
                f"fault 'disconnect' {what} acts on a live connection, but its target {os.fspath(target)!r} is "
                f"only a path; pass the sqlite3.Connection or DatabaseManager to break, or a mode that works on "
                f"the file: {', '.join(m for m in MODES if m != 'close')} (readonly on a path uses chmod)")
        self.mode = mode
        self.replacement = Path(replacement) if replacement is not None else None
        self.readonly_via = readonly_via
        self.fraction = fraction
        self.backup_before = backup_before
        self.allow_unsafe = allow_unsafe
        self._undo: dict[str, Any] = {}

    def _inject(self) -> None:
        getattr(self, f"_inject_{self.mode}")()

    def _heal(self) -> None:
        undo, self._undo = self._undo, {}
        if "backup" in undo:
            self.record("restored from backup", files=_files.restore_files(undo["backup"]))
        elif "moved" in undo:
            strays = _files.move_back(undo["path"], undo["moved"])
            # The very files moved away are back (same inode, size, mtime): the original state, its
            # -wal and every row committed in it included. A change means something wrote into the
            # moved files through a handle opened before the fault: say so rather than claim exactness.
            changed = [str(o) for o, _ in undo["moved"]
                       if not o.name.endswith("-shm") and _fingerprint(o) != undo["prints"].get(o)]
            self.record("moved back", files=[str(o) for o, _ in undo["moved"]], removed_strays=strays,
                        intact=not changed, changed=changed)
        elif "query_only" in undo:
            conn = undo["connection"]
            try:
                conn.execute(f"PRAGMA query_only = {int(undo['query_only'])}")
                self.record("query_only restored", query_only=undo["query_only"])
            except sqlite3.ProgrammingError:
                self.record("query_only not restored", reason="connection already closed")
        elif "chmod" in undo:
            os.chmod(undo["path"], undo["chmod"])
            self.record("mode restored", file=str(undo["path"]), mode=oct(undo["chmod"]))
        else:
            self.record("nothing to restore", reason=_NOT_RESTORABLE.get(self.mode, "no backup was taken"))

    # -- modes ---------------------------------------------------------------------
    def _inject_close(self) -> None:
        self.target.need_connection(self.name).close()
        self.record("connection closed")

    def _inject_delete(self) -> None:
        path = self._guarded_path("delete")
        self._maybe_backup(path)
        removed = [str(p) for p in _files.database_files(path) if p.exists()]
        for name in removed:
            os.unlink(name)
        self.record("deleted", files=removed)

    def _inject_rename(self) -> None:
        path = self._guarded_path("rename")
        moved = _files.move_away(path, _MOVED_TAG)
        self._undo = {"path": path, "moved": moved, "prints": _fingerprints(moved)}
        self.record("renamed", files={str(o): str(m) for o, m in moved})

    def _inject_replace(self) -> None:
        path = self._guarded_path("replace")
        moved = _files.move_away(path, _MOVED_TAG)
        self._undo = {"path": path, "moved": moved, "prints": _fingerprints(moved)}
        if self.replacement is not None:
            shutil.copyfile(self.replacement, path)
        else:
            path.touch()  # a zero-length file is a valid, empty SQLite database
        self.record("replaced", file=str(path), moved_to=str(moved[0][1]),
                    replacement=str(self.replacement) if self.replacement else "empty database")

    def _inject_replace_for_good(self) -> None:
        path = self._guarded_path("replace")
        staged = path.with_name(f"{path.name}.{_STAGED_TAG}")  # beside the path: the rename below stays atomic
        sidecars = [str(p) for p in _files.database_files(path)[1:]]
        try:
            if self.replacement is not None:
                shutil.copyfile(self.replacement, staged)
            else:
                staged.write_bytes(b"")  # a zero-length file is a valid, empty SQLite database
            os.replace(staged, path)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise FaultError(f"cannot replace {path}: {exc}") from exc
        self.record("replaced for good", file=str(path), original="unlinked", sidecars_left=sidecars,
                    replacement=str(self.replacement) if self.replacement else "empty database")

    def _inject_readonly(self) -> None:
        via = self.readonly_via or ("query_only" if self.target.connection is not None else "chmod")
        if via == "query_only":
            conn = self.target.need_connection(self.name)
            previous = int(conn.execute("PRAGMA query_only").fetchone()[0])
            conn.execute("PRAGMA query_only = 1")
            self._undo = {"query_only": previous, "connection": conn}
            self.record("query_only set", previous=previous)
            return
        path = self._guarded_path("chmod")
        old = stat.S_IMODE(path.stat().st_mode)
        os.chmod(path, old & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        self._undo = {"chmod": old, "path": path}
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.record("write permission removed", file=str(path), old_mode=oct(old), effective=not root,
                    note=("running as root: mode bits are ignored, new connections can still write; "
                          "use readonly_via='query_only' on a connection") if root
                    else "affects new connections only; open ones keep writing")

    def _inject_remove_wal(self) -> None:
        self._remove_sidecars(("-wal",))

    def _inject_remove_wal_shm(self) -> None:
        self._remove_sidecars(("-wal", "-shm"))

    def _remove_sidecars(self, suffixes: tuple[str, ...]) -> None:
        path = self._guarded_path("remove the -wal of")
        wal = path.with_name(path.name + "-wal")
        if not wal.is_file():
            raise FaultError(f"cannot remove the -wal of {path}: there is none (not in WAL mode, or no connection "
                             "has it open)")
        removed = []
        for suffix in suffixes:  # a plain unlink: nothing opens (or closes) the database file here
            side = path.with_name(path.name + suffix)
            try:
                os.unlink(side)
            except FileNotFoundError:
                continue
            removed.append(str(side))
        self.record("removed", files=removed)

    def _inject_truncate(self) -> None:
        path = self._guarded_path("truncate")
        self._maybe_backup(path)
        old = path.stat().st_size
        new = int(old * self.fraction)
        os.truncate(path, new)
        self.record("truncated", file=str(path), old_size=old, new_size=new)

    # -- helpers -------------------------------------------------------------------
    def _guarded_path(self, action: str) -> Path:
        path = check_path(self.target.need_path(self.name), action=action, allow_unsafe=self.allow_unsafe)
        if not path.is_file():
            raise FaultError(f"cannot {action} {path}: no such database file")
        return path

    def _maybe_backup(self, path: Path) -> None:
        if self.backup_before:
            self._undo = {"backup": _files.backup_files(path)}
            self.record("backed up", files=[str(c) for _, c in self._undo["backup"]])


def _fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime) of ``path``: equal before and after means the very file, unchanged."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _fingerprints(moved: list[tuple[Path, Path]]) -> dict[Path, tuple[int, int, int, int] | None]:
    # Taken right after the move (rename keeps all four), keyed by the original path heal restores.
    return {original: _fingerprint(now) for original, now in moved}


_NOT_RESTORABLE = {
    "close": "a closed sqlite3.Connection cannot be reopened; open a new connection",
    "delete": "deleted files are gone; use backup_before=True to restore them",
    "replace_for_good": "the replacement stays for good: the original was unlinked when it was replaced (use "
                        "mode='replace' to have it put back)",
    "truncate": "the cut bytes are gone; use backup_before=True to restore them",
    "remove_wal": "a removed -wal is not put back under live connections; its frames live on in the handles "
                  "that had it open",
    "remove_wal_shm": "a removed -wal and -shm are not put back under live connections; the frames live on in "
                      "the handles that had them open",
}
