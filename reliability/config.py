"""Typed, immutable runtime settings, read from ``RELIABILITY_*`` variables and a ``.env`` file.

Example::

    cfg = ReliabilityConfig.from_env(".env")          # environment beats the file
    cfg = ReliabilityConfig(db_path="app.db", retry_attempts=3)
    faster = cfg.replace(busy_timeout_ms=100)          # validated copy

Every invalid value is reported at once in one :class:`ConfigError` naming each key,
its value and why it was refused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ._suggest import did_you_mean

ENV_PREFIX = "RELIABILITY_"

JOURNAL_MODES = ("WAL", "DELETE", "TRUNCATE", "PERSIST", "MEMORY")
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """One or more settings are invalid; ``problems`` lists ``(key, value, reason)`` for each."""

    def __init__(self, problems: list[tuple[str, Any, str]], source: str = "",
                 where: Mapping[str, str] | None = None) -> None:
        self.problems = problems
        self.source = source
        #: Where each key was set: ``"<file>:<line>"`` or ``"environment"`` (keys given in code: absent).
        self.where = dict(where or {})
        header = f" in {source}" if source else ""
        lines = [f"invalid configuration{header}:"]
        for key, value, reason in problems:
            at = f"{self.where[key]}: " if key in self.where else ""
            lines.append(f"  {at}{key}={value!r}: {reason}")
        super().__init__("\n".join(lines))

    def located(self, where: Mapping[str, str]) -> ConfigError:
        """The same error, each problem prefixed with where its key was set (see :func:`origins`)."""
        return ConfigError(self.problems, self.source, where)


@dataclass(frozen=True)
class ReliabilityConfig:
    """All runtime settings. Defaults are safe for production (WAL, synchronous=FULL, bounded retries).

    Paths left empty are derived from ``db_path`` (see the ``*_file`` properties).
    """

    db_path: str = "reliability.db"
    #: How long SQLite itself waits on a lock before answering SQLITE_BUSY.
    busy_timeout_ms: int = 5000
    journal_mode: str = "WAL"
    synchronous: str = "FULL"
    foreign_keys: bool = True
    #: Name of a DB-API module compatible with sqlite3 (``sqlite3``, ``sqlean``, ``pysqlite3.dbapi2``).
    sqlite_module: str = "sqlite3"
    retry_attempts: int = 5
    retry_base_delay: float = 0.05
    retry_max_delay: float = 2.0
    #: Total seconds one operation may spend retrying, whatever ``retry_attempts`` says.
    retry_budget: float = 10.0
    backup_dir: str = ""
    #: Seconds between scheduled backups; 0 turns the schedule off (``db.backup()`` still works).
    backup_interval: float = 3600.0
    backup_keep: int = 5
    health_check_interval: float = 30.0
    quick_check_interval: float = 3600.0
    integrity_check_interval: float = 86400.0
    #: Keep a durable redo journal of committed writes so recovery loses no acknowledged write.
    redo_journal: bool = True
    auto_migrate: bool = True
    auto_recover: bool = True
    audit_fallback_path: str = ""
    #: Secret key of the audit hash chain; empty: a random key generated into ``audit_key_path``.
    audit_hmac_key: str = ""
    #: The generated audit key's file (0600), used when ``audit_hmac_key`` is empty.
    audit_key_path: str = ""
    #: Comma-separated retired audit keys: entries written under them still verify; new entries never use them.
    audit_previous_keys: str = ""
    write_queue_path: str = ""
    write_queue_max: int = 10000
    #: Comma-separated actors allowed to run admin commands; empty means "no list" (callback decides).
    admin_actors: str = ""
    log_level: str = "INFO"
    #: Log one structured record per database operation.
    operation_log: bool = False
    operation_log_path: str = ""
    log_json: bool = False
    #: Put SQL parameters in logs (off by default: they may hold personal data).
    log_sql_params: bool = False
    #: Seconds between checks of the .env file for hot reload; 0 turns reload off.
    config_reload_interval: float = 1.0

    def __post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise ConfigError(problems)

    # -- derived paths -------------------------------------------------------------------------
    @property
    def backup_directory(self) -> Path:
        """Where backups go: ``backup_dir`` or ``<db>.backups`` beside the database."""
        return Path(self.backup_dir) if self.backup_dir else Path(self.db_path + ".backups")

    @property
    def audit_fallback_file(self) -> Path:
        """The audit log's fallback JSON-lines file."""
        return Path(self.audit_fallback_path or self.db_path + ".audit-fallback.jsonl")

    @property
    def audit_key_file(self) -> Path:
        """The generated audit key (used when no ``audit_hmac_key`` is configured)."""
        return Path(self.audit_key_path or self.db_path + ".audit-key")

    @property
    def audit_anchor_file(self) -> Path:
        """The keyed anchor of the audit chain's head (entry count and last MAC)."""
        return Path(self.db_path + ".audit-anchor")

    @property
    def write_queue_file(self) -> Path:
        """The durable write queue's file."""
        return Path(self.write_queue_path or self.db_path + ".queue.jsonl")

    @property
    def redo_journal_file(self) -> Path:
        """The redo journal of writes committed since the last verified backup."""
        return Path(self.db_path + ".redo")

    @property
    def audit_previous_key_list(self) -> tuple[str, ...]:
        """``audit_previous_keys`` parsed: the retired audit keys, in the order given."""
        return tuple(k.strip() for k in self.audit_previous_keys.split(",") if k.strip())

    @property
    def admin_actor_set(self) -> frozenset[str]:
        """``admin_actors`` parsed into a set of names."""
        return frozenset(a.strip() for a in self.admin_actors.split(",") if a.strip())

    # -- construction --------------------------------------------------------------------------
    def replace(self, **changes: Any) -> ReliabilityConfig:
        """A validated copy with ``changes`` applied; unknown names raise :class:`ConfigError`."""
        unknown = [k for k in changes if k not in _FIELDS]
        if unknown:
            raise ConfigError([(k, changes[k], _unknown_reason(k)) for k in unknown])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Settings as a plain dict (the HMAC keys, current and retired, masked)."""
        data = dataclasses.asdict(self)
        for secret in ("audit_hmac_key", "audit_previous_keys"):
            if data[secret]:
                data[secret] = "***"
        return data

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], source: str = "", **overrides: Any) -> ReliabilityConfig:
        """Build from ``RELIABILITY_*`` string values (as found in an environment or .env file).

        Values are converted to each field's type; every conversion error, unknown
        ``RELIABILITY_*`` key (likely a typo) and invalid value is reported together.
        """
        problems: list[tuple[str, Any, str]] = []
        kwargs: dict[str, Any] = {}
        for env_key, raw in values.items():
            if not env_key.startswith(ENV_PREFIX):
                continue
            name = env_key[len(ENV_PREFIX):].lower()
            if name not in _FIELDS:
                problems.append((env_key, raw, _unknown_reason(name, prefix=ENV_PREFIX)))
                continue
            try:
                kwargs[name] = _convert(raw, _FIELDS[name])
            except ValueError as exc:  # dbfault: no fault (a setting's text is not of its type)
                problems.append((env_key, raw, str(exc)))
        kwargs.update(overrides)
        if not problems:
            try:
                return cls(**kwargs)
            except ConfigError as exc:  # dbfault: no fault (a setting's value is out of range)
                problems = [(_env_name(k), v, r) for k, v, r in exc.problems]
        else:
            # Also report value problems of the keys that did convert (not a comparison with a key that did
            # not: that one stood at its default in the check).
            unconverted = {_env_name(k)[len(ENV_PREFIX):].lower() for k, _v, _r in problems}
            try:
                cls(**kwargs)
            except ConfigError as exc:  # dbfault: no fault (a setting's value is out of range)
                problems += [(_env_name(k), v, r) for k, v, r in exc.problems
                             if not any(other in r for other in _COMPARED_WITH.get(k, ()) if other in unconverted)]
        raise ConfigError(problems, source)

    @classmethod
    def from_env(
        cls,
        path: str | os.PathLike[str] | None = ".env",
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ReliabilityConfig:
        """Read ``RELIABILITY_*`` from the ``.env`` file at ``path`` (if it exists) and ``environ``.

        The environment wins over the file, as users of dotenv tools expect;
        keyword ``overrides`` win over both.
        """
        values: dict[str, str] = dict(read_env_file(path)) if path else {}
        env = os.environ if environ is None else environ
        values.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        source = str(path) if path and Path(path).exists() else "environment"
        try:
            return cls.from_mapping(values, source=source, **overrides)
        except ConfigError as exc:  # dbfault: no fault (an invalid setting: say on which line)
            raise exc.located(origins(path, env)) from None


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``RELIABILITY_*`` entries of a ``.env`` file (parsed by python-dotenv); {} if absent."""
    if not Path(path).is_file():
        return {}
    from dotenv import dotenv_values  # imported here: only needed when a file exists

    try:
        values = dotenv_values(path)
    except UnicodeDecodeError as exc:  # dbfault: no fault (the file's content is not UTF-8 text)
        raise ConfigError([("file", str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})")],
                          str(path)) from None
    return {k: v or "" for k, v in values.items() if k.startswith(ENV_PREFIX)}


#: Settings checked against another one (the reason names it).
_COMPARED_WITH = {"retry_max_delay": ("retry_base_delay",)}
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?(" + ENV_PREFIX + r"[A-Za-z0-9_]*)\s*=")


def origins(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Where each ``RELIABILITY_*`` key is set: ``"<path>:<line>"`` (its last assignment in the ``.env``
    file, the one that counts) or ``"environment"`` (which wins over the file). For error messages."""
    where: dict[str, str] = {}
    if path and Path(path).is_file():
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:  # dbfault: no fault (only the message loses its line numbers)
            text = ""
        for number, line in enumerate(text.splitlines(), 1):
            match = _ASSIGNMENT.match(line)
            if match:
                where[match.group(1)] = f"{path}:{number}"
    where.update({k: "environment" for k in environ if k.startswith(ENV_PREFIX)})
    return where


_FIELDS: dict[str, Any] = {f.name: f.type for f in fields(ReliabilityConfig)}


def _env_name(name: str) -> str:
    return name if name.startswith(ENV_PREFIX) else ENV_PREFIX + name.upper()


def _unknown_reason(name: str, prefix: str = "") -> str:
    # Suggested as it would be written: the environment variable, or the setting's name.
    return "unknown setting" + did_you_mean(name, _FIELDS, spell=lambda k: prefix + k.upper() if prefix else k)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(raw: str, type_name: str) -> Any:
    text = raw.strip()
    if type_name == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")
    if type_name == "int":
        try:
            return int(text)
        except ValueError:  # dbfault: no fault (not a whole number)
            raise ValueError("expected a whole number") from None
    if type_name == "float":
        try:
            return float(text)
        except ValueError:  # dbfault: no fault (not a number)
            raise ValueError("expected a number") from None
    return text


_YEAR = 366 * 86400.0
#: The accepted range of every numeric setting: ``key -> (lowest, highest, why)``. Upper bounds keep
#: values within what the clocks, timers and SQLite accept (``threading`` timeouts overflow near
#: 1e10 s; SQLite's busy timeout is a C int) and catch typos such as a delay in milliseconds.
LIMITS: dict[str, tuple[float, float, str]] = {
    "busy_timeout_ms": (0, 86_400_000, " (milliseconds; at most one day)"),
    "retry_attempts": (1, 1000, " (1 means no retry)"),
    "retry_base_delay": (0, 3600.0, " (seconds)"),
    "retry_max_delay": (0, 3600.0, " (seconds)"),
    "retry_budget": (0, 86400.0, " (seconds; at most one day)"),
    "backup_interval": (0, _YEAR, " (seconds; 0 = off, at most a year)"),
    "backup_keep": (1, 100_000, " (the newest verified backup is always kept)"),
    "health_check_interval": (0, _YEAR, " (seconds; 0 = off, at most a year)"),
    "quick_check_interval": (0, _YEAR, " (seconds; 0 = off, at most a year)"),
    "integrity_check_interval": (0, _YEAR, " (seconds; 0 = off, at most a year)"),
    "write_queue_max": (0, 100_000_000, ""),
    "config_reload_interval": (0, _YEAR, " (seconds; 0 = off, at most a year)"),
}


def _validate(cfg: ReliabilityConfig) -> list[tuple[str, Any, str]]:
    problems: list[tuple[str, Any, str]] = []

    def bad(key: str, reason: str) -> None:
        problems.append((key, getattr(cfg, key), reason))

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        declared = str(f.type)  # annotations are strings here (from __future__ import annotations)
        expected: Any = {"int": int, "float": (int, float), "bool": bool, "str": str}[declared]
        if not isinstance(value, expected) or (declared in ("int", "float") and isinstance(value, bool)):
            bad(f.name, f"expected {declared}, got {type(value).__name__}")
    if problems:  # the range checks below assume the right types
        return problems
    if not cfg.db_path:
        bad("db_path", "must not be empty")
    for key, (low, high, why) in LIMITS.items():
        value = getattr(cfg, key)
        if isinstance(value, float) and not math.isfinite(value):
            bad(key, f"must be a finite number between {low:g} and {high:g}")
        elif value < low:
            bad(key, f"must be >= {low:g}{why if low > 0 else ''}")
        elif value > high:
            bad(key, f"must be <= {high:g}{why}")
    for key in ("db_path", "backup_dir", "audit_fallback_path", "audit_key_path", "write_queue_path",
                "operation_log_path"):
        if "\x00" in getattr(cfg, key):
            bad(key, "a path must not contain NUL characters")
    if cfg.audit_previous_keys.strip() and any(not k.strip() for k in cfg.audit_previous_keys.split(",")):
        # (the value itself is never echoed: it holds secrets)
        problems.append(("audit_previous_keys", "***", "comma-separated retired audit keys: an empty key between "
                         "commas (a stray comma?); each key must be non-empty"))
    delays_valid = not {"retry_base_delay", "retry_max_delay"} & {key for key, _v, _r in problems}
    if delays_valid and cfg.retry_max_delay < cfg.retry_base_delay:
        bad("retry_max_delay", f"must be >= retry_base_delay ({cfg.retry_base_delay})")
    if cfg.journal_mode.upper() not in JOURNAL_MODES:
        bad("journal_mode", f"expected one of {', '.join(JOURNAL_MODES)}")
    if cfg.synchronous.upper() not in SYNCHRONOUS_LEVELS:
        bad("synchronous", f"expected one of {', '.join(SYNCHRONOUS_LEVELS)}")
    if cfg.log_level.upper() not in LOG_LEVELS:
        bad("log_level", f"expected one of {', '.join(LOG_LEVELS)}")
    return problems
