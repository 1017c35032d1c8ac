"""Admin commands: feature flags and the audit log, authorized, audited and degradation-aware.

Example::

    from reliability import admin

    admin.register(db, permission=lambda actor, command: actor in my_admins)  # optional callback
    result = admin.set_flag(db, "beta", True, actor="alice")
    result.status, result.message     # "ok" / "queued" / "rejected" / "denied" / "unavailable"
    admin.audit(db, limit=20, actor="alice").value   # list of AuditEntry, newest first

An actor is authorized when it is in ``RELIABILITY_ADMIN_ACTORS`` or the permission
callback says yes. A refused attempt changes nothing, gets a clear message and is itself
audited. ``set_flag`` writes the flag and its audit entry in one transaction; while the
database is unavailable the change is queued (see :mod:`reliability.degradation`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .degradation import CommandResult, Needs
from .errors import DatabaseError, ErrorKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from .manager import DatabaseManager

MAX_FLAG_NAME = 200
MAX_FLAG_VALUE = 10_000
FLAGS_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS reliability_flags ("
    "name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL, updated_by TEXT NOT NULL)"
)

#: A flag's value: JSON scalars only, so it round-trips exactly.
FlagValue = str | int | float | bool | None


@dataclass(frozen=True)
class Flag:
    """A stored feature flag."""

    name: str
    value: FlagValue
    updated_at: float
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "value": self.value, "updated_at": self.updated_at, "updated_by": self.updated_by}


def register(db: DatabaseManager, permission: Callable[[str, str], bool] | None = None) -> None:
    """Register the admin and continuity commands in ``db.commands`` (idempotent).

    :param permission: the application's check ``fn(actor, command) -> bool``, consulted for
        actors not in ``RELIABILITY_ADMIN_ACTORS``.
    """
    reg = db.commands
    if permission is not None:
        reg.permission = permission
    if "flags.set" in reg:
        return
    reg.before_replay.append(db.audit.try_reconcile)
    reg.register("flags.set", Needs.WRITE, _write_flag, "set a feature flag (audited)")
    reg.register("flags.get", Needs.READ, _read_flag, "read one feature flag")
    reg.register("flags.list", Needs.READ, _list_flags, "list feature flags")
    reg.register("audit", Needs.READ, _read_audit, "read the audit log")
    reg.register("ping", Needs.NONE, lambda db: "pong", "answer 'pong' (works without the database)")
    reg.register("help", Needs.NONE, lambda db: {n: db.commands.get(n).help for n in db.commands.names()},
                 "list the commands")
    reg.register("config.show", Needs.NONE, lambda db: db.config.to_dict(), "show the settings in force")


# -- authorization ---------------------------------------------------------------------------
def is_authorized(db: DatabaseManager, actor: str, command: str) -> bool:
    """True when ``actor`` may run admin ``command`` (configured list, then the permission callback)."""
    if actor in db.config.admin_actor_set:
        return True
    callback = db.commands.permission
    if callback is None:
        return False
    try:
        return bool(callback(actor, command))
    except Exception:  # a failing check must refuse, never allow
        return False


def _refuse(db: DatabaseManager, actor: Any, command: str, target: str) -> CommandResult | None:
    if isinstance(actor, str) and actor.strip() and is_authorized(db, actor, command):
        return None
    who = actor if isinstance(actor, str) and actor.strip() else "(anonymous)"
    db.audit.record(who, "admin.denied", target, {"command": command})
    hint = "" if db.config.admin_actor_set or db.commands.permission else \
        " No administrators are configured (RELIABILITY_ADMIN_ACTORS)."
    return CommandResult("denied", f"{who!s} is not allowed to run {command!r}; nothing was changed.{hint}")


# -- flags ---------------------------------------------------------------------------------------
def validate_flag_name(name: Any) -> str | None:
    """A message saying what is wrong with ``name``, or None when it is valid."""
    if not isinstance(name, str):
        return f"A flag name must be text, not {type(name).__name__}."
    if not name.strip():
        return "A flag name must not be empty."
    if len(name) > MAX_FLAG_NAME:
        return f"A flag name may have at most {MAX_FLAG_NAME} characters; this one has {len(name)}."
    if "\x00" in name:
        return "A flag name must not contain NUL characters."
    return None


def validate_flag_value(value: Any) -> str | None:
    """A message saying what is wrong with ``value``, or None when it is valid."""
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return f"A flag value must be text, a number, true/false or null, not {type(value).__name__}."
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "A flag value must be a finite number."
    if len(json.dumps(value, ensure_ascii=False)) > MAX_FLAG_VALUE:
        return f"A flag value may take at most {MAX_FLAG_VALUE} characters as JSON."
    return None


def _write_flag(db: DatabaseManager, name: str, value: FlagValue, actor: str) -> Flag:
    # Runs inside the command's transaction: the flag and its audit entry commit together.
    db.execute(FLAGS_TABLE_SQL)
    old = db.fetch_one("SELECT value FROM reliability_flags WHERE name = ?", (name,))
    now = time.time()
    db.execute("INSERT INTO reliability_flags (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
               "updated_by = excluded.updated_by",
               (name, json.dumps(value, ensure_ascii=False), now, actor))
    details = {"value": value, "previous": None if old is None else json.loads(old[0])}
    db.audit.append(db.audit.new_entry(actor, "flag.set", name, details))
    return Flag(name, value, now, actor)


def _read_flag(db: DatabaseManager, name: str) -> Flag | None:
    row = _flag_rows(db, "SELECT name, value, updated_at, updated_by FROM reliability_flags WHERE name = ?", (name,))
    return row[0] if row else None


def _list_flags(db: DatabaseManager) -> list[Flag]:
    return _flag_rows(db, "SELECT name, value, updated_at, updated_by FROM reliability_flags ORDER BY name", ())


def _flag_rows(db: DatabaseManager, sql: str, params: tuple[Any, ...]) -> list[Flag]:
    try:
        rows = db.fetch_all(sql, params)
    except DatabaseError as err:
        if err.kind is ErrorKind.SCHEMA and "no such table" in err.detail:
            return []
        raise
    return [Flag(n, json.loads(v), at, by) for n, v, at, by in rows]


def _read_audit(db: DatabaseManager, limit: int, actor: str | None, action: str | None,
                since: float | None) -> list[Any]:
    return db.audit.entries(limit, actor=actor, action=action, since=since)


def set_flag(db: DatabaseManager, name: str, value: FlagValue, actor: str) -> CommandResult:
    """Set flag ``name`` to ``value`` as ``actor``: validated, authorized, audited, retried, queued if needed."""
    register(db)
    problem = validate_flag_name(name) or validate_flag_value(value)
    if problem:
        return CommandResult("rejected", problem)
    refused = _refuse(db, actor, "flags.set", name)
    if refused is not None:
        return refused
    # Entries waiting in the audit fallback go first, so the log keeps the order things happened in.
    db.audit.try_reconcile()
    result = db.commands.run("flags.set", name, value, actor)
    if result.ok:
        return CommandResult("ok", f"Flag {name!r} is now {json.dumps(value, ensure_ascii=False)}.",
                             result.value, pending=result.pending)
    return result


def get_flag(db: DatabaseManager, name: str) -> CommandResult:
    """Read flag ``name`` (``value`` is a :class:`Flag` or None when unset)."""
    register(db)
    problem = validate_flag_name(name)
    if problem:
        return CommandResult("rejected", problem)
    result = db.commands.run("flags.get", name)
    if result.ok and result.value is None:
        return CommandResult("ok", f"Flag {name!r} is not set.", None, pending=result.pending)
    return result


def list_flags(db: DatabaseManager) -> CommandResult:
    """Every flag (``value`` is a list of :class:`Flag`)."""
    register(db)
    return db.commands.run("flags.list")


def audit(db: DatabaseManager, limit: int = 50, actor: str | None = None, action: str | None = None,
          since: float | None = None) -> CommandResult:
    """Read the audit log, newest first: database entries plus fallback entries not yet reconciled.

    When the database is unavailable, ``status`` is ``unavailable``, ``message`` says so and
    ``value`` still lists the fallback entries.
    """
    register(db)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return CommandResult("rejected", f"The limit must be a positive whole number, not {limit!r}.")
    result = db.commands.run("audit", limit, actor, action, since)
    if result.status == "unavailable":
        pending = [e for e in reversed(db.audit.pending())
                   if (actor is None or e.actor == actor) and (action is None or e.action == action)
                   and (since is None or e.ts >= since)][:limit]
        return CommandResult("unavailable", result.message + " Only entries not yet saved to the database "
                             "are shown.", pending, fault=result.fault, pending=result.pending)
    return result
