"""dbfault's built-in scenario commands (``command:`` steps).

Each is a plain function ``fn(ctx, **args)`` registered in the process-wide registry; the
runtime is reached through ``ctx.db`` (``ctx.require("backup")`` when a method is
optional). A command returns a value (compared by ``expect: {result: ...}``) or raises;
the runner turns both into an outcome (``ok``, ``queued``, an error kind...).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .confine import confine_path, confine_settings
from .context import RuntimeUnsupported, ScenarioContext

#: The built-in commands, name -> function. Collected here and registered by :mod:`.registry` when it
#: first needs them, so this module does not import the registry (which imports it): no import cycle.
BUILTINS: dict[str, Callable[..., Any]] = {}


def builtin(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Record the decorated function as built-in command ``name`` (see :data:`BUILTINS`)."""

    def record(fn: Callable[..., Any]) -> Callable[..., Any]:
        BUILTINS[name] = fn
        return fn

    return record

_READS = re.compile(r"^\s*(SELECT|WITH|PRAGMA|VALUES|EXPLAIN)\b", re.I)


@builtin("sql")
def sql(ctx: ScenarioContext, sql: str, params: Any = None, many: bool = False) -> Any:
    """Run one SQL statement: rows (as lists) for a query, the row count for a write.

    ``many: true`` runs it once per item of ``params`` (``executemany``).
    """
    db = ctx.db
    if many:
        return db.executemany(sql, [_params(p) for p in params or []]).rowcount
    if _READS.match(sql):
        return [list(row) for row in db.fetch_all(sql, _params(params))]
    return db.execute(sql, _params(params)).rowcount


@builtin("transaction")
def transaction(ctx: ScenarioContext, statements: list[Any]) -> int:
    """Run ``statements`` (SQL text or ``{sql, params}``) in one transaction; all or nothing."""
    db = ctx.db

    def work() -> int:
        for statement in statements:
            if isinstance(statement, dict):
                db.execute(statement["sql"], _params(statement.get("params")))
            else:
                db.execute(statement)
        return len(statements)

    return db.run_in_transaction(work)


@builtin("ping")
def ping(ctx: ScenarioContext) -> str:
    """Ask the database for ``SELECT 1`` through the runtime (so retries and reconnects apply)."""
    ctx.db.fetch_one("SELECT 1")
    return "pong"


@builtin("health")
def health(ctx: ScenarioContext) -> str:
    """The runtime's health status: ``healthy``, ``degraded`` or ``unavailable``."""
    return str(ctx.require("health")().status)


@builtin("check")
def check(ctx: ScenarioContext, full: bool = False) -> dict[str, Any]:
    """``db.check_integrity(full)``; the result has ``ok`` and ``problems``."""
    return _plain(ctx.require("check_integrity")(full))


@builtin("backup")
def backup(ctx: ScenarioContext) -> dict[str, Any]:
    """Take a backup now; the result has ``path`` and ``verified``."""
    return _plain(ctx.require("backup")())


@builtin("restore")
def restore(ctx: ScenarioContext, path: str | None = None) -> dict[str, Any]:
    """Restore the newest verified backup (or ``path``, inside the scenario's tmp directory)."""
    if path is not None:
        path = confine_path("path", path, ctx.tmp_path)
    return _plain(ctx.require("restore")(path))


@builtin("recover")
def recover(ctx: ScenarioContext) -> dict[str, Any]:
    """Quarantine a damaged database, restore a backup, replay the journal; the result has ``ok``."""
    return _plain(ctx.require("recover")())


@builtin("migrate")
def migrate(ctx: ScenarioContext, migrations: Any = None) -> dict[str, Any]:
    """Apply migrations: ``migrations`` (a list of ``{version, name, up, down}`` or a folder), default the setup's."""
    return _plain(ctx.require("migrate")(to_migrations(ctx, migrations)))


@builtin("validate_schema")
def validate_schema(ctx: ScenarioContext, migrations: Any = None) -> dict[str, Any]:
    """Compare the database with the migrations; the result has ``ok`` and ``problems``."""
    return _plain(ctx.require("validate_schema")(to_migrations(ctx, migrations)))


@builtin("set_flag")
def set_flag(ctx: ScenarioContext, name: str, value: Any, actor: str = "admin") -> Any:
    """Set feature flag ``name`` as ``actor`` (audited; queued while the database is unavailable)."""
    from reliability import admin

    return admin.set_flag(ctx.db, name, value, actor)


@builtin("get_flag")
def get_flag(ctx: ScenarioContext, name: str) -> Any:
    """Read feature flag ``name``; the result is its value (null when unset)."""
    from reliability import admin

    result = admin.get_flag(ctx.db, name)
    return _with_value(result, getattr(result.value, "value", None))


@builtin("audit")
def audit(ctx: ScenarioContext, limit: int = 50, actor: str | None = None, action: str | None = None,
          caller: str = "admin") -> Any:
    """Read the audit log as ``caller`` (an admin command, newest first); ``unavailable`` while it cannot be read."""
    from reliability import admin

    result = admin.audit(ctx.db, limit, actor, action, caller=caller)
    return _with_value(result, [_plain(e) for e in result.value or []])


@builtin("dispatch")
def dispatch(ctx: ScenarioContext, name: str, args: list[Any] | None = None,
             kwargs: dict[str, Any] | None = None) -> Any:
    """Run the application command ``name`` of ``db.commands`` (with graceful degradation)."""
    return ctx.require("commands").run(name, *(args or []), **(kwargs or {}))


@builtin("replay")
def replay(ctx: ScenarioContext) -> dict[str, Any]:
    """Replay the write queue now; the result has ``applied`` and ``remaining``."""
    report = ctx.require("commands").recover(force=True)
    return _plain(report) if report is not None else {"applied": 0, "remaining": len(ctx.db.queue)}


@builtin("reload_config")
def reload_config(ctx: ScenarioContext, **settings: Any) -> list[str]:
    """Write ``settings`` to the scenario's ``.env`` and hot-reload it; the result lists the changed keys.

    An invalid value is refused (outcome ``rejected``) and the previous settings stay in force.
    """
    settings = confine_settings(settings, ctx.tmp_path)  # a reload may not move files out of the tmp dir
    env = ctx.tmp_path / ".env"
    lines = [line for line in _read_lines(env) if line.split("=", 1)[0] not in
             {f"RELIABILITY_{k.upper()}" for k in settings}]
    lines += [f"RELIABILITY_{key.upper()}={_env_value(value)}" for key, value in settings.items()]
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    watcher = ctx.values.get("config_watcher")
    if watcher is None or getattr(watcher, "db", None) is not ctx.db:
        watcher = ctx.require("watch_env")(env, interval=0)
        ctx.values["config_watcher"] = watcher
    return list(watcher.check_now(force=True))


@builtin("restart")
def restart(ctx: ScenarioContext) -> str:
    """Close the runtime and start a new one on the same files (what a process restart does)."""
    ctx.restart()
    return "restarted"


@builtin("power_cut")
def power_cut(ctx: ScenarioContext) -> dict[str, Any]:
    """Cut the power now: the active ``power_loss`` fault drops unsynced writes, and the runtime restarts
    on what survived."""
    fault = next((f for f in ctx.active_faults if f.name == "power_loss"), None)
    if fault is None:
        raise RuntimeUnsupported("power_cut needs an active power_loss fault; add a `fault: power_loss` step first")
    ctx.close_runtime()
    images = fault.cut(ctx.tmp_path / f"power-cut-{len(fault.records)}")  # type: ignore[attr-defined]
    fault.heal()
    for original, copy in images.items():
        shutil.copyfile(copy, original)
    for suffix in ("-wal", "-shm", "-journal"):
        stale = Path(str(ctx.path) + suffix)
        if stale.exists() and str(stale) not in images:
            os.remove(stale)
    ctx.restart()
    return {"files": len(images)}


@builtin("wait")
def wait(ctx: ScenarioContext, seconds: float) -> None:
    """Sleep ``seconds`` (e.g. until a ``locked`` fault with a ``duration`` lets go)."""
    time.sleep(float(seconds))


# -- helpers shared with the runner ------------------------------------------------------------
def to_migrations(ctx: ScenarioContext, migrations: Any = None) -> Any:
    """Scenario migration mappings (or a folder relative to the scenario file) → runtime migrations."""
    from reliability.schema import Migration

    migrations = ctx.migrations if migrations is None else migrations
    if migrations is None:
        raise RuntimeUnsupported("no migrations: give `migrations` here or under the scenario's `setup:`")
    if isinstance(migrations, str):
        return str(ctx.scenario_dir / migrations)
    return [m if isinstance(m, Migration) else Migration(m["version"], m["name"], m["up"], m.get("down"))
            for m in migrations]


def _params(params: Any) -> Any:
    if params is None:
        return ()
    return params if isinstance(params, dict) else tuple(params)


def _with_value(result: Any, value: Any) -> Any:
    from dataclasses import replace

    return replace(result, value=value)


def _plain(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
