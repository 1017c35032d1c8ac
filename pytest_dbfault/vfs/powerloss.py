"""Power loss: what a database's files would hold if the machine lost power right now.

A :class:`PowerLossRecorder` watches one database's files (main, ``-journal``, ``-wal``) through
the shim. Before every write or shrinking truncate it keeps the bytes about to be replaced (the
first time a region is touched since the file's last successful sync); a successful sync forgets
them and records the synced size. Producing the post-power-loss files is then a matter of copying
each file and putting the kept bytes back — on copies, so the live files are never touched::

    recorder = PowerLossRecorder(db).start()
    ...  # the application writes and commits
    images = recorder.cut(tmp_path / "after")   # {original path: copy path}
    sqlite3.connect(images[db])                 # reopen and check

``mode="torn"`` keeps, for each unsynced write, a seeded random subset of its 512-byte sectors
(the rest reverts), modelling a disk that lost power half way through a write. Deleting a file
counts as durable at once, and the size of a file at its last sync is its size after power loss.
A crash point (:meth:`arm`) cuts the power just before the (N+1)th sync and then fails every
later I/O call on the database, so the application stops "after the crash".
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from pathlib import Path

from .errors import VfsUsageError
from .rules import FailRule, family_paths
from .shim import OpenFile, Shim, get_shim

#: How power loss treats unsynced writes.
MODES = ("drop", "torn")
SECTOR = 512


class _History:
    """Unsynced changes of one file since its last successful sync."""

    __slots__ = ("synced_size", "before")

    def __init__(self, synced_size: int) -> None:
        self.synced_size = synced_size
        self.before: dict[tuple[int, int], bytes] = {}  # (offset, length) -> bytes it replaced


class PowerLossRecorder:
    """Keeps what is needed to rebuild ``path``'s files as of their last successful syncs."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.realpath(os.fspath(path))
        self._paths = family_paths(self.path)
        self._history: dict[str, _History] = {}
        self._lock = threading.Lock()
        self.syncs = 0
        self.crash_after: int | None = None
        self._crash_dest: Path | None = None
        self._crash_mode = "drop"
        self._crash_seed = 0
        self.crashed = False
        self.images: dict[str, str] | None = None
        self._dead_rule: FailRule | None = None
        self.started = False
        #: the shim of the SQLite build whose I/O is recorded (None: the stdlib's, chosen at start)
        self.shim: Shim | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> PowerLossRecorder:
        """Install the shim (if needed) and start recording; files on disk now count as synced."""
        if not self.started:
            shim = self.shim = self.shim or get_shim()
            shim.install()
            shim.add_recorder(self)
            self.started = True
        return self

    def stop(self) -> None:
        """Stop recording, lift the post-crash failures and release the shim."""
        if self.started:
            shim = self.shim or get_shim()
            shim.remove_recorder(self)
            if self._dead_rule is not None:
                shim.remove_rule(self._dead_rule)
            shim.uninstall()
            self.started = False

    def arm(self, after_syncs: int, dest: str | os.PathLike[str], *, mode: str = "drop", seed: int = 0) -> None:
        """Cut the power just before sync number ``after_syncs + 1``, writing the images to ``dest``."""
        if after_syncs < 0:
            raise VfsUsageError(f"power_loss after_syncs={after_syncs} must be >= 0")
        self._check_mode(mode)
        self.crash_after = after_syncs
        self._crash_dest = Path(dest)
        self._crash_mode = mode
        self._crash_seed = seed

    def cut(self, dest: str | os.PathLike[str], *, mode: str = "drop", seed: int = 0) -> dict[str, str]:
        """Write the post-power-loss files of the database into ``dest``; returns {original: copy}.

        Files that do not exist are skipped; a ``-shm`` file is never copied (SQLite rebuilds it
        from the WAL, as after a real reboot).
        """
        self._check_mode(mode)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        images: dict[str, str] = {}
        with self._lock:
            for original in sorted(self._paths):
                if not os.path.exists(original):
                    continue
                with open(original, "rb") as fh:
                    data = bytearray(fh.read())
                history = self._history.get(original)
                if history is not None:
                    data = _revert(data, history, mode, rng)
                target = dest / os.path.basename(original)
                target.write_bytes(bytes(data))
                images[original] = str(target)
        return images

    def unsynced_bytes(self) -> int:
        """How many bytes of earlier content are kept for reverting unsynced writes."""
        with self._lock:
            return sum(len(b) for h in self._history.values() for b in h.before.values())

    # ------------------------------------------------------------------ shim hooks
    def before_write(self, f: OpenFile, offset: int, amount: int) -> None:
        """Keep the bytes ``f`` is about to overwrite, if not already kept since the last sync."""
        if f.path not in self._paths:
            return
        with self._lock:
            history = self._history_of(f)
            key = (offset, amount)
            if key not in history.before:
                size = f.size()
                history.before[key] = f.read_bytes(offset, min(offset + amount, size) - offset)

    def before_truncate(self, f: OpenFile, new_size: int) -> None:
        """Keep the tail a shrinking truncate is about to drop."""
        if f.path not in self._paths:
            return
        with self._lock:
            history = self._history_of(f)
            size = f.size()
            if new_size < size:
                history.before.setdefault((new_size, size - new_size), f.read_bytes(new_size, size - new_size))

    def crash_point(self, f: OpenFile) -> bool:
        """Called before each sync: True (and the images taken) if the power goes out now."""
        if f.path not in self._paths:
            return False
        if self.crashed:
            return True
        if self.crash_after is None or self.syncs < self.crash_after:
            return False
        assert self._crash_dest is not None
        self.crashed = True
        self.images = self.cut(self._crash_dest, mode=self._crash_mode, seed=self._crash_seed)
        # After the power is gone nothing the application does reaches the disk.
        self._dead_rule = FailRule(ops=frozenset({"read", "write", "truncate", "sync", "size"}), path=self.path,
                                   nth=1, persistent=True, error="io_error")
        (self.shim or get_shim()).add_rule(self._dead_rule)
        return True

    def after_sync(self, f: OpenFile) -> None:
        """A sync of ``f`` succeeded: everything written to it so far is durable."""
        if f.path not in self._paths:
            return
        with self._lock:
            self.syncs += 1
            self._history[f.path] = _History(f.size())

    def on_delete(self, path: str) -> None:
        """A file was deleted (treated as durable at once)."""
        with self._lock:
            self._history.pop(path, None)

    # ------------------------------------------------------------------ internals
    def _history_of(self, f: OpenFile) -> _History:
        assert f.path is not None
        history = self._history.get(f.path)
        if history is None:
            history = self._history[f.path] = _History(f.size())
        return history

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise VfsUsageError(f"power loss mode {mode!r} unknown; use one of {', '.join(MODES)}")


def _revert(data: bytearray, history: _History, mode: str, rng: random.Random) -> bytearray:
    """Put back the bytes unsynced writes replaced, newest first, then restore the synced size."""
    for (offset, _length), old in reversed(history.before.items()):
        if len(data) < offset + len(old):
            data.extend(bytes(offset + len(old) - len(data)))
        if mode == "drop":
            data[offset:offset + len(old)] = old
            continue
        for start in range(0, len(old), SECTOR):  # torn: each sector independently kept or lost
            if rng.random() < 0.5:
                data[offset + start:offset + start + SECTOR] = old[start:start + SECTOR]
    size = history.synced_size
    return data[:size] if len(data) >= size else data + bytes(size - len(data))


def copy_database(src: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> str:
    """Copy a database with its ``-journal`` / ``-wal`` (not ``-shm``) into ``dest_dir``; returns the new path."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    src = os.fspath(src)
    for suffix in ("", "-journal", "-wal"):
        if os.path.exists(src + suffix):
            shutil.copyfile(src + suffix, dest_dir / (os.path.basename(src) + suffix))
    return str(dest_dir / os.path.basename(src))
