"""Admin commands: feature flags and the audit log, authorized, audited and degradation-aware.

Example::

    from reliability import admin

    admin.register(db, permission=lambda actor, command: actor in my_admins)  # optional callback
    result = admin.set_flag(db, "beta", True, actor="alice")
    result.status, result.message     # "ok" / "queued" / "rejected" / "denied" / "unavailable"
    admin.audit(db, limit=20, caller="alice").value  # list of AuditEntry, newest first
    db.commands.run_as("alice", "flags.set", "beta", True)   # the same command, as a front end calls it

An actor is authorized when it is in ``RELIABILITY_ADMIN_ACTORS`` or the permission
callback says yes. The check belongs to the commands themselves (``flags.set`` and
``audit`` are registered as admin commands), so every entry point enforces it: these
functions, ``db.commands.run``/``run_as``, the CLI and scenario steps. A refused attempt
changes nothing, gets a clear message and is itself audited. ``set_flag`` writes the
flag and its audit entry in one transaction; while the database is unavailable the
change is queued with the authorization decided when it was accepted (see
:mod:`reliability.degraded`). Names are limited (:mod:`reliability.names`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import names
from .degraded import CommandResult, Needs
from .names import printable, surrogate_problem

if TYPE_CHECKING:
    from collections.abc import Callable

    from .manager import DatabaseManager

MAX_FLAG_NAME = names.MAX_FLAG_NAME
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
    reg.audit_first = True  # audited writes: the outage's audit entries go in before the replayed ones
    reg.register("flags.set", Needs.WRITE, _write_flag, "set a feature flag (admin, audited)",
                 actor_param="actor", validate=_check_set)
    reg.register("flags.get", Needs.READ, _read_flag, "read one feature flag", validate=_check_get)
    reg.register("flags.list", Needs.READ, _list_flags, "list feature flags")
    reg.register("audit", Needs.READ, _read_audit, "read the audit log (admin)",
                 actor_param="caller", validate=_check_audit)
    reg.register("ping", Needs.NONE, lambda db: "pong", "answer 'pong' (works without the database)")
    reg.register("help", Needs.NONE, lambda db: {n: db.commands.get(n).help for n in db.commands.names()},
                 "list the commands")
    reg.register("config.show", Needs.NONE, lambda db: db.config.to_dict(), "show the settings in force")


# -- authorization ---------------------------------------------------------------------------
def is_authorized(db: DatabaseManager, actor: str, command: str) -> bool:
    """True when ``actor`` may run admin ``command`` (configured list, then the permission callback)."""
    return db.commands.is_authorized(actor, command)


def _check_set(name: Any = None, value: Any = None, actor: Any = None, on_behalf_of: Any = None) -> str | None:
    problem = validate_flag_name(name) or validate_flag_value(value)
    if problem is None and on_behalf_of is not None:
        problem = names.text_problem("The on-behalf-of name", on_behalf_of, names.MAX_ACTOR)
    return problem


def _check_get(name: Any = None) -> str | None:
    return validate_flag_name(name)


def _check_audit(caller: Any = None, limit: Any = 50, actor: Any = None, action: Any = None,
                 since: Any = None) -> str | None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return f"The limit must be a positive whole number, not {limit!r}."
    for what, value in (("The actor filter", actor), ("The action filter", action)):
        if value is not None:
            problem = names.text_problem(what, value, names.MAX_ACTOR)
            if problem:
                return problem
    if since is not None and (not isinstance(since, (int, float)) or isinstance(since, bool) or since != since):
        return f"'since' must be a time in seconds since the epoch, not {since!r}."
    return None


# -- flags ---------------------------------------------------------------------------------------
def validate_flag_name(name: Any) -> str | None:
    """A message saying what is wrong with ``name``, or None when it is valid."""
    return names.validate_flag_name(name)


def validate_flag_value(value: Any) -> str | None:
    """A message saying what is wrong with ``value``, or None when it is valid."""
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return f"A flag value must be text, a number, true/false or null, not {type(value).__name__}."
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "A flag value must be a finite number."
    if len(json.dumps(value, ensure_ascii=False)) > MAX_FLAG_VALUE:
        return f"A flag value may take at most {MAX_FLAG_VALUE} characters as JSON."
    if isinstance(value, str):
        return surrogate_problem("A flag value", value)
    return None


def _write_flag(db: DatabaseManager, name: str, value: FlagValue, actor: str, on_behalf_of: str | None = None,
                ) -> Flag:
    # Runs inside the command's transaction: the flag and its audit entry commit together.
    db.execute(FLAGS_TABLE_SQL)
    old = db.fetch_one("SELECT value FROM reliability_flags WHERE name = ?", (name,))
    now = time.time()
    db.execute("INSERT INTO reliability_flags (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
               "updated_by = excluded.updated_by",
               (name, json.dumps(value, ensure_ascii=False), now, actor))
    details = {"value": value, "previous": None if old is None else json.loads(old[0])}
    if on_behalf_of is not None:
        details["on_behalf_of"] = on_behalf_of  # audited with the actor who was authorized
    db.audit.append(db.audit.new_entry(actor, "flag.set", name, details))
    return Flag(name, value, now, actor)


def _read_flag(db: DatabaseManager, name: str) -> Flag | None:
    row = _flag_rows(db, "SELECT name, value, updated_at, updated_by FROM reliability_flags WHERE name = ?", (name,))
    return row[0] if row else None


def _list_flags(db: DatabaseManager) -> list[Flag]:
    return _flag_rows(db, "SELECT name, value, updated_at, updated_by FROM reliability_flags ORDER BY name", ())


def _flag_rows(db: DatabaseManager, sql: str, params: tuple[Any, ...]) -> list[Flag]:
    # A fresh database has no flags table yet: that is "no flags", not an error to log and count.
    if db.fetch_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reliability_flags'") is None:
        return []
    rows = db.fetch_all(sql, params)
    return [Flag(n, json.loads(v), at, by) for n, v, at, by in rows]


def _read_audit(db: DatabaseManager, caller: str, limit: int = 50, actor: str | None = None,
                action: str | None = None, since: float | None = None) -> list[Any]:
    return db.audit.entries(limit, actor=actor, action=action, since=since)


def set_flag(db: DatabaseManager, name: str, value: FlagValue, actor: str, *,
             on_behalf_of: str | None = None) -> CommandResult:
    """Set flag ``name`` to ``value`` as ``actor``: validated, authorized, audited, retried, queued if needed.

    :param on_behalf_of: a label for whom the (authorized) ``actor`` acts; both names are audited.
    """
    register(db)
    # Entries waiting in the audit fallback go first, so the log keeps the order things happened in.
    db.audit.try_reconcile()
    extra = {} if on_behalf_of is None else {"on_behalf_of": on_behalf_of}
    result = db.commands.run("flags.set", name, value, actor, **extra)
    if result.ok:
        return CommandResult("ok", f"Flag {printable(name)!r} is now {json.dumps(value, ensure_ascii=False)}.",
                             result.value, pending=result.pending)
    return result


def get_flag(db: DatabaseManager, name: str) -> CommandResult:
    """Read flag ``name`` (``value`` is a :class:`Flag` or None when unset)."""
    register(db)
    result = db.commands.run("flags.get", name)
    if result.ok and result.value is None:
        return CommandResult("ok", f"Flag {printable(name)!r} is not set.", None, pending=result.pending)
    return result


def list_flags(db: DatabaseManager) -> CommandResult:
    """Every flag (``value`` is a list of :class:`Flag`)."""
    register(db)
    return db.commands.run("flags.list")


def audit(db: DatabaseManager, limit: int = 50, actor: str | None = None, action: str | None = None,
          since: float | None = None, *, caller: str | None = None) -> CommandResult:
    """Read the audit log as ``caller``, newest first: database entries plus fallback entries not yet reconciled.

    Reading the log is an admin command: without an authorized ``caller`` the answer is
    ``denied`` (and the attempt is audited). ``actor``, ``action`` and ``since`` filter the
    entries. When the database is unavailable, ``status`` is ``unavailable``, ``message`` says
    so and ``value`` still lists the fallback entries.
    """
    register(db)
    result = db.commands.run("audit", caller, limit, actor, action, since)
    if result.status == "unavailable":
        pending = [e for e in reversed(db.audit.pending())
                   if (actor is None or e.actor == actor) and (action is None or e.action == action)
                   and (since is None or e.ts >= since)][:limit]
        return CommandResult("unavailable", result.message + " Only entries not yet saved to the database "
                             "are shown.", pending, fault=result.fault, pending=result.pending)
    return result
