"""The ``reliability`` command line: ``reliability --db PATH [--env FILE] [--json] COMMAND``.

Each subcommand opens the database, calls the one facade method it is named after and
prints the result (human-readable, or JSON with ``--json``). Database errors become a
user-facing message on stderr, never a traceback.

Exit codes scripts can rely on:

====  ==========================================================================
0     success
1     not healthy / a check found problems / the audit chain is broken
2     usage error or invalid input (bad flag name, missing file, unsupported command)
3     database error (the message says what happened)
4     configuration error (the message names each bad setting)
5     the change was accepted and queued: it is saved when the database is back
6     not authorized (the attempt was audited)
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import admin
from .config import ConfigError, ReliabilityConfig
from .degradation import CommandResult
from .errors import KIND_INFO, DatabaseError, classify, sqlite_errors
from .manager import DatabaseManager
from .names import printable

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
EXIT_DB_ERROR = 3
EXIT_CONFIG_ERROR = 4
EXIT_QUEUED = 5
EXIT_DENIED = 6

_STATUS_EXIT = {"ok": EXIT_OK, "queued": EXIT_QUEUED, "denied": EXIT_DENIED, "rejected": EXIT_USAGE,
                "unavailable": EXIT_DB_ERROR, "error": EXIT_DB_ERROR}


class Unsupported(Exception):
    """The runtime in use has no such operation."""


def _add(sub: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=f"{help[0].upper()}{help[1:]}.\n\nExample: {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="reliability", description="SQLite reliability runtime tools.",
        epilog="Exit codes: 0 ok, 1 unhealthy/problems found, 2 usage, 3 database error, 4 config error, "
               "5 change queued, 6 not authorized.")
    parser.add_argument("--db", help="database file (default: RELIABILITY_DB_PATH or reliability.db)")
    parser.add_argument("--env", default=".env", help="the .env file to read settings from (default: .env)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add(sub, "health", "show the health report; exit 1 when not healthy", "reliability --db app.db health")
    p = _add(sub, "check", "check the database's integrity; exit 1 when problems are found",
             "reliability --db app.db check --full")
    p.add_argument("--full", action="store_true", help="full integrity_check instead of the quick check")
    for name, text in (("migrate", "apply pending schema migrations"),
                       ("schema", "compare the schema with the migrations; exit 1 on a mismatch")):
        p = _add(sub, name, text, f"reliability --db app.db {name} --migrations migrations/")
        p.add_argument("--migrations", metavar="DIR", help="folder of migration files"
                       + (" (required)" if name == "migrate" else ""))
    _add(sub, "backup", "make a verified backup now", "reliability --db app.db backup")
    _add(sub, "backups", "list the backups", "reliability --db app.db backups")
    p = _add(sub, "restore", "restore a backup (the newest verified one by default)",
             "reliability --db app.db restore app.db.backups/app-20250101T000000.db")
    p.add_argument("path", nargs="?", help="the backup file to restore")
    _add(sub, "recover", "recover a damaged database (quarantine, restore, replay the redo journal)",
         "reliability --db app.db recover")
    flags = _add(sub, "flags", "read and change feature flags", "reliability --db app.db flags set beta on")
    fsub = flags.add_subparsers(dest="flags_command", required=True, metavar="ACTION")
    p = _add(fsub, "get", "show one flag", "reliability --db app.db flags get beta")
    p.add_argument("name", help="the flag's name")
    p = _add(fsub, "set", "set a flag (admins only; audited; queued while the database is unavailable)",
             "reliability --db app.db flags set --actor alice --type json beta true")
    p.add_argument("name", help="the flag's name")
    p.add_argument("value", help="the new value")
    p.add_argument("--type", choices=("str", "json"), default="str",
                   help="how to read VALUE: as text (default) or as JSON (true, 3, null, \"x\")")
    p.add_argument("--actor", default=None, help="who makes the change (default: the current user)")
    _add(fsub, "list", "list every flag", "reliability --db app.db flags list")
    p = _add(sub, "audit", "show the audit log, newest first", "reliability --db app.db audit --limit 20")
    p.add_argument("--limit", type=_positive_int, default=50, help="how many entries (default 50)")
    p.add_argument("--actor", help="only this actor's entries")
    p.add_argument("--action", help="only this action")
    p.add_argument("--since", type=float, help="only entries at or after this Unix time")
    _add(sub, "verify-audit", "verify the audit log's hash chain; exit 1 when broken",
         "reliability --db app.db verify-audit")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # dbfault: no fault (a CLI usage error)
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # dbfault: no fault (argparse: --help or a usage error, message already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        overrides = {"db_path": args.db} if args.db else {}
        config = ReliabilityConfig.from_env(args.env, **overrides)
    except ConfigError as exc:  # dbfault: no fault (an invalid setting)
        print(f"reliability: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    handler = _HANDLERS[args.command if args.command != "flags" else f"flags {args.flags_command}"]
    try:
        with DatabaseManager(config) as db:
            code, data, text = handler(db, args)
    except DatabaseError as exc:
        print(f"reliability: {exc.user_message} (error kind: {exc.kind})", file=sys.stderr)
        if exc.detail:
            print(f"  detail: {exc.detail}", file=sys.stderr)
        return EXIT_DB_ERROR
    except sqlite_errors() as exc:  # dbfault: no fault (guard: the runtime wraps driver errors; still no traceback)
        kind = classify(exc)
        print(f"reliability: {KIND_INFO[kind].user_message} (error kind: {kind})\n  detail: {exc}", file=sys.stderr)
        return EXIT_DB_ERROR
    except Unsupported as exc:  # dbfault: no fault (guard: a runtime without the command's method)
        print(f"reliability: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as exc:  # dbfault: no fault (bad input: missing folder, bad JSON)
        print(f"reliability: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # dbfault: no fault (an OS error outside SQLite, e.g. backup folder path is a file)
        print(f"reliability: {exc}", file=sys.stderr)
        return EXIT_DB_ERROR
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False))
    else:
        if text:
            print(text)
    return code


# -- handlers: (db, args) -> (exit code, JSON data, human text) ------------------------------------
Result = tuple[int, Any, str]


def _facade(db: DatabaseManager, method: str, *args: Any, **kwargs: Any) -> Any:
    fn = getattr(db, method, None)
    if fn is None:
        raise Unsupported(f"this runtime has no db.{method}(); the command is not available")
    return fn(*args, **kwargs)


def _as_dict(obj: Any) -> Any:
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


def _lines(data: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in data.items())


def _health(db: DatabaseManager, args: argparse.Namespace) -> Result:
    report = db.health()
    lines = [f"status: {report.status}"] + [f"  - {r}" for r in report.reasons]
    lines.append(f"connection: {report.connection_state}")
    lines.append(f"wal size: {report.wal_size if report.wal_size is not None else 'none'}")
    queue = report.extra.get("write_queue")
    if queue:
        lines.append(f"write queue: {queue['pending']} pending, {queue['failed']} failed")
    return (EXIT_OK if report.healthy else EXIT_UNHEALTHY), report.to_dict(), "\n".join(lines)


def _check(db: DatabaseManager, args: argparse.Namespace) -> Result:
    report = _facade(db, "check_integrity", full=args.full)
    data = _as_dict(report)
    text = "integrity: ok" if report.ok else "integrity: PROBLEMS\n" + "\n".join(f"  - {p}" for p in report.problems)
    return (EXIT_OK if report.ok else EXIT_UNHEALTHY), data, text


def _migrate(db: DatabaseManager, args: argparse.Namespace) -> Result:
    result = _facade(db, "migrate", _migrations(args))
    data = _as_dict(result)
    applied = list(getattr(result, "applied", []))
    text = (f"applied {len(applied)} migration(s): {', '.join(map(str, applied))}" if applied
            else "nothing to apply") + f"\ncurrent version: {result.current_version}"
    return EXIT_OK, data, text


def _migrations(args: argparse.Namespace) -> str:
    if not args.migrations:
        raise ValueError("--migrations DIR is required (the folder holding the migration files)")
    if not os.path.isdir(args.migrations):
        raise FileNotFoundError(f"--migrations {args.migrations!r} is not a folder")
    return args.migrations


def _schema(db: DatabaseManager, args: argparse.Namespace) -> Result:
    report = _facade(db, "validate_schema", _migrations(args) if args.migrations else None)
    text = (f"schema: {'ok' if report.ok else 'MISMATCH'} (version {report.current_version}, "
            f"expected {report.expected_version})")
    text += "".join(f"\n  - {p}" for p in report.problems)
    return (EXIT_OK if report.ok else EXIT_UNHEALTHY), _as_dict(report), text


def _backup(db: DatabaseManager, args: argparse.Namespace) -> Result:
    info = _facade(db, "backup")
    return EXIT_OK, _as_dict(info), f"backup written: {info.path} ({info.size} bytes, verified: {info.verified})"


def _backups(db: DatabaseManager, args: argparse.Namespace) -> Result:
    infos = _facade(db, "backups")
    text = "\n".join(f"{i.path}  {i.size} bytes  verified: {i.verified}" for i in infos) or "no backups"
    return EXIT_OK, [_as_dict(i) for i in infos], text


def _restore(db: DatabaseManager, args: argparse.Namespace) -> Result:
    if args.path and not os.path.isfile(args.path):
        raise FileNotFoundError(f"backup {args.path!r} does not exist")
    info = _facade(db, "restore", args.path)
    return EXIT_OK, _as_dict(info), f"restored from {info.path}"


def _recover(db: DatabaseManager, args: argparse.Namespace) -> Result:
    report = _facade(db, "recover")
    data = _as_dict(report)
    return (EXIT_OK if report.ok else EXIT_UNHEALTHY), data, _lines(data)


def _command_result(result: CommandResult, text: str | None = None) -> Result:
    data = result.to_dict()
    value = result.value
    data["value"] = [_as_dict(v) for v in value] if isinstance(value, list) else _as_dict(value)
    out = text if (text is not None and result.ok) else result.message
    if result.pending and result.status != "queued":
        out += f"\n({result.pending} change(s) still waiting to be saved)"
    stream_ok = result.status in ("ok", "queued")
    if not stream_ok:
        print(f"reliability: {result.message}", file=sys.stderr)
        out = ""
        if result.status == "unavailable" and isinstance(value, list):
            out = "\n".join(_format_entry(e) for e in value)
    return _STATUS_EXIT[result.status], data, out


def _flags_get(db: DatabaseManager, args: argparse.Namespace) -> Result:
    result = admin.get_flag(db, args.name)
    flag = result.value
    return _command_result(result, result.message if flag is None else json.dumps(flag.value, ensure_ascii=False))


def _flags_set(db: DatabaseManager, args: argparse.Namespace) -> Result:
    value: Any = args.value
    if args.type == "json":
        try:
            value = json.loads(args.value)
        except ValueError as exc:  # dbfault: no fault (VALUE is not valid JSON)
            raise ValueError(f"VALUE {args.value!r} is not valid JSON ({exc}); use --type str for text") from None
    actor = args.actor or os.environ.get("USER") or getpass.getuser()
    return _command_result(admin.set_flag(db, args.name, value, actor))


def _flags_list(db: DatabaseManager, args: argparse.Namespace) -> Result:
    result = admin.list_flags(db)
    text = "\n".join(f"{f.name} = {json.dumps(f.value, ensure_ascii=False)}  (by {f.updated_by})"
                     for f in (result.value or [])) or "no flags"
    return _command_result(result, text)


def _format_entry(e: Any) -> str:
    mark = " (pending)" if e.pending else ""
    return f"{e.ts:.3f} {printable(e.actor)} {printable(e.action)} {printable(e.target)} {json.dumps(e.details)}{mark}"


def _audit(db: DatabaseManager, args: argparse.Namespace) -> Result:
    caller = os.environ.get("USER") or getpass.getuser()  # the CLI's identity (h19-cli: #15 item 7)
    result = admin.audit(db, args.limit, args.actor, args.action, args.since, caller=caller)
    text = "\n".join(_format_entry(e) for e in (result.value or [])) or "no entries"
    return _command_result(result, text)


def _verify_audit(db: DatabaseManager, args: argparse.Namespace) -> Result:
    report = db.audit.verify()
    text = (f"audit chain ok ({report.checked} entries)" if report.ok else
            f"audit chain BROKEN at entry {report.first_broken_seq} ({report.first_broken_id}): {report.reason}")
    return (EXIT_OK if report.ok else EXIT_UNHEALTHY), report.to_dict(), text


_HANDLERS: dict[str, Callable[[DatabaseManager, argparse.Namespace], Result]] = {
    "health": _health,
    "check": _check,
    "migrate": _migrate,
    "schema": _schema,
    "backup": _backup,
    "backups": _backups,
    "restore": _restore,
    "recover": _recover,
    "flags get": _flags_get,
    "flags set": _flags_set,
    "flags list": _flags_list,
    "audit": _audit,
    "verify-audit": _verify_audit,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
