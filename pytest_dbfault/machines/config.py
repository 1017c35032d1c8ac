"""P16 config hot reload: a valid change takes effect without a restart; an invalid one is refused."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ..faults.registry import make_fault
from ..stats import STATS
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
#: Texts of ``config_reload_interval`` 0 (off) the timer rule turns the timer off with, and how long (real seconds, five
#: of the timer's intervals) it then waits to see that nothing reloads without a call.
TIMER_OFF = ("0", "0.0", "00", "0.000")
TIMER_OFF_WAIT = 5 * TIMER_INTERVAL


_BOOLS: tuple[tuple[str, Any], ...] = (("on", True), ("0", False), ("TRUE", True), ("no", False), ("Yes", True),
                                       ("off", False))
_INTERVALS: tuple[tuple[tuple[str, Any], ...], tuple[str, ...]] = (
    (("0", 0.0), ("7200", 7200.0), ("3600.5", 3600.5)), ("-5", "31622401", "1e400", "hourly"))
#: The sweep's settings (README "Configuration"): each key's valid texts in a ``.env`` file with the value each must
#: give, and texts the key must refuse by itself. ``{dir}`` is the example's directory. Long intervals only: nothing
#: scheduled runs during the example. (The logging threshold is left out: nothing in the runtime follows it on a
#: reload; ``log_level_threshold`` judges what it is for, ``configure_logging``.) Every valid ``retry_base_delay`` lies
#: below every valid ``retry_max_delay`` except ``0.1`` / ``0.001``: the two refuse each other (max >= base), which
#: the model tells apart.
SWEEP: dict[str, tuple[tuple[tuple[str, Any], ...], tuple[str, ...]]] = {
    # read when a connection opens: the next call runs with the new pragma
    "busy_timeout_ms": ((("10", 10), ("40", 40), (" 80 ", 80)), ("-1", "86400001", "soon", "1.5")),
    "journal_mode": ((("DELETE", "DELETE"), ("wal", "wal"), ("Truncate", "Truncate"), ("PERSIST", "PERSIST"),
                      (" delete ", "delete")),
                     ("sideways", "WAL2", "")),
    "synchronous": ((("normal", "normal"), ("FULL", "FULL"), ("Extra", "Extra"), (" full ", "full")),
                    ("sometimes", "")),
    "foreign_keys": (_BOOLS, ("maybe", "2")),
    # from the next operation on
    "retry_attempts": ((("1", 1), ("3", 3), (" 6", 6)), ("0", "1001", "three", "2.5")),
    "retry_base_delay": ((("0", 0.0), ("0.005", 0.005), ("0.03", 0.03), ("0.1", 0.1)), ("-0.1", "nan", "3601", "fast")),
    "retry_max_delay": ((("0.001", 0.001), ("0.04", 0.04), ("0.5", 0.5), ("2", 2.0)), ("-1", "inf", "3601")),
    "retry_budget": ((("0", 0.0), ("0.5", 0.5), ("60", 60.0)), ("-1", "86401", "soon")),
    "backup_interval": _INTERVALS,
    "health_check_interval": _INTERVALS,
    "quick_check_interval": _INTERVALS,
    "integrity_check_interval": _INTERVALS,
    "backup_keep": ((("1", 1), ("7", 7)), ("0", "100001", "many")),
    "write_queue_max": ((("0", 0), ("250", 250)), ("-1", "100000001", "lots")),
    "auto_migrate": (_BOOLS, ("sometimes",)),
    "auto_recover": (_BOOLS, ("2",)),
    "log_sql_params": (_BOOLS, ("maybe",)),
    "log_json": (_BOOLS, ("json",)),
    "operation_log": (_BOOLS, ("verbose",)),
    "operation_log_path": ((("{dir}/sweep-ops.log", "{dir}/sweep-ops.log"), ("", "")), ()),
    "admin_actors": ((("alice,bob", "alice,bob"), (" carol ", "carol"), ("", "")), ()),
    "audit_hmac_key": ((("sweep-key-1", "sweep-key-1"), ("another key", "another key")), ()),
    "audit_previous_keys": ((("old-1", "old-1"), ("old-1,old-2", "old-1,old-2")), ("old-1,,old-2", "old-1,")),
    "config_reload_interval": ((("0", 0.0), ("3600", 3600.0)), ("-1", "nan")),
    # read at start only: kept, and waiting in pending_restart
    "db_path": ((("{dir}/elsewhere.db", "{dir}/elsewhere.db"),), ("",)),
    "sqlite_module": ((("sqlite3", "sqlite3"), ("pysqlite3.dbapi2", "pysqlite3.dbapi2")), ()),
    "redo_journal": (_BOOLS, ("never",)),
    "backup_dir": ((("{dir}/sweep-backups", "{dir}/sweep-backups"),), ()),
    "write_queue_path": ((("{dir}/sweep-queue.jsonl", "{dir}/sweep-queue.jsonl"),), ()),
    "audit_fallback_path": ((("{dir}/sweep-fallback.jsonl", "{dir}/sweep-fallback.jsonl"),), ()),
}
#: Misspelt setting names: the rejection names the misspelling and suggests the setting meant.
TYPOS = (("RELIABILITY_RETRY_ATEMPTS", "3", "RELIABILITY_RETRY_ATTEMPTS"),
         ("RELIABILITY_BUSY_TIMEOUT", "10", "RELIABILITY_BUSY_TIMEOUT_MS"),
         ("RELIABILITY_JOURNALMODE", "WAL", "RELIABILITY_JOURNAL_MODE"),
         ("RELIABILITY_BACKUPS_KEEP", "2", "RELIABILITY_BACKUP_KEEP"))
#: What one edit of the sweep does to the watched file: set a key to a valid text or to an invalid one, take a key out
#: of the file, misspell a key.
SWEEP_ACTIONS = ("good", "good", "good", "good", "good", "bad", "bad", "bad", "remove", "typo")
#: An edit of the whole file a step may make after its edits of settings (mostly none): write bytes that are not
#: UTF-8, or remove the file (an editor's save in progress).
SWEEP_WHOLE = ("",) * 10 + ("binary", "missing")
#: How a line's value is written: bare, in single quotes, in double quotes (python-dotenv takes each).
QUOTES = ("", "'", '"')


#: Settings the README marks *restart* (a reload keeps the running value and lists the file's in ``pending_restart``),
#: and the ones SQLite reads when a connection opens (a reload reopens it: the next call runs with the new pragma).
#: Written out here from the README, not taken from the runtime.
RESTART_SETTINGS = frozenset({"db_path", "sqlite_module", "redo_journal", "backup_dir", "write_queue_path",
                              "audit_fallback_path"})
SECRET_SETTINGS = ("audit_hmac_key", "audit_previous_keys")
SYNCHRONOUS_PRAGMA = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


def env_name(key: str) -> str:
    return "RELIABILITY_" + key.upper()


_TRUTH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False,
          "": False}


def parse_setting(text: str, kind: str) -> Any:
    """A ``.env`` text as the README says a setting of type ``kind`` reads it (booleans: true/false, 1/0, yes/no,
    on/off)."""
    text = text.strip().strip("'\"").strip()
    if kind == "bool":
        return _TRUTH[text.lower()]
    return int(text) if kind == "int" else float(text) if kind == "float" else text


class SweepFile:
    """The model of the watched ``.env`` file during one :meth:`ConfigMachine.reload_sweep`, and of what a reload of
    it must put in force (README "Configuration", built from the documented rules, not by the runtime's loader).

    ``start`` is the configuration in force when the sweep began, with the machine's own lines (``base_lines``) in the
    file: it is also the watcher's base, so a setting taken out of the file goes back to it (not to the library's
    default). ``good`` holds the valid texts the sweep wrote (key -> text, value, quote), ``bad`` the invalid lines
    (environment name -> text, quote), ``meant`` the setting each misspelt name stands for."""

    def __init__(self, base_lines: dict[str, str], start: dict[str, Any], directory: str) -> None:
        self.base_lines = dict(base_lines)
        self.start = dict(start)
        self.dir = directory
        self.good: dict[str, tuple[str, Any, str]] = {}
        self.bad: dict[str, tuple[str, str]] = {}
        self.meant: dict[str, str] = {}

    def text(self) -> str:
        entries = dict(self.base_lines)
        for key, (text, _value, quote) in self.good.items():
            entries[env_name(key)] = f"{quote}{text}{quote}"
        for name, (text, quote) in self.bad.items():
            entries[name] = f"{quote}{text}{quote}"
        return "".join(f"{name}={value}\n" for name, value in entries.items())

    def file_value(self, key: str) -> Any:
        return self.good[key][1] if key in self.good else self.start[key]

    def expected(self) -> dict[str, Any]:
        """Every setting in force after a valid reload of the file as it is."""
        return {k: self.start[k] if k in RESTART_SETTINGS else self.file_value(k) for k in self.start}

    def pending(self) -> dict[str, Any]:
        """The restart-only settings the file changes, with the file's value."""
        return {k: self.file_value(k) for k in RESTART_SETTINGS if self.file_value(k) != self.start[k]}

    def secrets(self) -> list[str]:
        """The secret texts in the file (never to be echoed by a rejection)."""
        found = [self.good[k][0] for k in SECRET_SETTINGS if k in self.good]
        found += [text for name, (text, _q) in self.bad.items() if name in map(env_name, SECRET_SETTINGS)]
        return [piece.strip() for text in found for piece in text.split(",") if piece.strip()]

    def problems(self) -> tuple[set[str], set[str]]:
        """The names a rejection of the file must name, and ones it may name besides: with ``retry_base_delay``
        unreadable, ``retry_max_delay`` may be judged against the default base delay."""
        required, tolerated = set(self.bad), set()
        base, top = env_name("retry_base_delay"), env_name("retry_max_delay")
        if base not in self.bad and top not in self.bad:
            if self.file_value("retry_max_delay") < self.file_value("retry_base_delay"):
                required.add(top)
        elif base in self.bad and top not in self.bad:
            tolerated.add(top)
        return required, tolerated


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
        # Saved whole (a temporary file renamed over it), as most editors do: a save in place (truncate, then write)
        # stalled longer than the timer's 20 ms interval on a loaded machine is seen settled while empty, which the
        # watcher may apply (the runtime waits for one look of settling only; tests/test_reload.py covers the save
        # in place that completes within an interval).
        text = "".join(f"{k}={v}\n" for k, v in lines.items()) + (extra + "\n" if extra else "")
        temporary = self.env_path + ".saving"
        with open(temporary, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temporary, self.env_path)

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
        With the settings valid, ``config`` with its action left out is a usage error (exit 2) naming ACTION.
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
            # README: "Every invalid value is reported at once with where it was set (`.env:12`, the line of its
            # last assignment, or `environment`)": the value in force is the environment's when it gives one.
            origin = "environment" if refused in in_env else f"{env_file}:{list(in_file).index(refused) + 1}"
            self.check(16, code != 4 or f"{origin}: {refused}=" in shown,
                       lambda: f"{said} exited {code} ({shown.strip()!r}): the invalid {refused} is in force from "
                               f"{origin}, and the message must say so ('{origin}: {refused}=...')")
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
        # The same settings, the action left out: ``config`` alone names no action (``config ACTION``, its help),
        # bad arguments: exit 2 (``usage_error``, README's exit codes) saying what is missing, never an internal
        # error (exit 3, "a bug in dbfault") nor a traceback.
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--db", self.db_path, "--env", env_file, *(["--json"] if as_json else []), "config"],
                        environ=environ)
        shown = json.loads(out.getvalue()).get("message", "") if as_json else err.getvalue()
        status = json.loads(out.getvalue()).get("status") if as_json else "usage_error"
        self.check(16, code == 2 and status == "usage_error" and "ACTION" in shown
                   and "Traceback" not in err.getvalue(),
                   lambda: f"`reliability{' --json' if as_json else ''} config` (no action) exited {code} "
                           f"({status}: {shown.strip()!r}): an action left out is a usage error (exit 2) that "
                           "says ACTION is required")

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
                self.timer_turned_off(timed, paced, attempts)
        finally:
            # The machine's file and its explicit watcher again (the timer's thread stops with the interval at 0).
            self.write_env(self.env_lines)
            timed.check_now(force=True)
            self.watcher = self.db.watch_env(self.env_path, interval=0)
            self.config = self.db.config

    def timer_turned_off(self, timed: Any, paced: dict[str, str], attempts: int) -> None:
        """P16, ``config_reload_interval`` 0 (README: "0 = off"): set to zero (a text of zero drawn from
        ``attempts``) in the file the timer watches, the watcher stops checking by itself; a later change of the file
        is not applied without a call (within several of the old intervals), and the next ``check_now()`` applies
        it."""
        import time

        off = TIMER_OFF[attempts % len(TIMER_OFF)]
        self.write_env(dict(paced, RELIABILITY_RETRY_ATTEMPTS=str(attempts), RELIABILITY_CONFIG_RELOAD_INTERVAL=off),
                       extra="# the timer off")
        timed.check_now(force=True)
        pace = self.db.config.config_reload_interval
        self.check(16, pace == 0, lambda: f"config_reload_interval={off} in the watched file, {pace} in force after "
                                          "a reload")
        later = attempts % 6 + 1
        # (another size as well as another mtime: see reload_on_the_timer)
        self.write_env(dict(paced, RELIABILITY_RETRY_ATTEMPTS=str(later), RELIABILITY_CONFIG_RELOAD_INTERVAL=off),
                       extra="# changed with the timer off, to be applied by a call")
        reloads = timed.reloads
        time.sleep(TIMER_OFF_WAIT)
        now = self.db.config.retry_attempts
        self.check(16, now == attempts and timed.reloads == reloads, lambda: (
            f"config_reload_interval={off} (off) in the watched file, then retry_attempts={later}: applied without a "
            f"call within {TIMER_OFF_WAIT} s (retry_attempts={now}, the watcher's reloads {reloads} -> "
            f"{timed.reloads}): 0 turns the checks off"))
        timed.check_now()
        self.check(16, self.db.config.retry_attempts == later, lambda: (
            f"config_reload_interval={off} (off), then retry_attempts={later}: check_now() left "
            f"retry_attempts={self.db.config.retry_attempts}"))

    #: the last modification time the sweep gave the watched file (each write gets a later one: a stat() sees it)
    sweep_mtime = 0

    def sweep_touch(self) -> None:
        st = os.stat(self.env_path)
        ns = max(st.st_mtime_ns, self.sweep_mtime + 1_000_000)
        os.utime(self.env_path, ns=(ns, ns))
        self.sweep_mtime = ns

    @precondition(lambda self: getattr(self, "watcher", None) is not None and not self.faults)
    @rule(steps=st.lists(st.tuples(st.lists(st.tuples(st.sampled_from(tuple(SWEEP)), st.sampled_from(SWEEP_ACTIONS),
                                                      st.integers(0, 11), st.sampled_from(QUOTES)),
                                            min_size=1, max_size=3), st.sampled_from(SWEEP_WHOLE), st.booleans()),
                         min_size=4, max_size=12))
    def reload_sweep(self, steps: list[tuple[list[tuple[str, str, int, str]], str, bool]]) -> None:
        """P16 for every setting and the watcher's state, against a model of the watched file (README
        "Configuration"). Each step edits the file: a setting set to a valid text (bare or quoted) or to an invalid
        one, taken out again, a misspelt name, bytes that are not UTF-8, or the file removed (one to three edits at
        once); then ``check_now()``.

        * A valid file: the settings in force are the file's (a setting not in it: the watcher's base, not the
          library's default), except the restart-only ones, which keep their running value and wait in
          ``pending_restart`` with the file's value (a warning names each); ``check_now()`` returns exactly the
          settings that changed, a subscriber hears ``(old, new, changed)`` once (nothing when nothing changed),
          ``reloads`` counts it, ``last_error`` is None again, ``describe()`` shows the settings in force with the
          audit keys masked; and every part follows from the next call: the pragmas of the new connection, the
          retry policy, the schedule, the backups kept and their lock wait, the queue bound, the operation log,
          the parameters in logs.
        * An invalid file: ``ConfigError`` naming every invalid key at once (a misspelling with the setting meant,
          the source file, never an audit key's text), an error logged naming them, nothing changed, nobody told,
          and ``last_error`` says so until a valid version is applied.
        * No file (an editor's save in progress): nothing changes.
        * A second check of an unchanged file changes nothing.
        """
        from reliability import ConfigError
        from reliability.reload import describe

        overridden = {k[len("RELIABILITY_"):].lower() for k in os.environ if k.startswith("RELIABILITY_")}
        # In step with the machine's file first: reloaded as it is, it gives the watcher's base with the file's
        # lines on top. Then a watcher of the sweep's own (its subscriber hears this sweep).
        self.sweep_in_step(overridden)
        self.watcher = watcher = self.db.watch_env(self.env_path, interval=0)
        heard: list[tuple[Any, Any, tuple[str, ...]]] = []

        def listener(old: Any, new: Any, changed: tuple[str, ...]) -> None:
            heard.append((old, new, tuple(changed)))

        self.check(16, watcher.subscribe(listener) is listener, "watcher.subscribe(fn) does not return fn")
        start = self.db.config
        model = SweepFile(self.env_lines, dataclasses.asdict(start), self.dir)
        done: list[str] = []
        try:
            for edits, whole, forced in steps:
                for key, action, pick, quote in edits:
                    if key not in overridden:  # (the environment wins over the file: not this sweep's business)
                        self.sweep_edit(model, key, action, pick, quote, done)
                if whole:
                    done.append("the file removed" if whole == "missing" else "bytes that are not UTF-8 written")
                said = f"the watched file edited ({'; '.join(done)}), check_now(force={forced})"
                self.sweep_step(watcher, model, whole or "edit", forced, heard, said, describe, ConfigError)
        except BaseException:
            with contextlib.suppress(Exception):
                self.write_env(self.env_lines)
                watcher.check_now(force=True)
                self.config = self.db.config
            raise
        # The machine's file again: everything the sweep changed goes back to the base.
        self.write_env(self.env_lines)
        self.sweep_touch()
        try:
            watcher.check_now(force=True)
            failed = None
        except ConfigError as exc:
            failed = exc
        self.config = now = self.db.config
        wrong = [f"{k}={v!r} (was {dataclasses.asdict(start)[k]!r})" for k, v in dataclasses.asdict(now).items()
                 if dataclasses.asdict(start)[k] != v]
        self.check(16, failed is None and not wrong and watcher.last_error is None and not watcher.pending_restart,
                   lambda: f"after the sweep ({'; '.join(done)}) the machine's own file was reloaded: rejected "
                           f"({failed}), or settings not back to the base: {wrong}, last_error {watcher.last_error!r}, "
                           f"pending_restart {watcher.pending_restart}")

    #: The sweep drawn twice as often as any other rule (a second name for the same rule): it is the model of every
    #: setting, and each of its steps costs a few milliseconds.
    reload_sweep_again = reload_sweep

    def sweep_edit(self, model: SweepFile, key: str, action: str, pick: int, quote: str, done: list[str]) -> None:
        """Apply one edit to the model of the file (``done`` says what was done)."""
        goods, bads = SWEEP[key]
        if action == "bad" and not bads:
            action = "good"
        if action == "good":
            text, value = goods[pick % len(goods)]
            text = text.format(dir=self.dir)
            value = value.format(dir=self.dir) if isinstance(value, str) else value
            model.good[key] = (text, value, quote)
            model.bad.clear()  # (the operator fixed the file)
            done.append(f"{env_name(key)}={quote}{text}{quote}")
        elif action == "remove":
            model.good.pop(key, None)
            model.bad.clear()
            done.append(f"{env_name(key)} back to the machine's file")
        elif action == "bad":
            model.bad[env_name(key)] = (bads[pick % len(bads)], quote)
            done.append(f"{env_name(key)}={quote}{bads[pick % len(bads)]}{quote} (invalid)")
        else:
            name, text, meant = TYPOS[pick % len(TYPOS)]
            model.bad[name], model.meant[name] = (text, quote), meant
            done.append(f"{name}={text} (misspelt)")

    def sweep_in_step(self, overridden: set[str]) -> None:
        """The machine's own file (``env_lines``) reloaded: every setting it gives in force, every other one the
        watcher's base (what the manager was given; a setting absent from the file does not fall back to the
        library's default), the watcher's ``last_error`` None."""
        from reliability import ConfigError, ReliabilityConfig

        watcher = self.watcher
        base = dataclasses.asdict(watcher.base)
        self.write_env(self.env_lines)
        self.sweep_touch()
        try:
            watcher.check_now(force=True)
            failed = None
        except ConfigError as exc:
            failed = exc
        types = {f.name: str(f.type) for f in dataclasses.fields(ReliabilityConfig)}
        in_force = dataclasses.asdict(self.db.config)
        wrong = []
        for key, value in base.items():
            if key in overridden or key in RESTART_SETTINGS:
                continue
            text = self.env_lines.get(env_name(key))
            want = value if text is None else parse_setting(text, types[key])
            if in_force[key] != want:
                where = "the base gives" if text is None else "the file says"
                wrong.append(f"{key}={in_force[key]!r} in force, {where} {want!r}")
        self.check(16, failed is None and not wrong and watcher.last_error is None, lambda: (
            f"the machine's own file {self.env_lines} reloaded on the watcher's base: rejected ({failed}), or "
            f"{'; '.join(wrong) or 'the settings as expected'}, last_error {watcher.last_error!r}"))
        self.config = self.db.config

    def sweep_step(self, watcher: Any, model: SweepFile, action: str, forced: bool, heard: list[Any], said: str,
                   describe: Any, config_error: type[Exception]) -> None:
        """One edit of :meth:`reload_sweep`: write the file as the model says, check it, judge the outcome."""
        old, reloads0, heard0, logs0 = self.db.config, watcher.reloads, len(heard), len(self.logs.records)
        error0 = watcher.last_error
        if action == "missing":
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.env_path)
        else:
            with open(self.env_path, "wb") as fh:
                fh.write(model.text().encode("utf-8") + (b"RELIABILITY_LOG_LEVEL=caf\xe9\n" if action == "binary"
                                                         else b""))
            self.sweep_touch()
        raised: Any = None
        got: tuple[str, ...] = ()
        try:
            got = watcher.check_now(force=forced)
        except config_error as exc:
            raised = exc
        now = self.db.config
        if action == "missing":
            self.check(16, raised is None and got == () and now == old and watcher.last_error is error0
                       and len(heard) == heard0, lambda: (
                           f"{said}: with no file check_now() returned {got} (raised {raised!r}); the settings "
                           f"{'changed' if now != old else 'stayed'}, last_error {watcher.last_error!r} (was "
                           f"{error0!r}), subscribers told {len(heard) - heard0}x (an editor's save in progress "
                           "changes nothing)"))
            return
        if action == "binary":
            required, tolerated = {"file"}, set()
        else:
            required, tolerated = model.problems()
        if required:
            self.sweep_rejected(watcher, model, raised, required, tolerated, old, reloads0, heard, heard0, logs0, said)
        else:
            self.sweep_applied(watcher, model, raised, got, old, reloads0, heard, heard0, logs0, said, describe)
        # A second check of the file as it is (no edit since) changes nothing, and the watcher's state stays; it
        # says nothing about the configuration either (``check_now``: "reload if the file changed"): a watcher that
        # reread an unchanged file would warn again of every restart-only setting waiting in it, at every look of
        # its thread (session 29 survivor ``reload.py:231``, the file's signature not remembered).
        cfg, last, said0 = self.db.config, watcher.last_error, len(self.logs.records)
        again: Any = None
        try:
            again = watcher.check_now()
        except config_error as exc:
            again = exc
        self.check(16, self.db.config == cfg and (again == () or (required and isinstance(again, config_error)))
                   and str(watcher.last_error) == str(last), lambda: (
                       f"{said}, then check_now() again with the file unchanged: returned {again!r}, the settings "
                       f"{'changed' if self.db.config != cfg else 'stayed'}, last_error {watcher.last_error!r} "
                       f"(was {last!r})"))
        told = [r.getMessage() for r in self.logs.records[said0:] if hasattr(r, "config_keys")]
        self.check(16, not told, lambda: (
            f"{said}, then check_now() again with the file unchanged: it logged about the configuration again "
            f"({told[:2]}): an unchanged file is not read again"))

    def sweep_rejected(self, watcher: Any, model: SweepFile, raised: Any, required: set[str], tolerated: set[str],
                       old: Any, reloads0: int, heard: list[Any], heard0: int, logs0: int, said: str) -> None:
        """An invalid file: refused naming every invalid key at once, nothing changed, the watcher says so."""
        named = {k for k, _v, _r in getattr(raised, "problems", ())}
        text = str(raised)
        wrong = []
        if raised is None:
            wrong.append("nothing was raised")
        else:
            if not required <= named <= required | tolerated:
                wrong.append(f"it names {sorted(named)}, the invalid ones are {sorted(required)}")
            wrong += [f"the message does not name {k}" for k in required if k not in text]
            if str(getattr(raised, "source", "")) != str(self.env_path):
                wrong.append(f"its source is {getattr(raised, 'source', None)!r}, not the file")
            for name, meant in model.meant.items():
                reasons = [r for k, _v, r in raised.problems if k == name]
                if name in required and not any(meant in r for r in reasons):
                    wrong.append(f"{name} is not said to be likely {meant} ({reasons})")
            wrong += ["it shows an audit key's text" for s in model.secrets() if s in text][:1]
            if not any(r.levelno >= 40 and all(k in r.getMessage() for k in required)
                       for r in self.logs.records[logs0:]):
                wrong.append("no error logged naming them")
        if self.db.config != old:
            wrong.append("the settings in force changed")
        if len(heard) != heard0 or watcher.reloads != reloads0:
            wrong.append(f"subscribers told {len(heard) - heard0}x, reloads {reloads0} -> {watcher.reloads}")
        if raised is not None and (not isinstance(watcher.last_error, type(raised))
                                   or str(watcher.last_error) != text):
            wrong.append(f"watcher.last_error is {watcher.last_error!r}, not the rejection")
        self.check(16, not wrong, lambda: f"{said}: an invalid file ({sorted(required)}): {'; '.join(wrong)}")

    def sweep_applied(self, watcher: Any, model: SweepFile, raised: Any, got: tuple[str, ...], old: Any,
                      reloads0: int, heard: list[Any], heard0: int, logs0: int, said: str, describe: Any) -> None:
        """A valid file: its settings in force (restart-only ones pending), the watcher's state, every part."""
        expected = model.expected()
        now = self.db.config
        in_force = dataclasses.asdict(now)
        before = dataclasses.asdict(old)
        changed = {k for k in expected if expected[k] != before[k]}
        wrong = []
        if raised is not None:
            wrong.append(f"rejected: {raised}")
        wrong += [f"{k}={in_force[k]!r} in force, expected {v!r}" for k, v in expected.items() if in_force[k] != v]
        if set(got) != changed and raised is None:
            wrong.append(f"check_now() returned {got}, the settings changed are {sorted(changed)}")
        told = heard[heard0:]
        if told != ([(old, now, tuple(got))] if got else []):
            wrong.append(f"subscribers were told {[(c, n is now) for _o, n, c in told]} (once, with the changed keys, "
                         "the old and the new settings, when something changed)")
        if watcher.reloads != reloads0 + (1 if got else 0):
            wrong.append(f"reloads went from {reloads0} to {watcher.reloads}")
        if watcher.last_error is not None:
            wrong.append(f"watcher.last_error is still {watcher.last_error!r} after a valid version was applied")
        pending = model.pending()
        if dict(watcher.pending_restart) != pending:
            wrong.append(f"pending_restart is {watcher.pending_restart}, the file's restart-only changes {pending}")
        wrong += [f"no warning names {k}, changed in the file and kept until a restart" for k in pending
                  if not any(r.levelno == 30 and k in r.getMessage() for r in self.logs.records[logs0:])]
        shown = describe(now)
        masked = {k: ("***" if k in SECRET_SETTINGS and v else v) for k, v in expected.items()}
        if shown != masked:
            wrong.append(f"describe() shows {sorted((k, v) for k, v in shown.items() if masked.get(k) != v)}")
        if not wrong:
            wrong = self.sweep_effects(expected, logs0)
        self.check(16, not wrong, lambda: f"{said}: {'; '.join(wrong)}")

    def sweep_effects(self, expected: dict[str, Any], logs0: int) -> list[str]:
        """What every part of the runtime runs with after a reload: ``expected`` from the next call on."""
        from reliability import DatabaseError

        db, wrong = self.db, []

        def pragmas() -> dict[str, Any]:
            return {p: db.fetch_one(f"PRAGMA {p}")[0] for p in ("busy_timeout", "foreign_keys", "synchronous",
                                                                 "journal_mode")}

        try:
            got = self.absorb(pragmas)
        except DatabaseError as exc:
            return [f"the next call failed: {exc}"]
        want = {"busy_timeout": expected["busy_timeout_ms"], "foreign_keys": int(expected["foreign_keys"]),
                "synchronous": SYNCHRONOUS_PRAGMA[expected["synchronous"].upper()],
                "journal_mode": expected["journal_mode"].lower()}
        kept = any("journal_mode" in r.getMessage() and "kept" in r.getMessage() for r in self.logs.records[logs0:])
        for name, value in want.items():
            seen = str(got[name]).lower() if name == "journal_mode" else got[name]
            if seen != value and not (name == "journal_mode" and kept):  # (SQLite may keep a mode: logged)
                wrong.append(f"the next call runs with PRAGMA {name}={got[name]}, expected {value}")
        policy = getattr(db, "policy", None)
        if policy is not None:
            wrong += [f"the retry policy's {attr} is {getattr(policy, attr)}, {key}={expected[key]} in force"
                      for attr, key in (("attempts", "retry_attempts"), ("base_delay", "retry_base_delay"),
                                        ("max_delay", "retry_max_delay"), ("budget", "retry_budget"))
                      if getattr(policy, attr) != expected[key]]
        durability = getattr(db, "durability", None)
        if durability is not None:
            tasks = {name: every for name, every, _fn in durability.scheduler.tasks}
            wrong += [f"the schedule runs {task} every {tasks.get(task, 0)} s, {task}_interval="
                      f"{expected[task + '_interval']}"
                      for task in ("backup", "quick_check", "integrity_check", "health_check")
                      if tasks.get(task, 0) != expected[task + "_interval"]]
            backups = durability.backups
            if backups.keep != expected["backup_keep"] or backups.busy_timeout != expected["busy_timeout_ms"] / 1000:
                wrong.append(f"backups keep {backups.keep} and wait {backups.busy_timeout} s on a lock, backup_keep="
                             f"{expected['backup_keep']} and busy_timeout_ms={expected['busy_timeout_ms']} in force")
        journal = getattr(db, "redo_journal", None)
        if journal is not None:
            level = expected["synchronous"].upper()
            if (journal.fsync, journal.sync_marks) != (level in ("FULL", "EXTRA"), level == "EXTRA"):
                wrong.append(f"the redo journal flushes its records: {journal.fsync}, its marks: {journal.sync_marks}; "
                             f"synchronous={expected['synchronous']} in force")
        queue = getattr(db, "queue", None)
        if queue is not None and queue.max_entries != expected["write_queue_max"]:
            wrong.append(f"the write queue's bound is {queue.max_entries}, write_queue_max="
                         f"{expected['write_queue_max']}")
        # (Without a file the records go through the ``reliability.oplog`` logger: nothing is installed while it
        # is not enabled for INFO, reliability/oplog.py.)
        logged = bool(expected["operation_log_path"]) or logging.getLogger("reliability.oplog").isEnabledFor(
            logging.INFO)
        if (getattr(db, "oplog", None) is not None) is not (expected["operation_log"] and logged):
            wrong.append(f"the operation log is {'on' if db.oplog is not None else 'off'}, operation_log="
                         f"{expected['operation_log']}, operation_log_path={expected['operation_log_path']!r}")
        oplog = getattr(db, "oplog", None)
        if oplog is not None and (oplog.json_lines is not expected["log_json"]
                                  or str(oplog.path or "") != expected["operation_log_path"]):
            wrong.append(f"the operation log writes {'JSON' if oplog.json_lines else 'text'} to {oplog.path}, "
                         f"log_json={expected['log_json']}, operation_log_path={expected['operation_log_path']!r}")
        errors = getattr(db, "errors", None)
        if errors is not None and errors.show_params is not expected["log_sql_params"]:
            wrong.append(f"SQL parameters {'are' if errors.show_params else 'are not'} logged, log_sql_params="
                         f"{expected['log_sql_params']}")
        return wrong

    # -- the operation log's two forms ----------------------------------------------------------------------------
    #: The fields of an operation record (README "operation_log": one structured record per database operation;
    #: reliability/oplog.py's example), written out here, not taken from the runtime.
    OPLOG_FIELDS = ("ts", "operation_id", "kind", "sql", "duration_ms", "rows", "attempts", "outcome", "error_kind")
    #: The statements one run of :meth:`operation_log_forms` makes, drawn.
    OPLOG_OPS = st.lists(st.sampled_from(("insert", "many", "one", "none", "all", "refused")), min_size=0, max_size=4)
    oplog_forms = 0

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(json_first=st.booleans(), ops=OPLOG_OPS, many=st.integers(0, 3), slow_at=st.integers(0, 5))
    def operation_log_forms(self, json_first: bool, ops: list[str], many: int, slow_at: int) -> None:
        """P17 in both forms of the operation log file: ``operation_log`` on, ``operation_log_path`` set, ``log_json``
        each way in turn (a JSON object per line, or ``key=value`` text; which first is drawn). A manager started so
        on the machine's file makes a drawn run of statements (an insert, an ``executemany`` of 0..3 rows and the
        transaction the runtime wraps it in, a ``fetch_one`` that finds its row or none, a ``fetch_all``, an insert
        the database refuses: NOT NULL; and, at a drawn place, a slow query of a few milliseconds), then closes
        (which writes what is buffered). Its file holds one record per statement, in order, with every field in
        either form: the kind of call, the SQL text, the rows (affected, or returned), one attempt, the outcome
        (``error`` and the kind ``constraint`` for the refused one), a duration in milliseconds no longer than the
        call took (and most of it for the slow query), a time within the run, and operation ids ``<id_prefix>-o<n>``
        one after another. The text form promises what the JSON form does: the same model judges both. The second
        form's file is named in a directory not made yet: the runtime makes it (as it makes its other files')."""
        ops = [*ops[:slow_at], "slow", *ops[slow_at:]]
        for as_json in (json_first, not json_first):
            self.operation_log_form(as_json, ops, many, fresh_dir=as_json is not json_first)

    def operation_log_form(self, as_json: bool, ops: list[str], many: int, fresh_dir: bool = False) -> None:
        """One manager's run of :meth:`operation_log_forms`, with ``log_json`` set to ``as_json``. ``fresh_dir``:
        the file is named in a directory that does not exist yet (the second form of each run): the runtime makes
        it, as it makes the directories of its other files (backup_dir, the write queue, the audit fallback), and
        the records are all there."""
        import time

        from .base import default_runtime_factory

        type(self).oplog_forms += 1
        run = f"{os.getpid()}-{type(self).oplog_forms}"
        where = os.path.join(self.dir, f"ops-{run}.d", "logs") if fresh_dir else self.dir
        path = os.path.join(where, f"ops-{run}.{'jsonl' if as_json else 'log'}")
        word = f"{self.pick('word')}-{run}"  # (a note no other run inserted)
        table = "oplog_notes"
        mark = f"/* dbfault {run} {word} */"
        factory = type(self).runtime_factory or default_runtime_factory()
        try:
            other = factory(self.config.replace(operation_log=True, operation_log_path=path, log_json=as_json))
        except OSError as exc:  # (the runtime makes the directories of its files: this one too)
            self.check(17, False, f"operation_log on and operation_log_path {path!r} (log_json={as_json}"
                                  f"{', in a directory not made yet' if fresh_dir else ''}): the manager did not "
                                  f"start: {type(exc).__name__}: {exc}")
            return
        t0 = time.time()
        #: per record: kind, SQL, rows (None: not judged), outcome, error kind, the call's wall time (ms), slow
        expected: list[tuple[str, str | None, int | None, str, str | None, float, bool]] = []

        def timed(fn: Any, *args: Any) -> tuple[Any, float]:
            start = time.perf_counter()
            try:
                return fn(*args), (time.perf_counter() - start) * 1000
            except DatabaseError:
                return None, (time.perf_counter() - start) * 1000

        from reliability import DatabaseError

        try:
            if getattr(other, "oplog", None) is None:
                self.check(17, False, f"operation_log on and operation_log_path set: the manager has no operation log "
                                      f"(log_json={as_json})")
                return
            other.oplog.flush()
            skip = self.oplog_lines(path)  # (whatever the start recorded: not judged here)
            prefix = other.id_prefix
            sql = f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, note TEXT NOT NULL) {mark}"
            expected.append(("execute", sql, -1, "ok", None, timed(other.execute, sql)[1], False))
            sql = f"SELECT id FROM {table} {mark}"
            got, ms = timed(other.fetch_all, sql)
            count = len(got)
            expected.append(("fetch_all", sql, count, "ok", None, ms, False))
            inserted = False
            for op in ops:
                if op == "insert":
                    sql = f"INSERT INTO {table} (note) VALUES (?) {mark}"
                    expected.append(("execute", sql, 1, "ok", None, timed(other.execute, sql, (word,))[1], False))
                    inserted = True
                elif op == "many":
                    sql = f"INSERT INTO {table} (note) VALUES (?) {mark}"
                    ms = timed(other.executemany, sql, [(f"{word}-{i}",) for i in range(many)])[1]
                    expected.append(("executemany", sql, many, "ok", None, ms, False))
                    # (outside a transaction the runtime wraps it in one: that transaction's record follows)
                    expected.append(("transaction", None, None, "ok", None, ms, False))
                elif op in ("one", "none"):
                    sql = f"SELECT note FROM {table} WHERE note = ? {mark}"
                    found, ms = timed(other.fetch_one, sql, (word if op == "one" else f"{word}-absent",))
                    expected.append(("fetch_one", sql, 0 if found is None else 1, "ok", None, ms, False))
                    self.check(17, (found is not None) == (op == "one" and inserted),
                               f"fetch_one of a note {'inserted' if op == 'one' and inserted else 'never inserted'} "
                               f"gave {found!r}")
                elif op == "all":
                    sql = f"SELECT id, note FROM {table} {mark}"
                    got, ms = timed(other.fetch_all, sql)
                    expected.append(("fetch_all", sql, len(got), "ok", None, ms, False))
                elif op == "slow":  # (a few milliseconds of work: its duration is measurable)
                    sql = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000) "
                           f"SELECT count(*) FROM c {mark}")
                    expected.append(("fetch_one", sql, 1, "ok", None, timed(other.fetch_one, sql)[1], True))
                else:
                    sql = f"INSERT INTO {table} (note) VALUES (NULL) {mark}"
                    expected.append(("execute", sql, 0, "error", "constraint", timed(other.execute, sql)[1], False))
        finally:
            other.close()
        t1 = time.time()
        form = "JSON" if as_json else "text"
        records = self.oplog_lines(path)[len(skip):]
        said = f"operation log in {form} ({path}): {len(expected)} statement(s), {len(records)} record(s)"
        self.check(17, len(records) == len(expected),
                   lambda: f"{said}: one record per statement was expected; the records: {records[:8]}")
        previous = None
        for i, (record, (kind, sql, rows, outcome, error_kind, ms, slow)) in enumerate(zip(records, expected,
                                                                                            strict=False)):
            rec = self.parse_oplog_line(record, as_json)
            want = {"kind": kind, "sql": sql, "rows": rows, "attempts": 1, "outcome": outcome, "error_kind": error_kind}
            got = {k: rec.get(k) for k in want} if rec is not None else None
            if got is not None and rows is None:
                want.pop("rows")
                judged_rows = isinstance(got.pop("rows"), int)
            else:
                judged_rows = True
            number = None
            if rec is not None and isinstance(rec.get("operation_id"), str):
                head, _, tail = rec["operation_id"].rpartition("-o")
                number = int(tail) if head == prefix and tail.isdigit() else None
            duration, ts = (rec or {}).get("duration_ms"), (rec or {}).get("ts")
            # A duration measured inside the call: no longer than the call took, and most of a slow statement's.
            lowest = ms / 5 if slow and ms >= 2 else 0.0
            self.check(17, rec is not None and set(rec) == set(self.OPLOG_FIELDS) and got == want and judged_rows
                       and isinstance(duration, float) and lowest <= duration <= ms + 1
                       and isinstance(ts, float) and t0 - 1 <= ts <= t1 + 1
                       and number is not None and (previous is None or number == previous + 1),
                       lambda i=i, record=record, rec=rec, want=want, previous=previous, ms=ms, lowest=lowest: (
                           f"{said}: record {i + 1} reads {record.strip()!r} (parsed {rec}); expected the fields "
                           f"{list(self.OPLOG_FIELDS)} with {want}, a duration_ms in {lowest:.2f}..{ms + 1:.2f} (the "
                           f"call took {ms:.2f} ms), a ts within the run, operation id {prefix}-o<n> following the "
                           f"one before ({previous})"))
            previous = number

    @staticmethod
    def oplog_lines(path: str) -> list[str]:
        try:
            with open(path, encoding="utf-8") as fh:
                return [line for line in fh if line.strip()]
        except FileNotFoundError:
            return []

    @staticmethod
    def parse_oplog_line(line: str, as_json: bool) -> dict[str, Any] | None:
        """One operation record as a dict (numbers as numbers, no error kind as None), or None when unreadable: a
        JSON object, or ``key=value`` text whose ``sql`` comes last, JSON-quoted (reliability/oplog.py)."""
        try:
            if as_json:
                rec = json.loads(line)
                if isinstance(rec, dict) and isinstance(rec.get("duration_ms"), int):
                    rec["duration_ms"] = float(rec["duration_ms"])
                return rec if isinstance(rec, dict) else None
            head, sep, sql = line.rstrip("\n").partition(" sql=")
            if not sep:
                return None
            rec = dict(part.split("=", 1) for part in head.split(" "))
            rec["sql"] = json.loads(sql)
            rec["ts"], rec["duration_ms"] = float(rec["ts"]), float(rec["duration_ms"])
            rec["rows"], rec["attempts"] = int(rec["rows"]), int(rec["attempts"])
            rec["error_kind"] = None if rec.get("error_kind") == "-" else rec.get("error_kind")
            return rec
        except (ValueError, KeyError, TypeError):
            return None

    # -- the logging threshold ------------------------------------------------------------------------------------
    #: ``log_level`` as an operator may spell it (README: DEBUG, INFO, WARNING, ERROR or CRITICAL), with its level.
    LOG_LEVELS = (("DEBUG", logging.DEBUG), ("info", logging.INFO), ("Warning", logging.WARNING),
                  ("ERROR", logging.ERROR), ("critical", logging.CRITICAL), ("INFO", logging.INFO),
                  ("warning", logging.WARNING))

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(level=st.sampled_from(LOG_LEVELS), as_json=st.booleans(), refused=st.booleans())
    def log_level_threshold(self, level: tuple[str, int], as_json: bool, refused: bool) -> None:
        """P9/P17 at the logging threshold (README: ``log_level`` is for ``reliability.oplog.configure_logging``;
        "the runtime never changes the application's logging set-up"; the operation log without a file goes to the
        ``reliability.oplog`` logger at INFO, and is not installed when that logger is not enabled for INFO at start).

        A manager started with a drawn ``log_level`` leaves the ``reliability`` logger as it was. Then
        ``configure_logging`` with it (and ``log_json`` drawn) to a stream, a manager with ``operation_log`` on and
        no file started, a read, and (drawn) an insert the database refuses. The stream holds no record below the
        threshold; the read's operation record (INFO) iff the threshold is at most INFO; the refused insert's
        operation record (WARNING) iff at most INFO (no operation log otherwise); its technical record (ERROR,
        "database error constraint") iff at most ERROR; every line is JSON iff ``log_json``."""
        from reliability import DatabaseError
        from reliability.oplog import configure_logging

        from .base import default_runtime_factory

        spelt, threshold = level
        root = logging.getLogger("reliability")
        level0, handlers0 = root.level, list(root.handlers)
        factory = type(self).runtime_factory or default_runtime_factory()
        config = self.config.replace(log_level=spelt, log_json=as_json, operation_log=True, operation_log_path="")
        said = f"log_level={spelt!r}, log_json={as_json}"
        stream = io.StringIO()
        handler = None
        try:
            other = factory(config)
            other.close()
            self.check(9, root.level == level0 and root.handlers == handlers0, lambda: (
                f"a manager started with {said} changed the application's logging set-up: the 'reliability' logger's "
                f"level {level0} -> {root.level}, handlers {handlers0} -> {root.handlers}"))
            handler = configure_logging(config, stream)
            other = factory(config)
            try:
                other.execute("CREATE TABLE IF NOT EXISTS oplog_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
                other.fetch_one("SELECT count(*) FROM oplog_notes /* dbfault log level */")
                if refused:
                    with contextlib.suppress(DatabaseError):
                        other.execute("INSERT INTO oplog_notes (note) VALUES (NULL) /* dbfault log level */")
            finally:
                other.close()
        finally:
            if handler is not None:
                root.removeHandler(handler)
            root.setLevel(level0)
        records: list[tuple[int, str, str]] = []  # (level, logger, message) of each record line
        malformed: list[str] = []
        for line in stream.getvalue().splitlines():
            if as_json:
                try:
                    doc = json.loads(line)
                    records.append((logging.getLevelName(doc["level"]), doc["logger"], doc["message"]))
                except (ValueError, KeyError, TypeError):
                    malformed.append(line)
                continue
            parts = line.split(" ", 4)  # date, time, level, "logger:", message
            if len(parts) == 5 and parts[3].endswith(":") and isinstance(logging.getLevelName(parts[2]), int):
                records.append((logging.getLevelName(parts[2]), parts[3][:-1], parts[4]))
            elif line.startswith("{"):
                malformed.append(line)  # (a JSON line in the text form; other lines: a traceback's)
        below = [r for r in records if r[0] < threshold]
        self.check(9, not below and not malformed, lambda: (
            f"configure_logging with {said}: the stream holds records below the threshold {below[:3]} or lines not "
            f"in the {'JSON' if as_json else 'text'} form {malformed[:3]}"))
        read = [r for r in records if r[1] == "reliability.oplog" and r[2].startswith("fetch_one ok in")]
        bad = [r for r in records if r[1] == "reliability.oplog" and r[2].startswith("execute error in")]
        error = [r for r in records if r[0] == logging.ERROR and "database error constraint" in r[2]]
        want = (int(threshold <= logging.INFO), int(refused and threshold <= logging.INFO),
                int(refused and threshold <= logging.ERROR))
        got = (len(read), len(bad), len(error))
        self.check(17 if got[:2] != want[:2] else 9, got == want, lambda: (
            f"configure_logging with {said}, operation_log on without a file, a read"
            f"{' and a refused insert' if refused else ''}: the stream holds {got[0]} read operation record(s) (INFO), "
            f"{got[1]} refused-insert operation record(s) (WARNING), {got[2]} technical error record(s) (ERROR); "
            f"expected {want}. Its records: {records[:6]}"))

    # -- reads that follow the path --------------------------------------------------------------------------------
    identity_runs = 0

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(interval=st.sampled_from((0.0, 0.01, 0.03, None)), op=st.sampled_from(("fetch_one", "fetch_all")))
    def reads_follow_the_path_within_the_interval(self, interval: float | None, op: str) -> None:
        """P1 at the facade's ``identity_check_interval`` ("seconds between the checks reads make that the path still
        names their file (0 = every read)"; None: the default, the README's "reads check it every 50 ms"). A manager on
        a database of its own (the drawn settings), its interval set so, has read a row; another database file holding
        another value of that row is put over the path (the registry's ``disconnect_replace``, for good); once the
        interval has passed since the replace (at once for 0), a read serves the file at the path: the new value. (A
        read within the interval may still see the old file: not judged.)"""
        import sqlite3
        import time

        from .base import default_runtime_factory

        type(self).identity_runs += 1
        run = f"{os.getpid()}-{type(self).identity_runs}"
        path = os.path.join(self.dir, f"follow-{run}.db")
        copy = path + ".copy"
        factory = type(self).runtime_factory or default_runtime_factory()
        other = factory(self.make_config().replace(db_path=path))
        try:
            if interval is not None:
                other.identity_check_interval = interval
            every = other.identity_check_interval
            other.execute("CREATE TABLE notes (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            other.execute("INSERT INTO notes (k, v) VALUES ('a', 'old')")
            conn = sqlite3.connect(copy, isolation_level=None)
            try:
                conn.execute("CREATE TABLE notes (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
                conn.execute("INSERT INTO notes (k, v) VALUES ('a', 'new')")
            finally:
                conn.close()
            # A read (a check of the path is due after it), then at once the replace: the next check is the one due.
            first = other.fetch_one("SELECT v FROM notes WHERE k = 'a'")
            # The registry's fault (one way to make a fault, counted like every other): the copy put at the path
            # for good, the original unlinked, as an operator's replace does.
            make_fault("disconnect_replace", path, counted_in=STATS, mode="replace_for_good",
                       replacement=copy).inject()
            replaced = time.perf_counter()
            time.sleep(max(0.0, replaced + every + 0.002 - time.perf_counter()))
            if op == "fetch_one":
                row = other.fetch_one("SELECT v FROM notes WHERE k = 'a'")
                got = row[0] if row else None
            else:
                got = dict(other.fetch_all("SELECT k, v FROM notes")).get("a")
            waited = (time.perf_counter() - replaced) * 1000
            self.check(1, got == "new", lambda: (
                f"identity_check_interval {every} s{' (the default)' if interval is None else ''}: a read "
                f"({op}) {waited:.1f} ms after another database file was put at the path gave {got!r} (the first read, "
                f"before, gave {first!r}); the file at the path holds 'new'"), faults=["disconnect_replace"])
        finally:
            other.close()
            for leftover in (path, copy, path + "-wal", path + "-shm", path + "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
