"""The verdict "seen damaged", shared by every manager on a database file: ``<db>.damaged``.

Example::

    marker = DamageMarker("app.db")
    marker.write("a corrupt error met by a statement", ["database disk image is malformed"], (2049, 131))
    marker.present()        # True: one lstat, nothing read
    marker.read()           # DamageMark(pid=..., at=..., found_by=..., problems=(...), file=(2049, 131))
    marker.clear()          # a recovery installed a file, or a clean integrity check: removed

Why a file: the usual deployment is several processes (web workers), one
:class:`~reliability.manager.DatabaseManager` each, on one database file. The runtime's verdict on the
file (``monitor.integrity_ok``) lives in one process; a manager in another process that never met the
damage itself would let its audit fallback entries and queued writes into the damaged file's intact
tables, remove them from where they were safe, and a recovery restoring a backup would drop them
(:mod:`reliability.degraded.damage`). The marker carries the verdict across processes:

* **written** by whoever reaches the verdict (a statement met ``corrupt``/``notadb``, or an integrity
  check failed), with what was found, by which process, when and on which file (device, inode);
* **read** by every manager's write gate, only when the runtime is about to write on its own behalf
  (never per statement: one ``lstat`` there), and by health (``db.health()`` and ``reliability health``
  say who marked the file and when; reading changes nothing, health never creates or removes it). A
  manager that did not see the damage itself reports ``degraded``, not ``unavailable`` as the one that saw
  it does: its statements still run (it has met no damage), only the runtime's own writes wait;
* **removed** by a recovery that installed a file or quarantined the damaged one, and by a clean
  integrity result in any process. A marker no clean check may remove blindly: a check that started
  before the marker was written may have read the file before the damage, so only marks written before
  the check began are removed (:meth:`DamageMarker.clear` ``written_before``).

A mark is **sticky** when the damage it records can vanish from sight: a damaged committed frame of the
``-wal`` (:func:`~reliability.connection.wal_damage`) is copied into the database by SQLite's next
checkpoint, where it passes every check (garbage in a row's value is still a well-formed page). Such a
mark is written when a check finds that damage and when a manager closing finds its ``-wal`` damaged
(its close may be the last one, which checkpoints); every integrity check reports it as a problem of the
file it names (:func:`~reliability.health.file_problems`), so no clean result can remove it: only a
recovery that installs a file does. A sticky mark rewritten about the same file stays sticky.

A marker left by a process that crashed does not hold the runtime's own writes back for ever: a gate that
finds it runs the integrity check (at most once per ``recheck_interval``), and a clean result removes it.
A lock or a one-off I/O error during that check is no result: the marker stays.

Other designs were weighed: a row in the database (the file is damaged: writing there is what the gate
forbids, and a restored backup would bring back an old row), a lock file held for the verdict's life (a
lock dies with its process, and a verdict must outlive the process that reached it), a shared-memory
flag (gone on reboot, not visible to the CLI). A file beside the database is read by any process that
can open the database, survives a crash, and is what the runtime already does for its other sidecars.

The file is the runtime's like any other (:mod:`reliability.files`): written to a temporary of its own
(``O_CREAT | O_EXCL | O_NOFOLLOW``, 0600, a name per process and thread so two writers never share one),
fsynced and renamed over the marker; read with ``O_NOFOLLOW``. A symlink planted at the marker's path is
refused with :class:`~reliability.files.UnsafePathError`, never written through and never removed: the
gate counts it as a mark (it cannot tell whether another process saw damage, so the runtime's own writes
wait where they are safe) and health names it, until someone removes the link.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files

log = logging.getLogger("reliability.damage")

#: The marker's name beside the database: ``<db>.damaged``.
SUFFIX = ".damaged"
#: What the marker is called in messages (and in :class:`~reliability.files.UnsafePathError`).
WHAT = "damage marker (<db>.damaged)"


def marker_path(db_path: str | os.PathLike[str]) -> Path:
    """``<db>.damaged`` for the database at ``db_path``."""
    return Path(f"{os.fspath(db_path)}{SUFFIX}")


@dataclass(frozen=True)
class DamageMark:
    """What a marker says: who saw the file damaged, when, how, what was found, on which file.

    ``unreadable`` is set (and the other fields may be None) when the marker is there but could not be
    read: a planted symlink, content that is not a marker. Such a mark still counts as a mark.
    ``sticky`` marks damage that may no longer show in the file (see the module docstring): only a
    recovery removes it.
    """

    path: Path
    pid: int | None = None
    host: str | None = None
    at: float | None = None
    found_by: str | None = None
    problems: tuple[str, ...] = ()
    file: tuple[int, int] | None = None
    unreadable: str | None = None
    sticky: bool = False

    def describe(self) -> str:
        """One line for health and the gate's refusal."""
        if self.unreadable is not None:
            return f"{self.path} is there but cannot be used: {self.unreadable}"
        when = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)) if self.at is not None
                else "an unknown time")
        who = f"process {self.pid}" + (f" on {self.host}" if self.host else "") if self.pid else "an unknown process"
        found = f" after {self.found_by}" if self.found_by else ""
        problems = "; ".join(self.problems[:2]) or "no detail"
        return f"marked damaged by {who} at {when}{found} ({problems})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (health's ``damage_mark``)."""
        return {"path": str(self.path), "pid": self.pid, "host": self.host, "at": self.at,
                "found_by": self.found_by, "problems": list(self.problems),
                "file": list(self.file) if self.file is not None else None, "unreadable": self.unreadable,
                "sticky": self.sticky}


class DamageMarker:
    """The marker of one database file (see the module docstring).

    :param db_path: the database's path, or a callable giving the one in force (a reload may change it).
    """

    def __init__(self, db_path: str | os.PathLike[str] | Callable[[], str]) -> None:
        self._db_path = db_path

    @property
    def path(self) -> Path:
        """``<db>.damaged`` of the database in force."""
        db = self._db_path() if callable(self._db_path) else self._db_path
        return marker_path(db)

    def present(self) -> bool:
        """True when something is at the marker's path (one ``lstat``; a symlink counts)."""
        return os.path.lexists(self.path)

    def read(self) -> DamageMark | None:
        """The mark, or None when there is none. Never creates, changes or removes anything."""
        path = self.path
        try:
            data = files.read_private(path, what=WHAT)
        except files.UnsafePathError as exc:  # dbfault: no fault (a planted link: a setup, not a database fault)
            return DamageMark(path, unreadable=str(exc))
        except OSError as exc:  # dbfault: no fault (unreadable marker: permissions; still a mark)
            return DamageMark(path, unreadable=f"it cannot be read: {exc}")
        if data is None:
            return None
        return _parse(path, data)

    def write(self, found_by: str, problems: list[str], file: tuple[int, int] | None, *,
              sticky: bool = False) -> None:
        """Mark the database damaged: ``found_by`` says how, ``problems`` what, ``file`` which file.

        ``sticky``: the damage may vanish from sight (only a recovery removes the mark). A sticky mark
        already there about the same file stays sticky, and its first problem is kept.

        :raises files.UnsafePathError: a symlink (or something not a regular file) is at the marker's path.
        :raises OSError: the marker could not be written (full disk, permissions).
        """
        path = self.path
        files.refuse_symlink(path, WHAT)
        old = self.read()
        if old is not None and old.sticky and old.file == file and not sticky:
            # (A later, visible verdict on the same file must not turn the hidden damage into one a clean check clears.)
            sticky, problems = True, [*old.problems[:1], *problems]
        record = {"pid": os.getpid(), "host": socket.gethostname(), "at": time.time(), "found_by": found_by,
                  "problems": list(problems[:20]), "file": list(file) if file is not None else None,
                  "sticky": sticky}
        tmp = files.process_temp(path, "tmp")  # a crash's leftover: see remove_leftovers
        fd = files.create_temp(tmp, what=f"temporary of the {WHAT}")
        try:
            try:
                files.write_all(fd, json.dumps(record, sort_keys=True).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            files.refuse_symlink(path, WHAT)
            os.replace(tmp, path)
        except BaseException:  # dbfault: no fault (leave no temporary of ours behind, whatever stopped us)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        files.fsync_dir(path.parent)
        log.warning("%s written: the database is marked damaged for every manager on it (%s): %s", path,
                    found_by, "; ".join(problems[:3]) or "no detail")

    def remove_leftovers(self) -> list[Path]:
        """Remove the temporaries of markers whose writer crashed mid-write (``<db>.damaged.tmp-<pid>-<tid>``)."""
        return files.remove_leftover_temps(self.path, "tmp")

    def clear(self, *, written_before: float | None = None,
              keep: Callable[[DamageMark], bool] | None = None) -> bool:
        """Remove the marker; True when one was removed.

        :param written_before: remove it only when it was written before this time (``time.time()``):
            a mark written after a check began may be about damage the check did not see.
        :param keep: a further test: a mark it says to keep stays.
        A symlink (or anything not a regular file) at the path is never removed: it is not ours
        (:class:`~reliability.files.UnsafePathError` is raised).
        """
        path = self.path
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # dbfault: no fault (no marker: the usual case)
            return False
        if not stat.S_ISREG(st.st_mode):
            files.refuse_symlink(path, WHAT)  # raises for a link or a non-regular file
        mark = self.read()
        if mark is None:
            return False
        if written_before is not None and mark.at is not None and mark.at > written_before:
            return False
        if keep is not None and keep(mark):
            return False
        try:
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return False  # rewritten meanwhile by another process: a newer verdict, not ours to remove
            os.unlink(path)
        except FileNotFoundError:  # dbfault: no fault (another process removed it first)
            return False
        files.fsync_dir(path.parent)
        log.info("%s removed: the database is no longer marked damaged", path)
        return True


def _parse(path: Path, data: bytes) -> DamageMark:
    try:
        record = json.loads(data.decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not an object")
        file = record.get("file")
        return DamageMark(
            path, pid=int(record["pid"]) if record.get("pid") is not None else None,
            host=str(record["host"]) if record.get("host") else None,
            at=float(record["at"]) if record.get("at") is not None else None,
            found_by=str(record["found_by"]) if record.get("found_by") else None,
            problems=tuple(str(p) for p in record.get("problems") or ()),
            file=(int(file[0]), int(file[1])) if isinstance(file, list) and len(file) == 2 else None,
            sticky=record.get("sticky") is True)
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # dbfault: no fault (not a marker's content)
        return DamageMark(path, unreadable=f"its content is not a damage marker ({exc})")


def error_text(exc: OSError) -> str:
    """A short text for an error met writing or removing the marker."""
    if isinstance(exc, files.UnsafePathError):
        return str(exc)
    return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
