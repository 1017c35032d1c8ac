"""P16 config hot reload: a valid change takes effect without a restart; an invalid one is refused."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ..faults.registry import make_fault
from .base import swarm
from .workload import Workload

#: Invalid ``.env`` contents, each with the key the rejection must name.
INVALID = (
    ("RELIABILITY_RETRY_ATTEMPTS=0", "RELIABILITY_RETRY_ATTEMPTS"),
    ("RELIABILITY_JOURNAL_MODE=sideways", "RELIABILITY_JOURNAL_MODE"),
    ("RELIABILITY_RETRY_ATEMPTS=3", "RELIABILITY_RETRY_ATEMPTS"),
    ("RELIABILITY_BUSY_TIMEOUT_MS=soon", "RELIABILITY_BUSY_TIMEOUT_MS"),
    ("RELIABILITY_RETRY_MAX_DELAY=0.001", "RELIABILITY_RETRY_MAX_DELAY"),
)


def has_reload(self: Any) -> bool:
    return self.db is not None and callable(getattr(self.db, "watch_env", None))


class ConfigMixin(Workload):
    """Writes the ``.env`` file the runtime watches and checks the behaviour, not just the object."""

    def after_start(self) -> None:
        super().after_start()
        self.env_path = os.path.join(self.dir, ".env")
        self.env_lines: dict[str, str] = {}
        self.watcher = self.db.watch_env(self.env_path, interval=0) if has_reload(self) else None

    def after_reopen(self) -> None:
        super().after_reopen()
        if self.watcher is not None:
            self.watcher = self.db.watch_env(self.env_path, interval=0)

    def write_env(self, lines: dict[str, str], extra: str = "") -> None:
        with open(self.env_path, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{k}={v}\n" for k, v in lines.items()) + (extra + "\n" if extra else ""))

    @precondition(swarm("reload"))
    @precondition(lambda self: getattr(self, "watcher", None) is not None and not self.faults)
    @rule(attempts=st.integers(1, 6), params=st.booleans())
    def reload_valid(self, attempts: int, params: bool) -> None:
        """P16: change retry_attempts; the next locked write must make exactly that many attempts."""
        lines = dict(self.env_lines, RELIABILITY_RETRY_ATTEMPTS=str(attempts),
                     RELIABILITY_LOG_SQL_PARAMS="true" if params else "false")
        self.write_env(lines)
        from reliability import ConfigError

        try:
            self.watcher.check_now(force=True)
        except ConfigError as exc:
            self.check(16, False, f"a valid change was rejected: {exc}")
        self.env_lines = lines
        self.check(16, self.db.config.retry_attempts == attempts and self.db.config.log_sql_params is params,
                   f"config after reload has retry_attempts={self.db.config.retry_attempts}, "
                   f"log_sql_params={self.db.config.log_sql_params}; the file says {attempts}, {params}")
        self.config = self.db.config
        self.check_attempts(attempts)
        self.check_params_logged(params)

    def check_params_logged(self, shown: bool) -> None:
        """Behaviour of ``log_sql_params``: the next error's technical record shows, or redacts, its parameters."""
        marker = f"reload-{len(self.logs.records)}"
        logs0 = len(self.logs.records)
        out = self.call("fetch_one", self.db.fetch_one, "SELECT v FROM no_such_table_here WHERE k = ?", (marker,))
        op = getattr(out.error, "operation_id", None)
        records = [r for r in self.logs.records[logs0:]
                   if getattr(r, "operation_id", None) == op and hasattr(r, "params")]
        self.check(16, not out.ok and bool(records) and all((marker in str(r.params)) is shown for r in records),
                   lambda: f"log_sql_params is {shown} after the reload, but the error's record has params "
                           f"{[getattr(r, 'params', None) for r in records]}")

    @precondition(swarm("reload"))
    @precondition(lambda self: getattr(self, "watcher", None) is not None and not self.faults)
    @rule(key=st.sampled_from(("backup_dir", "redo_journal", "write_queue_path", "audit_fallback_path")))
    def reload_restart_only(self, key: str) -> None:
        """P16: a setting read at start only (where the runtime's data lives, whether writes are journaled),
        changed in the watched file, keeps its running value: the watcher names it in ``pending_restart`` with
        the file's value and a warning names it; a backup still goes where it went. Taken out of the file again,
        nothing waits for a restart any more."""
        old = self.db.config
        value: Any = (not old.redo_journal) if key == "redo_journal" else os.path.join(self.dir, f"moved-{key}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        lines = dict(self.env_lines, **{f"RELIABILITY_{key.upper()}": text})
        logs0 = len(self.logs.records)
        self.write_env(lines)
        self.watcher.check_now(force=True)
        self.check(16, getattr(self.db.config, key) == getattr(old, key),
                   lambda: f"{key} is read at start only, yet a reload switched the running manager to "
                           f"{getattr(self.db.config, key)!r} (was {getattr(old, key)!r})")
        pending = dict(self.watcher.pending_restart)
        self.check(16, pending.get(key) == value,
                   lambda: f"{key}={text} in the file waits for a restart, yet watcher.pending_restart is {pending}")
        self.check(16, any(r.levelno >= 30 and key in r.getMessage() for r in self.logs.records[logs0:]),
                   f"no warning names {key}, changed in the file but kept until a restart")
        if key == "backup_dir" and callable(getattr(self.db, "backup", None)):
            out = self.call(None, self.absorb, self.db.backup)
            if out.ok:
                where = os.path.dirname(os.path.abspath(str(out.value.path)))
                self.check(16, where == os.path.abspath(str(old.backup_directory)),
                           f"a backup after the reload went to {where}, not to {old.backup_directory} (kept until "
                           "a restart)")
        self.write_env(self.env_lines)
        self.watcher.check_now(force=True)
        self.check(16, not self.watcher.pending_restart,
                   lambda: f"{key} is out of the file again, yet pending_restart is {self.watcher.pending_restart}")

    @precondition(swarm("reload"))
    @precondition(lambda self: getattr(self, "watcher", None) is not None and not self.faults)
    @rule(which=st.sampled_from(INVALID))
    def reload_invalid(self, which: tuple[str, str]) -> None:
        """P16: an invalid file is rejected naming the key, and the old config stays in force."""
        from reliability import ConfigError

        old = self.db.config
        self.write_env(self.env_lines, which[0])
        try:
            self.watcher.check_now(force=True)
            rejected, named = False, False
        except ConfigError as exc:
            rejected, named = True, which[1] in str(exc)
        self.check(16, rejected and named, f"invalid line {which[0]!r} was not rejected naming {which[1]}")
        self.check(16, self.db.config == old, "the config changed although the new file was rejected")
        self.write_env(self.env_lines)
        self.watcher.check_now(force=True)
        self.check_attempts(old.retry_attempts)

    def check_attempts(self, attempts: int) -> None:
        """Behaviour, not just the object: a write under a real lock makes ``attempts`` tries."""
        sleeps0, t0 = len(self.time.sleeps), self.time.now
        # The runtime itself, not its path: the holder then uses the runtime's SQLite build (a lock held
        # through another build in this process is not seen by it).
        with make_fault("locked", self.db, mode="write"):
            out = self.call("execute", self.db.execute, "INSERT INTO kv (k, v) VALUES ('locked-out', 'x')",
                            faults=["locked"])
        made = len(self.time.sleeps) - sleeps0 + 1
        cfg = self.db.config
        # Fewer tries only when the next delay could have overrun the (drawn) retry budget.
        ceiling = min(cfg.retry_max_delay, cfg.retry_base_delay * 2 ** (made - 1))
        budget_cut = made < attempts and (self.time.now - t0) + ceiling > cfg.retry_budget
        self.check(16, not out.ok and (made == attempts or budget_cut),
                   f"a locked write made {made} attempt(s); the reloaded config says {attempts}", faults=["locked"])


class ConfigMachine(ConfigMixin):
    """Reloads interleaved with the workload and its faults."""

    core_groups = frozenset(("reload",))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close")

    @precondition(swarm("reload"))
    @precondition(lambda self: getattr(self, "watcher", None) is not None and not self.faults)
    @rule(env_attempts=st.integers(1, 6), file_attempts=st.integers(1, 6), params=st.booleans(),
          via=st.sampled_from(("process", "watcher")))
    def reload_environment_wins(self, env_attempts: int, file_attempts: int, params: bool, via: str) -> None:
        """P16: a setting given in the environment and changed in the watched file keeps the environment's value
        after the reload (the environment wins over the file, at a reload as at startup), while a setting only the
        file gives takes effect. The environment is the process's (``os.environ``, read by ``db.watch_env``'s
        watcher) or the one handed to a :class:`~reliability.reload.ConfigWatcher` (``environ=``). Judged by
        behaviour too: the next locked write makes the environment's number of attempts."""
        from reliability import ConfigError
        from reliability.reload import ConfigWatcher

        if file_attempts == env_attempts:  # (the two must differ, or precedence is not observable)
            file_attempts = env_attempts % 6 + 1
        key = "RELIABILITY_RETRY_ATTEMPTS"
        lines = dict(self.env_lines, **{key: str(file_attempts)},
                     RELIABILITY_LOG_SQL_PARAMS="true" if params else "false")
        self.write_env(lines)
        saved = os.environ.get(key)
        try:
            if via == "process":
                # The process environment, as a deployment sets it; put back in ``finally`` (other examples and
                # machines of this process must not see it).
                os.environ[key] = str(env_attempts)
                watcher = self.watcher
            else:
                watcher = ConfigWatcher(self.db, self.env_path, interval=0, environ={key: str(env_attempts)})
            try:
                watcher.check_now(force=True)
            except ConfigError as exc:
                self.check(16, False, f"a valid change was rejected: {exc}")
        finally:
            if via == "process":
                if saved is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = saved
        cfg = self.db.config
        self.check(16, cfg.retry_attempts == env_attempts and cfg.log_sql_params is params,
                   f"after a reload with {key}={env_attempts} in the environment ({via}) and {file_attempts} in the "
                   f"file, retry_attempts={cfg.retry_attempts} (the environment wins, as at startup); "
                   f"log_sql_params={cfg.log_sql_params}, the file (only) says {params}")
        self.config = cfg
        self.check_attempts(env_attempts)
        self.check_params_logged(params)
        # Back to the machine's file, read with the environment as it was: the other rules' model again.
        self.write_env(self.env_lines)
        self.watcher.check_now(force=True)
        self.config = self.db.config
