"""P16 config hot reload: a valid change takes effect without a restart; an invalid one is refused."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
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


#: Settings ``reliability config show`` is judged on: the environment variable, and two spellings of a value with
#: the value each must show (the file's and the environment's differ, so which one wins is observable).
#: ``RELIABILITY_ADMIN_ACTORS`` is drawn apart (it decides "administrator").
SHOWN: dict[str, tuple[str, tuple[tuple[str, Any], tuple[str, Any]]]] = {
    "retry_attempts": ("RELIABILITY_RETRY_ATTEMPTS", (("2", 2), (" 7", 7))),
    "journal_mode": ("RELIABILITY_JOURNAL_MODE", (("DELETE", "DELETE"), ("TRUNCATE", "TRUNCATE"))),
    "log_sql_params": ("RELIABILITY_LOG_SQL_PARAMS", (("yes", True), ("off", False))),
    "backup_keep": ("RELIABILITY_BACKUP_KEEP", (("9", 9), ("1", 1))),
    "write_queue_max": ("RELIABILITY_WRITE_QUEUE_MAX", (("0", 0), ("250", 250))),
}
#: Where a drawn setting is given: nowhere (the default shows), the ``.env`` file, the environment, or both.
WHERE = ("none", "file", "env", "both")


#: ``config_reload_interval`` the timer rule sets, and how long (real seconds) it waits for the thread's reload.
TIMER_INTERVAL = 0.02
TIMER_WAIT = 10.0


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
        """Behaviour of ``log_sql_params``: the next error's technical record shows, or redacts, its parameters,
        given by position and by name (a dict: sqlite3's named placeholders) alike."""
        for sql, given in (("SELECT v FROM no_such_table_here WHERE k = ?", lambda m: (m,)),
                           ("SELECT v FROM no_such_table_here WHERE k = :k", lambda m: {"k": m})):
            marker = f"reload-{len(self.logs.records)}"
            logs0 = len(self.logs.records)
            params = given(marker)
            out = self.call("fetch_one", self.db.fetch_one, sql, params)
            op = getattr(out.error, "operation_id", None)
            records = [r for r in self.logs.records[logs0:]
                       if getattr(r, "operation_id", None) == op and hasattr(r, "params")]
            self.check(16, not out.ok and bool(records) and all((marker in str(r.params)) is shown for r in records),
                       lambda params=params, records=records: (
                           f"log_sql_params is {shown} after the reload, but the error's record of {params!r} has "
                           f"params {[getattr(r, 'params', None) for r in records]}"))

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

    @precondition(swarm("reload"))
    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(where=st.fixed_dictionaries({name: st.sampled_from(WHERE) for name in SHOWN}),
          admins=st.sampled_from(WHERE), as_json=st.booleans(),
          bad=st.one_of(st.none(), st.tuples(st.sampled_from(INVALID), st.sampled_from(("file", "env")))))
    def show_config_from_the_command_line(self, where: dict[str, str], admins: str, as_json: bool,
                                          bad: tuple[tuple[str, str], str] | None) -> None:
        """P16 at the operator's entry point: ``reliability --env FILE config show`` ("show the settings in force")
        shows each setting as the runtime loads it: the environment's value where both give one (README: "environment
        wins"), the ``.env`` file's where only it does, the default where neither does; and who the caller is (the OS
        user, an administrator exactly when named in ``RELIABILITY_ADMIN_ACTORS``). An invalid value in force (in the
        environment, or in the file and not overridden) is a configuration error: exit 4, a message naming the key,
        no traceback (README's exit codes). No rule ran the command before (``tests/machines/test_public_reach.py``).
        """
        from reliability import ReliabilityConfig
        from reliability.cli import main, os_user

        me = os_user()
        if not isinstance(self.config, ReliabilityConfig) or "'" in me:
            return
        # The expectation is built from the documented rules, not by ReliabilityConfig.from_env.
        expected: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ReliabilityConfig)}
        expected["db_path"] = self.db_path  # (--db)
        in_file: dict[str, str] = {}
        # Of the caller's environment only the SQLite build under test (as run_command_line does).
        in_env = {k: v for k, v in os.environ.items() if k == "RELIABILITY_SQLITE_MODULE"}
        if in_env:
            expected["sqlite_module"] = in_env["RELIABILITY_SQLITE_MODULE"].strip()
        settings = {**SHOWN, "admin_actors": ("RELIABILITY_ADMIN_ACTORS", ((f"alice,{me}", f"alice,{me}"),
                                                                             ("bob", "bob")))}
        for name, (key, ((file_text, file_value), (env_text, env_value))) in settings.items():
            place = admins if name == "admin_actors" else where[name]
            if place in ("file", "both"):
                in_file[key], expected[name] = file_text, file_value
            if place in ("env", "both"):
                in_env[key], expected[name] = env_text, env_value
        refused: str | None = None
        if bad is not None:
            (line, named), place = bad
            key, _, text = line.partition("=")
            (in_file if place == "file" else in_env)[key] = text
            refused = named if {**in_file, **in_env}.get(key) == text else None  # (else the environment's wins)
        env_file = os.path.join(self.dir, "operator.env")  # (not the .env the runtime watches)
        with open(env_file, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{k}='{v}'\n" for k, v in in_file.items()))
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RELIABILITY_")} | in_env
        argv = ["config", "show"]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--db", self.db_path, "--env", env_file, *(["--json"] if as_json else []), *argv],
                        environ=environ)
        said = (f"`reliability{' --json' if as_json else ''} config show` with {in_file} in the file and {in_env} in "
                "the environment")
        doc: dict[str, Any] = json.loads(out.getvalue()) if as_json else {}
        if refused is not None:
            shown = doc.get("message", "") if as_json else err.getvalue()
            self.check(16, code == 4 and refused in shown and "Traceback" not in err.getvalue()
                       and (not as_json or doc.get("status") == "configuration_error"),
                       lambda: f"{said} exited {code} ({shown.strip()!r}): an invalid {refused} is a configuration "
                               "error (exit 4) naming the key, never a traceback")
            return
        administrator = me in {a.strip() for a in str(expected["admin_actors"]).split(",")}
        you = f"you are: {me} (administrator: {'yes' if administrator else 'no'})"
        if as_json:
            value = doc.get("value") or {}
            shown = dict(value.get("settings") or {})
            wrong = [f"{k}: {shown.get(k)!r}, in force {v!r}" for k, v in expected.items() if shown.get(k) != v]
            wrong += [f"{k}: {v!r}" for k, v in shown.items() if k not in expected]
            if (value.get("os_user"), value.get("administrator")) != (me, administrator):
                wrong.append(f"caller {value.get('os_user')!r} (administrator: {value.get('administrator')}), "
                             f"expected {me!r} ({administrator})")
        else:
            lines = set(out.getvalue().splitlines())
            wrong = [f"no line {line!r}" for line in [*(f"{k} = {v}" for k, v in expected.items()), you]
                     if line not in lines]
        self.check(16, code == 0 and not wrong,
                   lambda: f"{said} exited {code}; wrong: {wrong} (the environment wins over the file, the default "
                           "shows where neither gives a value)")

    @precondition(swarm("reload"))
    @precondition(lambda self: getattr(self, "watcher", None) is not None and not self.faults)
    @rule(attempts=st.integers(1, 6))
    def reload_on_the_timer(self, attempts: int) -> None:
        """P16 with no call: ``config_reload_interval`` set in the watched file starts the watcher's own thread
        (``db.watch_env(path)`` follows that setting), which then applies the file's next change by itself; the
        next locked write makes the new number of attempts. Real time: the rule waits (bounded) for the thread."""
        import time

        if attempts == self.db.config.retry_attempts:
            attempts = attempts % 6 + 1  # (a change the wait can see)
        timed = self.db.watch_env(self.env_path)  # (replaces the machine's watcher: put back below)
        try:
            paced = dict(self.env_lines, RELIABILITY_CONFIG_RELOAD_INTERVAL=str(TIMER_INTERVAL))
            self.write_env(paced)
            timed.check_now(force=True)  # the interval itself comes in by a call
            pace = self.db.config.config_reload_interval
            self.check(16, pace == TIMER_INTERVAL, lambda: (
                f"config_reload_interval={TIMER_INTERVAL} in the watched file, {pace} in force after a reload"))
            # Another size as well as another mtime: a write in the same clock tick would otherwise look unchanged.
            self.write_env(dict(paced, RELIABILITY_RETRY_ATTEMPTS=str(attempts)), extra="# changed on the timer")
            deadline = time.monotonic() + TIMER_WAIT
            while self.db.config.retry_attempts != attempts and time.monotonic() < deadline:
                time.sleep(0.005)
            applied = self.db.config.retry_attempts == attempts
            self.check(16, applied, lambda: (
                f"config_reload_interval={TIMER_INTERVAL} in the watched file, then retry_attempts={attempts}: "
                f"not applied within {TIMER_WAIT} s without a call (retry_attempts={self.db.config.retry_attempts}, "
                f"the watcher's reloads: {timed.reloads})"))
            if applied:
                self.config = self.db.config
                self.check_attempts(attempts)
        finally:
            # The machine's file and its explicit watcher again (the timer's thread stops with the interval at 0).
            self.write_env(self.env_lines)
            timed.check_now(force=True)
            self.watcher = self.db.watch_env(self.env_path, interval=0)
            self.config = self.db.config
