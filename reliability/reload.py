"""Configuration hot reload: watch a ``.env`` file and swap in a new validated config.

Example::

    watcher = db.watch_env(".env")                 # background check every config_reload_interval s
    watcher.subscribe(lambda old, new, changed: print("changed:", changed))
    watcher.check_now()                            # or check explicitly (tests, CLI)

The check is a ``stat()`` of the file (mtime, size, inode) on an interval, in a
background thread: nothing is added to database operations. A valid change is applied
atomically under the manager's lock (a new config object swapped in and handed to every part
that copied a value from it: retry policy, queue bound, backups, schedules, operation log,
redo journal; settings that need a new connection close the current one so the next operation
reopens it) and logged with the changed keys. Settings read at start only
(:data:`RESTART_KEYS`) keep their running value, with a warning. An invalid change
raises/logs a :class:`ConfigError` naming the keys, and the old configuration stays in force.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import ENV_PREFIX, ConfigError, ReliabilityConfig, origins, read_env_file
from .ports import ReloadHost  # (a structural type: the runtime's surface this module uses)

log = logging.getLogger("reliability.reload")

#: Settings that only take effect on a new connection.
RECONNECT_KEYS = frozenset({"busy_timeout_ms", "journal_mode", "synchronous", "foreign_keys"})
#: Settings read at start only: a reload keeps the running value, says so (a warning naming each, and
#: :attr:`ConfigWatcher.pending_restart`), and the next start uses the file's. Each names where the runtime's
#: data lives or what reads it (the database file and with it the default places of its journal, backups,
#: queue and audit files; the SQLite build; whether writes are journaled): switching one under a running
#: manager would split one database's recovery data across two places (a journal beside the old file
#: describing writes to the new one; queued writes or audit entries waiting in a file nobody reads any
#: more), or leave writes unjournaled while recovery counted on the journal.
RESTART_KEYS = frozenset({"db_path", "sqlite_module", "redo_journal", "backup_dir", "write_queue_path",
                          "audit_fallback_path"})
_RETRY_KEYS = {"retry_attempts": "attempts", "retry_base_delay": "base_delay", "retry_max_delay": "max_delay",
               "retry_budget": "budget"}

Listener = Callable[[ReliabilityConfig, ReliabilityConfig, tuple[str, ...]], None]


def changed_keys(old: ReliabilityConfig, new: ReliabilityConfig) -> tuple[str, ...]:
    """Names of the settings that differ between two configs."""
    return tuple(f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name))


def apply_config(db: ReloadHost, new: ReliabilityConfig) -> tuple[str, ...]:
    """Swap ``new`` into ``db`` and its components; returns the changed keys.

    Runs under the runtime's lock (``transactions.lock``), so no operation sees half of a change. Inside an
    open transaction on this thread it raises ``RuntimeError`` (the caller retries later).
    """
    with db.transactions.lock:  # the runtime's lock
        if db.transactions.depth:
            raise RuntimeError("cannot apply a new configuration inside a transaction")
        old = db.config
        held = held_for_restart(old, new)
        if held:
            log.warning("configuration change of %s is read at start only: the running manager keeps %s; the "
                        "next start uses the new value", ", ".join(held),
                        ", ".join(f"{k}={getattr(old, k)!r}" for k in held), extra={"config_keys": list(held)})
            new = new.replace(**{k: getattr(old, k) for k in held})
        changed = changed_keys(old, new)
        if not changed:
            return ()
        db.config = new
        db.connections.config = new
        db.errors.show_params = new.log_sql_params
        for key, attr in _RETRY_KEYS.items():
            if key in changed:
                setattr(db.policy, attr, getattr(new, key))
        queue = getattr(db, "queue", None)
        if queue is not None:
            queue.max_entries = new.write_queue_max
        if {"operation_log", "operation_log_path", "log_json"} & set(changed):
            from .oplog import OperationLog

            if db.oplog is not None:
                db.oplog.close()
            db.oplog = OperationLog.from_config(new, prefix=db.id_prefix)  # the manager's operation ids
        if "synchronous" in changed and db.redo_journal is not None:
            db.redo_journal.follow_synchronous(new.synchronous)  # what the journal flushes follows SQLite's level
        if RECONNECT_KEYS & set(changed):
            db.connections.close()  # the next operation reopens with the new settings
    # Outside the runtime's lock: restarting the schedule waits for a task in progress, which may need that lock.
    db.durability.follow_config(new)  # backups kept, their lock wait, every schedule
    return changed


def held_for_restart(old: ReliabilityConfig, new: ReliabilityConfig) -> tuple[str, ...]:
    """The :data:`RESTART_KEYS` that differ between ``old`` (in force) and ``new`` (a file's)."""
    return tuple(k for k in changed_keys(old, new) if k in RESTART_KEYS)


class ConfigWatcher:
    """Watches one ``.env`` file for a :class:`DatabaseManager` (see :meth:`DatabaseManager.watch_env`).

    :param db: the manager to update.
    :param path: the ``.env`` file.
    :param interval: seconds between checks (default ``config.config_reload_interval``, and then a reload
        of that setting changes it: 0 stops the thread, a positive value starts it again; 0 means no
        background thread — call :meth:`check_now`).
    :param environ: environment consulted for ``RELIABILITY_*`` (wins over the file, as at startup).
    """

    def __init__(self, db: ReloadHost, path: str | os.PathLike[str], *, interval: float | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.db = db
        self.path = Path(path)
        self.interval = db.config.config_reload_interval if interval is None else interval
        self.environ = environ
        self.listeners: list[Listener] = []
        #: The base settings: what the manager was given, before any value from the file.
        self.base = db.config
        self.last_error: ConfigError | None = None
        self.reloads = 0
        #: Settings the file changed that are read at start only (:data:`RESTART_KEYS`): key -> the file's value.
        self.pending_restart: dict[str, Any] = {}
        self._follows_config = interval is None
        self._signature = self._stat()
        #: What the background thread's previous look saw (a change is applied once it looks the same twice).
        self._polled = self._signature
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.interval > 0:
            self._start_thread()

    def _start_thread(self) -> None:
        self._stop = threading.Event()  # (a fresh one: a thread ending after a stop keeps its own, set)
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="reliability-config-watch",
                                        daemon=True)
        self._thread.start()

    def _follow_interval(self, interval: float) -> None:
        """``config_reload_interval`` reloaded: check at the new pace, stop at 0, start again from 0."""
        self.interval = interval
        alive = self._thread is not None and self._thread.is_alive() and not self._stop.is_set()
        if interval <= 0 and alive:
            self.stop()
        elif interval > 0 and not alive and not self.db.closed:
            self._start_thread()

    def subscribe(self, listener: Listener) -> Listener:
        """Call ``listener(old, new, changed_keys)`` after each applied change."""
        self.listeners.append(listener)
        return listener

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:  # dbfault: no fault (no .env file, or an editor's save in progress)
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            if self.db.closed:
                return
            try:
                self.poll()
            except ConfigError:  # dbfault: no fault (an invalid value in the .env file)
                pass  # logged by check_now; the old configuration stays in force
            except Exception:  # dbfault: no fault (guard: an unexpected bug must not end the watcher)
                log.exception("configuration reload of %s failed", self.path)

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def load(self) -> ReliabilityConfig:
        """The config the file describes now, on top of :attr:`base` (raises :class:`ConfigError`)."""
        values = dict(read_env_file(self.path))
        env = os.environ if self.environ is None else self.environ
        values.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        # Settings absent from the file keep their base value (not the library default).
        base = {k: v for k, v in dataclasses.asdict(self.base).items() if ENV_PREFIX + k.upper() not in values}
        try:
            return ReliabilityConfig.from_mapping(values, source=str(self.path), **base)
        except ConfigError as exc:  # dbfault: no fault (an invalid setting: say on which line)
            raise exc.located(origins(self.path, env)) from None

    def poll(self) -> tuple[str, ...]:
        """The background thread's look: apply a change once the file looks the same as at the previous look.

        An editor that saves in place truncates the file and then writes it; a look in between would apply the
        empty (or half-written) file, putting every setting back to its base value, and ``config_reload_interval``
        back to a base of 0 would even stop the thread before the finished save is seen. Waiting for the file to
        settle costs a change up to one more interval; :meth:`check_now` (a call) applies at once.
        """
        signature = self._stat()
        settled = signature == self._polled
        self._polled = signature
        if not settled:
            return ()
        return self.check_now()

    def check_now(self, *, force: bool = False) -> tuple[str, ...]:
        """Reload if the file changed (or ``force``); returns the changed keys (empty when nothing changed).

        :raises ConfigError: when the new content is invalid (also logged); the old config stays.
        """
        signature = self._stat()
        if signature is None or (signature == self._signature and not force):
            # A missing file is usually an editor's atomic save in progress: keep what we have.
            return ()
        try:
            new = self.load()
        except ConfigError as exc:  # dbfault: no fault (an invalid value in the .env file)
            self._signature = signature  # report each bad version once
            self.last_error = exc
            keys = ", ".join(k for k, _v, _r in exc.problems)
            log.error("configuration change in %s rejected (%s); the previous configuration stays in force:\n%s",
                      self.path, keys, exc, extra={"config_keys": [k for k, _v, _r in exc.problems]})
            raise
        try:
            old = self.db.config
            changed = apply_config(self.db, new)
        except RuntimeError:  # dbfault: no fault (called inside the caller's own open transaction)
            return ()  # inside a transaction: leave the signature so the next check applies it
        self._signature = signature
        self.last_error = None
        self.pending_restart = {k: getattr(new, k) for k in held_for_restart(self.db.config, new)}
        new = self.db.config  # (what is in force: the restart-only settings kept their running value)
        if "config_reload_interval" in changed and self._follows_config:
            self._follow_interval(new.config_reload_interval)
        if changed:
            self.reloads += 1
            log.info("configuration reloaded from %s; changed: %s", self.path, ", ".join(changed),
                     extra={"config_keys": list(changed)})
            for listener in list(self.listeners):
                try:
                    listener(old, new, changed)
                except Exception:
                    log.exception("configuration listener %r failed", listener)
        return changed


def describe(config: ReliabilityConfig) -> dict[str, Any]:
    """Settings as shown by ``config show`` (secrets masked)."""
    return config.to_dict()
