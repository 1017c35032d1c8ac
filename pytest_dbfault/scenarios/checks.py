"""The checks of an ``expect:`` step and the state invariant of each property.

Each check is ``fn(ctx, expected) -> str | None``: ``None`` when it holds, else what was
found instead (the runner puts it in the failure report). They go through the runtime's
public API only, so they work on any runtime offering the ``DatabaseManager`` methods.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from .context import ScenarioContext

Check = Callable[[ScenarioContext, Any], "str | None"]


def normalise(value: Any) -> Any:
    """Rows, tuples and report objects → plain lists/dicts, so YAML values compare equal."""
    if isinstance(value, (sqlite3.Row, tuple, list)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return normalise(to_dict())
    return value


def matches(expected: Any, actual: Any) -> bool:
    """``actual`` equals ``expected``; a mapping only needs the keys ``expected`` names."""
    actual = normalise(actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, float) or isinstance(actual, float):
        return _is_number(expected) and _is_number(actual) and abs(expected - actual) < 1e-9
    return type(expected) is type(actual) and bool(expected == actual)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_rows(ctx: ScenarioContext, expected: dict[str, int]) -> str | None:
    found = {table: ctx.db.fetch_one(f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}"')[0]
             for table in expected}
    wrong = {t: n for t, n in found.items() if n != expected[t]}
    return None if not wrong else "row counts " + ", ".join(f"{t}={n}" for t, n in wrong.items())


def check_query(ctx: ScenarioContext, expected: Any) -> str | None:
    for query in expected if isinstance(expected, list) else [expected]:
        params = query.get("params") or ()
        rows = normalise(ctx.db.fetch_all(query["sql"], params if isinstance(params, dict) else tuple(params)))
        want = query["result"]
        got: Any = rows
        if not isinstance(want, list):  # one value: the first column of the only row
            got = rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else rows
        if not matches(want, got):
            return f"{query['sql']!r} returned {got!r}"
    return None


def check_flag(ctx: ScenarioContext, expected: dict[str, Any]) -> str | None:
    from reliability import admin

    result = admin.get_flag(ctx.db, expected["name"])
    if not result.ok:
        return f"could not read flag {expected['name']!r}: {result.status}: {result.message}"
    value = getattr(result.value, "value", None)
    return None if matches(expected["value"], value) else f"flag {expected['name']!r} is {value!r}"


def check_audit(ctx: ScenarioContext, expected: dict[str, Any]) -> str | None:
    audit = ctx.require("audit")
    entries = audit.entries(10_000, actor=expected.get("actor"), action=expected.get("action"))
    if "target" in expected:
        entries = [e for e in entries if e.target == expected["target"]]
    count = expected.get("count")
    if count is None and "verified" not in expected and not entries:
        return "no matching audit entry"
    if count is not None and len(entries) != count:
        return f"{len(entries)} matching audit entries"
    if "verified" in expected:
        report = audit.verify()
        if bool(report.ok) != expected["verified"]:
            return f"audit chain verification: {normalise(report)}"
    return None


def check_integrity(ctx: ScenarioContext, expected: str) -> str | None:
    from reliability.health import check_integrity as integrity

    report = integrity(str(ctx.path), full=True)
    state = "ok" if report.ok else "failed"
    return None if state == expected else f"integrity {state}: {'; '.join(report.problems[:3]) or 'no problems'}"


def check_health(ctx: ScenarioContext, expected: str) -> str | None:
    report = ctx.require("health")()
    status = str(report.status)
    return None if status == expected else f"health {status} (reasons: {'; '.join(report.reasons) or 'none'})"


def check_backup(ctx: ScenarioContext, expected: str) -> str | None:
    backups = ctx.require("backups")()
    state = "exists" if backups else "none"
    return None if state == expected else f"backup {state} ({len(backups)} backups)"


def check_queue(ctx: ScenarioContext, expected: Any) -> str | None:
    length = len(ctx.require("queue"))
    want = 0 if expected == "empty" else expected
    return None if length == want else f"{length} write(s) in the queue"


def check_version(ctx: ScenarioContext, expected: int) -> str | None:
    from reliability.schema import applied_versions

    versions = applied_versions(ctx.db.connection)
    current = max(versions, default=0)
    return None if current == expected else f"schema version {current}"


def check_schema(ctx: ScenarioContext, expected: str) -> str | None:
    from .commands import to_migrations

    report = ctx.require("validate_schema")(to_migrations(ctx))
    state = "valid" if report.ok else "invalid"
    return None if state == expected else f"schema {state}: {'; '.join(report.problems) or 'no problems'}"


#: ``expect:`` keys → checks, in the order they run.
CHECKS: dict[str, Check] = {
    "rows": check_rows,
    "query": check_query,
    "flag": check_flag,
    "audit": check_audit,
    "integrity": check_integrity,
    "health": check_health,
    "backup": check_backup,
    "queue": check_queue,
    "version": check_version,
    "schema": check_schema,
}


# -- property invariants -----------------------------------------------------------------------
def _answers(ctx: ScenarioContext) -> str | None:
    try:
        ctx.db.fetch_one("SELECT 1")
    except Exception as exc:  # any failure is the finding
        return f"the database does not answer: {exc}"
    return None


def _sound(ctx: ScenarioContext) -> str | None:
    return _answers(ctx) or check_integrity(ctx, "ok")


def _no_open_transaction(ctx: ScenarioContext) -> str | None:
    conn = ctx.db.connection
    return "a transaction was left open" if conn.in_transaction else _sound(ctx)


def _health_reports(ctx: ScenarioContext) -> str | None:
    report = ctx.require("health")()
    return None if str(report.status) in ("healthy", "degraded", "unavailable") else f"health {report.status!r}"


def _backup_exists(ctx: ScenarioContext) -> str | None:
    return check_backup(ctx, "exists")


def _queue_drained(ctx: ScenarioContext) -> str | None:
    return check_queue(ctx, "empty")


def _audit_saved(ctx: ScenarioContext) -> str | None:
    audit = ctx.require("audit")
    pending = audit.pending()
    if pending:
        return f"{len(pending)} audit entries still only in the fallback file"
    report = audit.verify()
    return None if report.ok else f"audit chain broken: {normalise(report)}"


def _schema_valid(ctx: ScenarioContext) -> str | None:
    return check_schema(ctx, "valid") if ctx.migrations is not None else _sound(ctx)


#: Property number → invariant on the current state; properties not listed use "answers and is sound".
INVARIANTS: dict[int, Callable[[ScenarioContext], str | None]] = {
    1: _answers,
    3: _schema_valid,
    6: _no_open_transaction,
    7: _no_open_transaction,
    10: _health_reports,
    11: lambda ctx: check_integrity(ctx, "ok"),
    12: _backup_exists,
    13: _sound,
    14: _queue_drained,
    15: _audit_saved,
}


def property_holds(ctx: ScenarioContext, number: int) -> str | None:
    """``None`` when property ``number``'s invariant holds now, else what was found."""
    return INVARIANTS.get(number, _sound)(ctx)
