"""The ``reliability`` command line: ``reliability [--db PATH] [--env FILE] [--json] COMMAND``.

Inspection commands (``health``, ``check``, ``flags list``/``flags get``, ``audit``, ``verify-audit``,
``backups``, ``schema``, ``config show``) read through :class:`~reliability.inspection.Inspector`:
the database is opened read-only and nothing is changed, created, backed up or recovered.
Repairs and changes (``recover``, ``restore``, ``migrate``, ``backup``, ``flags set``) are explicit
and go through :class:`~reliability.manager.DatabaseManager`. Only ``migrate`` creates a missing
database (``restore`` and ``recover`` bring one back from a backup); every other command reports a
missing database as an error naming the path.

With ``--json`` every outcome, errors included, is one JSON document on stdout::

    {"command": "health", "status": "ok", "exit_code": 0, "message": "...", "value": {...}, "error": null}

Exit codes scripts can rely on (``status`` names them):

====  =====================  ================================================================
0     ``ok``                 success
1     ``unhealthy``          not healthy / a check found problems / the audit chain is broken or not verifiable
2     ``usage_error``        bad arguments or input (unknown command, bad flag name, missing file)
3     ``database_error``     the database could not do it (the message says what happened)
4     ``configuration_error`` a setting is invalid or unusable (the message names the key)
5     ``queued``             the change was accepted and queued: saved when the database is back
6     ``not_authorized``     the caller may not do this (attempted changes are audited)
====  =====================  ================================================================

Identity: the CLI acts as the effective OS user (``pwd.getpwuid(os.geteuid())``); ``--actor``
only labels a change made on behalf of someone else, and only an administrator may do that.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import admin
from .config import ConfigError, ReliabilityConfig
from .connection import load_sqlite_module
from .degraded import CommandResult
from .durability.backup import BackupError, BackupManager, resolve_backup_name, verify_file
from .durability.lost_commits import find_lost_commits
from .errors import KIND_INFO, DatabaseError, ErrorKind, classify, sqlite_errors
from .inspection import Inspector, is_sqlite_file
from .manager import DatabaseManager
from .names import printable, validate_actor
from .schema import MigrationError

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
EXIT_DB_ERROR = 3
EXIT_CONFIG_ERROR = 4
EXIT_QUEUED = 5
EXIT_DENIED = 6

#: The envelope's ``status`` for each exit code.
STATUS = {EXIT_OK: "ok", EXIT_UNHEALTHY: "unhealthy", EXIT_USAGE: "usage_error", EXIT_DB_ERROR: "database_error",
          EXIT_CONFIG_ERROR: "configuration_error", EXIT_QUEUED: "queued", EXIT_DENIED: "not_authorized"}

_RESULT_EXIT = {"ok": EXIT_OK, "queued": EXIT_QUEUED, "denied": EXIT_DENIED, "rejected": EXIT_USAGE,
                "unavailable": EXIT_DB_ERROR, "error": EXIT_DB_ERROR}

#: The most audit entries one ``audit`` call returns (a bigger --limit is a usage error, not a huge read).
MAX_AUDIT_LIMIT = 100_000

#: Keys whose values are Unix times; printed (and put in JSON) as ISO 8601 UTC.
_TIME_KEYS = frozenset({"ts", "created_at", "updated_at", "last_backup_at", "last_integrity_check_at",
                        "queued_at", "applied_at"})


class UsageError(Exception):
    """Bad arguments or input on the command line (exit 2)."""


class ConfigProblem(Exception):
    """A setting that cannot be used (exit 4); the message names the key."""


class Unsupported(Exception):
    """The runtime in use has no such operation."""


@dataclass
class Outcome:
    """What a command ends with: exit code, one-line message, JSON value, human text."""

    code: int
    message: str = ""
    value: Any = None
    text: str | None = None
    error: dict[str, Any] | None = None
    #: Extra lines for stderr in human mode (e.g. a detail under an error message).
    notes: list[str] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    # argparse prints usage errors and exits; we raise so that --json can report them as JSON too.
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _add(sub: Any, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=f"{help[0].upper()}{help[1:]}.\n\nExample: {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dbfault")
    except Exception:  # dbfault: no fault (not installed as a distribution, e.g. run from a source tree)
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(
        prog="reliability", description="SQLite reliability runtime tools. Inspection commands open the "
        "database read-only and change nothing; repairs (recover, restore, migrate, backup) are explicit.",
        epilog="Exit codes: 0 ok, 1 unhealthy/problems found, 2 usage, 3 database error, 4 configuration error, "
               "5 change queued, 6 not authorized. With --json every outcome is one JSON document on stdout.")
    parser.add_argument("--version", action="version", version=f"%(prog)s (dbfault) {_version()}")
    parser.add_argument("--db", help="database file (default: RELIABILITY_DB_PATH or reliability.db)")
    parser.add_argument("--env", default=None, help="the .env file to read settings from (default: ./.env if "
                        "present; a file named here must exist)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout, errors included")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add(sub, "health", "show the health report, read-only; exit 1 when not healthy", "reliability --db app.db health")
    p = _add(sub, "check", "check the database's integrity, read-only; exit 1 when problems are found",
             "reliability --db app.db check --full")
    p.add_argument("--full", action="store_true", help="full integrity_check instead of the quick check")
    p = _add(sub, "migrate", "apply pending schema migrations (creates the database if missing)",
             "reliability --db app.db migrate --migrations migrations/")
    p.add_argument("--migrations", metavar="DIR", help="folder of migration files (required)")
    p = _add(sub, "schema", "compare the schema with the migrations, read-only; exit 1 on a mismatch",
             "reliability --db app.db schema --migrations migrations/")
    p.add_argument("--migrations", metavar="DIR", help="folder of migration files")
    _add(sub, "backup", "make a verified backup now", "reliability --db app.db backup")
    _add(sub, "backups", "list the backups, read-only", "reliability --db app.db backups")
    p = _add(sub, "restore", "restore a backup (the newest verified one by default); the current files are kept "
             "aside", "reliability --db app.db restore app.db.backups/backup-20250101T000000.000000Z.sqlite")
    p.add_argument("path", nargs="?", help="the backup file to restore")
    _add(sub, "recover", "recover a damaged database (quarantine, restore, replay the redo journal); "
         "a healthy database is left alone", "reliability --db app.db recover")
    flags = _add(sub, "flags", "read and change feature flags", "reliability --db app.db flags set beta on")
    fsub = flags.add_subparsers(dest="flags_command", required=True, metavar="ACTION")
    p = _add(fsub, "get", "show one flag, read-only", "reliability --db app.db flags get beta")
    p.add_argument("name", help="the flag's name")
    p = _add(fsub, "set", "set a flag (administrators only; audited; queued while the database is unavailable)",
             "reliability --db app.db flags set --type json beta true")
    p.add_argument("name", help="the flag's name")
    p.add_argument("value", help="the new value")
    p.add_argument("--type", choices=("str", "json"), default="str",
                   help="how to read VALUE: as text (default) or as JSON (true, 3, null, \"x\")")
    p.add_argument("--actor", default=None, help="make the change on behalf of this actor (only when you, the OS "
                   "user, are an administrator; both names are audited)")
    _add(fsub, "list", "list every flag, read-only", "reliability --db app.db flags list")
    p = _add(sub, "audit", "show the audit log, newest first, read-only (administrators only)",
             "reliability --db app.db audit --limit 20")
    p.add_argument("--limit", type=_limit, default=50, help=f"how many entries (default 50, at most "
                   f"{MAX_AUDIT_LIMIT})")
    p.add_argument("--actor", help="only this actor's entries")
    p.add_argument("--action", help="only this action")
    p.add_argument("--since", type=_timestamp, help="only entries at or after this time (ISO 8601 or Unix time)")
    _add(sub, "verify-audit", "verify the audit log's hash chain, read-only; exit 1 when broken",
         "reliability --db app.db verify-audit")
    config = _add(sub, "config", "show the settings in force", "reliability --env .env config show")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    _add(csub, "show", "show the settings in force (the audit key masked) and who you are",
         "reliability --env .env config show")
    p = _add(sub, "selfcheck", "run the shipped property machines and scenarios against this installed runtime "
             "and print the property x fault report (needs the plugin extra)",
             "reliability selfcheck -- -k 'transactions or faults'")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST_ARGS",
                   help="more arguments for pytest, after --")
    return parser


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # dbfault: no fault (a CLI usage error)
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1 or value > MAX_AUDIT_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a positive whole number up to {MAX_AUDIT_LIMIT}, got {text!r}")
    return value


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # dbfault: no fault (not a number: read as ISO 8601 below)
        pass
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # dbfault: no fault (a CLI usage error)
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time or a Unix time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()


# -- identity ------------------------------------------------------------------------------------
def os_user() -> str:
    """The effective OS user: who runs this process, not who it claims to be."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, AttributeError):  # dbfault: no fault (Windows: no pwd module)
        import getpass

        return getpass.getuser()
    except KeyError:  # dbfault: no fault (a uid without a passwd entry, e.g. in a container)
        return f"uid:{os.geteuid()}"


# -- output --------------------------------------------------------------------------------------
def safe(text: Any) -> str:
    """``text`` for one line of human output: :func:`reliability.names.printable` (control characters and line
    separators escaped), plus invisible format characters (bidi overrides, zero-width) shown as escapes, so a
    name can neither forge a line nor disguise itself."""
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) == "Cf" else ch for ch in printable(text))


def json_line(value: Any) -> str:
    """``value`` as JSON on one line for human output: readable Unicode, but every control, line
    separator and format character escaped as JSON itself allows (``\\u2028``), so it stays valid JSON."""
    text = json.dumps(value, ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch
                   for ch in text)


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with milliseconds (``2025-01-01T12:00:00.000+00:00``)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds")


def _jsonable(value: Any, key: str | None = None) -> Any:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _jsonable(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if key in _TIME_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return iso(value)
    return value


def _emit(command: str, outcome: Outcome, as_json: bool) -> int:
    if as_json:
        doc = {"command": command, "status": STATUS[outcome.code], "exit_code": outcome.code,
               "message": outcome.message, "value": _jsonable(outcome.value), "error": outcome.error}
        print(json.dumps(doc, indent=2, sort_keys=True, default=str, ensure_ascii=False))
        return outcome.code
    if outcome.code in (EXIT_OK, EXIT_UNHEALTHY, EXIT_QUEUED):
        text = outcome.text if outcome.text is not None else outcome.message
        if text:
            print(text)
    else:
        # Our messages may span lines (one per invalid setting); each line is escaped on its own, and
        # names inside them are quoted with repr() by their authors, so none can forge a line.
        print("reliability: " + "\n".join(safe(line) for line in outcome.message.split("\n")), file=sys.stderr)
        for note in outcome.notes:
            print(f"  {note}", file=sys.stderr)
        if outcome.text:
            print(outcome.text)
    return outcome.code


def _error(code: int, message: str, kind: str, **more: Any) -> Outcome:
    notes = [f"detail: {safe(more['detail'])}"] if more.get("detail") else []
    return Outcome(code, message, error={"kind": kind, **more}, notes=notes)


def _db_error(exc: DatabaseError) -> Outcome:
    more: dict[str, Any] = {}
    if isinstance(exc, MigrationError):
        # What of the batch stays applied is part of the answer: the operator fixes the failing file and
        # reruns, and a script reading --json must not have to parse the message for it.
        more["applied"] = list(exc.applied)
    out = _error(EXIT_DB_ERROR, f"{exc.user_message} (error kind: {exc.kind})", str(exc.kind),
                 detail=exc.detail or None, operation_id=exc.operation_id or None, **more)
    if isinstance(exc, MigrationError):
        out.notes.append(f"applied before the failure (they stay applied): "
                         f"{', '.join(map(str, exc.applied)) if exc.applied else 'none'}")
    return out


# -- main ----------------------------------------------------------------------------------------
def _wants_json(argv: Sequence[str]) -> bool:
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """:func:`build_parser`, built once per process: parsing leaves the parser as it was, and building it cost
    about 5 ms of CPU per :func:`main` call (every subcommand, a gettext lookup of each help text in the locale
    directories, the installed version), paid again by every call of a program or harness that embeds the CLI
    (the property machines call it hundreds of times a run)."""
    return build_parser()


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module docstring).

    ``environ``: the environment the ``RELIABILITY_*`` settings are read from (default ``os.environ``); a
    program embedding the CLI, or a test harness, passes its own so a caller's settings do not leak in.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    for n, arg in enumerate(argv, 1):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in arg):
            # Bytes that are not UTF-8 arrive as lone surrogates: refuse them before they reach a name.
            return _emit("", _error(EXIT_USAGE, f"argument {n} ({safe(arg)}) is not valid UTF-8 text", "usage"),
                         as_json)
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:  # dbfault: no fault (argparse: a usage error)
        return _emit("", _error(EXIT_USAGE, str(exc), "usage"), as_json)
    except SystemExit as exc:  # dbfault: no fault (argparse: --help or --version, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = _command_name(args)
    try:
        config = _load_config(args, environ) if command != "selfcheck" else ReliabilityConfig()
        outcome = _HANDLERS[command](args, config)
    except UsageError as exc:  # dbfault: no fault (bad input on the command line)
        outcome = _error(EXIT_USAGE, str(exc), "usage")
    except ConfigProblem as exc:  # dbfault: no fault (an unusable setting)
        outcome = _error(EXIT_CONFIG_ERROR, str(exc), "configuration")
    except ConfigError as exc:  # dbfault: no fault (an invalid setting)
        outcome = _error(EXIT_CONFIG_ERROR, str(exc), "configuration",
                         problems=[{"key": k, "value": v, "reason": r, "where": exc.where.get(k)}
                                   for k, v, r in exc.problems])
    except DatabaseError as exc:
        outcome = _db_error(exc)
    except sqlite_errors() as exc:  # dbfault: no fault (guard: the runtime wraps driver errors; still no traceback)
        kind = classify(exc)
        outcome = _error(EXIT_DB_ERROR, f"{KIND_INFO[kind].user_message} (error kind: {kind})", str(kind),
                         detail=str(exc))
    except Unsupported as exc:  # dbfault: no fault (guard: a runtime without the command's method)
        outcome = _error(EXIT_USAGE, str(exc), "unsupported")
    except OSError as exc:  # dbfault: no fault (an OS error outside SQLite)
        where = f" ({exc.filename})" if exc.filename else ""
        outcome = _error(EXIT_DB_ERROR, f"{exc.strerror or exc}{where}", "os", detail=str(exc))
    except Exception as exc:  # dbfault: no fault (a bug: still one message and the JSON contract, no traceback)
        outcome = _error(EXIT_DB_ERROR, f"unexpected error in {command!r}: {type(exc).__name__}: {exc} (this is a "
                         "bug in dbfault; please report it with the command you ran)", "internal",
                         detail=f"{type(exc).__name__}: {exc}")
    return _emit(command, outcome, as_json)


def _command_name(args: argparse.Namespace) -> str:
    sub = getattr(args, f"{args.command.replace('-', '_')}_command", None)
    return f"{args.command} {sub}" if sub else args.command


def _load_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ReliabilityConfig:
    if args.db is not None and not args.db.strip():
        raise UsageError("--db must name a database file, not an empty string")
    env: str | None = ".env"
    if args.env is not None:
        if not args.env.strip():
            raise UsageError("--env must name a file, not an empty string")
        if os.path.isdir(args.env):
            raise UsageError(f"--env {args.env!r} is a folder, not a .env file")
        if not os.path.isfile(args.env):
            raise UsageError(f"--env {args.env!r} does not exist")
        env = args.env
    overrides = {"db_path": args.db} if args.db else {}
    config = ReliabilityConfig.from_env(env, environ=environ, **overrides)
    try:
        load_sqlite_module(config.sqlite_module)
    except DatabaseError as exc:  # dbfault: no fault (RELIABILITY_SQLITE_MODULE not installed)
        raise ConfigProblem(f"RELIABILITY_SQLITE_MODULE={config.sqlite_module!r} cannot be used: "
                            f"{exc.__cause__ or exc.detail}. Install it or set sqlite3.") from None
    return config


def _require_db(config: ReliabilityConfig) -> None:
    path = config.db_path
    if not os.path.exists(path):
        hint = ""
        if _verified_backups(config):
            # recover, not restore: it also replays the redo journal, so no acknowledged write is lost.
            hint = (f" Verified backups exist in {str(config.backup_directory)!r}: bring it back with "
                    f"'reliability --db {path} recover' (the newest verified backup plus the redo journal; "
                    f"'reliability --db {path} restore' puts back a backup alone).")
        raise DatabaseError(ErrorKind.CANTOPEN, f"the database {path!r} does not exist",
                            user_message=f"The database {path!r} does not exist; nothing was done.{hint}")
    if not os.path.isfile(path):
        raise DatabaseError(ErrorKind.CANTOPEN, f"{path!r} is not a file",
                            user_message=f"{path!r} is not a database file; nothing was done.")
    if _emptied(config):
        raise DatabaseError(ErrorKind.CANTOPEN, f"the database {path!r} is empty (0 bytes) but the runtime managed "
                            "it before (backups or a redo journal exist)",
                            user_message=f"The database {path!r} is empty although it held data before; nothing was "
                            f"done. Bring it back with 'reliability --db {path} recover' (the newest verified backup "
                            "plus the redo journal).")


def _emptied(config: ReliabilityConfig) -> bool:
    """A 0-byte database the runtime has managed (backups or a redo journal exist): an incident, as missing is,
    never an empty database to inspect (SQLite would read it as one)."""
    path = config.db_path
    return (os.path.isfile(path) and os.path.getsize(path) == 0
            and (bool(_verified_backups(config)) or config.redo_journal_file.exists()))


def _verified_backups(config: ReliabilityConfig) -> list[Any]:
    if not config.backup_directory.is_dir():
        return []
    return [b for b in BackupManager(config.backup_directory, config.backup_keep).list() if b.verified]


def _check_backup_dir(config: ReliabilityConfig) -> None:
    """An unusable backup folder is a configuration problem named by its key, found before anything runs."""
    directory = config.backup_directory
    key = "RELIABILITY_BACKUP_DIR" if config.backup_dir else "RELIABILITY_BACKUP_DIR (default <db>.backups)"
    if directory.exists():
        if not directory.is_dir():
            raise ConfigProblem(f"{key}={str(directory)!r} is not a folder")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigProblem(f"{key}={str(directory)!r} is not writable")
        return
    parent = directory.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigProblem(f"{key}={str(directory)!r} cannot be created: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigProblem(f"{key}={str(directory)!r} cannot be created: {str(parent)!r} is not writable")


def _facade(db: DatabaseManager, method: str, *args: Any, **kwargs: Any) -> Any:
    fn = getattr(db, method, None)
    if fn is None:
        raise Unsupported(f"this runtime has no db.{method}(); the command is not available")
    return fn(*args, **kwargs)


def _as_dict(obj: Any) -> Any:
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


# -- inspection handlers (read-only) -------------------------------------------------------------
Handler = Callable[[argparse.Namespace, ReliabilityConfig], Outcome]


def _inspector(config: ReliabilityConfig) -> Inspector:
    _require_db(config)
    return Inspector(config)


def _health(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    with _inspector(config) as view:
        report = view.health()
    lines = [f"status: {report.status}"] + [f"  - {safe(r)}" for r in report.reasons]
    lines.append(f"connection: {report.connection_state} (read-only inspection)")
    lines.append(f"journal mode: {report.extra.get('journal_mode', 'unknown')}")
    lines.append(f"wal size: {report.wal_size if report.wal_size is not None else 'none'}")
    queue = report.extra["write_queue"]
    lines.append(f"write queue: {queue['pending']} pending, {queue['failed']} failed")
    lines.append(f"last verified backup: {iso(report.last_backup_at) or 'none'}")
    code = EXIT_OK if report.healthy else EXIT_UNHEALTHY
    return Outcome(code, f"the database is {report.status}", report.to_dict(), "\n".join(lines))


def _check(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    with _inspector(config) as view:
        report = view.check_integrity(full=args.full)
    if report.ok:
        return Outcome(EXIT_OK, f"integrity: ok ({report.kind} check)", report.to_dict(), "integrity: ok")
    text = "integrity: PROBLEMS\n" + "\n".join(f"  - {safe(p)}" for p in report.problems)
    text += "\nnothing was changed; to repair: reliability --db " + config.db_path + " recover"
    return Outcome(EXIT_UNHEALTHY, f"integrity: {len(report.problems)} problem(s) found", report.to_dict(), text)


def _schema(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    from .schema import SchemaValidator, coerce_migrations

    with _inspector(config) as view:
        view.fetch_one("SELECT count(*) FROM sqlite_master")  # a lock is waited out (retried) before judging
        migrations = coerce_migrations(_migrations(args)) if args.migrations else None
        report = SchemaValidator(migrations).validate(view.connection)
    text = (f"schema: {'ok' if report.ok else 'MISMATCH'} (version {report.current_version}, "
            f"expected {report.expected_version})")
    text += "".join(f"\n  - {safe(p)}" for p in report.problems)
    return Outcome(EXIT_OK if report.ok else EXIT_UNHEALTHY, text.split("\n")[0], _as_dict(report), text)


def _backups(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    directory = config.backup_directory
    if directory.exists() and not directory.is_dir():
        raise ConfigProblem(f"RELIABILITY_BACKUP_DIR={str(directory)!r} is not a folder")
    infos = BackupManager(directory, config.backup_keep).list()
    text = "\n".join(f"{safe(i.path)}  {iso(i.created_at)}  {i.size} bytes  verified: {i.verified}"
                     for i in infos) or f"no backups in {safe(directory)}"
    return Outcome(EXIT_OK, f"{len(infos)} backup(s)", [_as_dict(i) for i in infos], text)


def _flags_get(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    problem = admin.validate_flag_name(args.name)
    if problem:
        raise UsageError(problem)
    with _inspector(config) as view:
        found = view.flags(args.name)
    if not found:
        return Outcome(EXIT_OK, f"Flag {args.name!r} is not set.", None, f"Flag {safe(repr(args.name))} is not set.")
    flag = found[0]
    return Outcome(EXIT_OK, f"Flag {args.name!r} is {json.dumps(flag.value, ensure_ascii=False)}.", flag,
                   json_line(flag.value))


def _flags_list(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    with _inspector(config) as view:
        flags = view.flags()
    text = "\n".join(f"{safe(f.name)} = {json_line(f.value)}  "
                     f"(by {safe(f.updated_by)} at {iso(f.updated_at)})" for f in flags) or "no flags"
    return Outcome(EXIT_OK, f"{len(flags)} flag(s)", flags, text)


def _format_entry(e: Any) -> str:
    # (the id of the key that chained it, so an entry left unverifiable by a key rotation can be told apart)
    mark = " (pending)" if e.pending else (f" [key {safe(e.key_id)}]" if getattr(e, "key_id", None) else "")
    return (f"{iso(e.ts)} {safe(e.actor)} {safe(e.action)} {safe(e.target)} "
            f"{json_line(e.details)}{mark}")


def _denied_read(user: str, what: str, config: ReliabilityConfig) -> Outcome | None:
    if user in config.admin_actor_set:
        return None
    hint = "" if config.admin_actor_set else " No administrators are configured (RELIABILITY_ADMIN_ACTORS)."
    return _error(EXIT_DENIED, f"{user} is not allowed to {what}: only administrators (RELIABILITY_ADMIN_ACTORS) "
                  f"may.{hint} Nothing was read or changed.", "not_authorized", actor=user)


def _audit(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    user = os_user()
    denied = _denied_read(user, "read the audit log", config)
    if denied is not None:
        return denied
    with _inspector(config) as view:
        entries = view.audit_entries(args.limit, actor=args.actor, action=args.action, since=args.since)
    text = "\n".join(_format_entry(e) for e in entries) or "no entries"
    return Outcome(EXIT_OK, f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'}", entries, text)


def _verify_audit(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    with _inspector(config) as view:
        report = view.audit.verify()
    if report.ok:
        text = f"audit chain ok ({report.checked} entries)"
        return Outcome(EXIT_OK, text, report, text)
    if report.verdict == "unverifiable":  # nothing found broken, but entries under a key not configured
        text = f"audit chain NOT VERIFIED ({report.checked} entries): {safe(report.reason)}"
    else:
        text = (f"audit chain BROKEN at entry {report.first_broken_seq} ({safe(report.first_broken_id)}): "
                f"{safe(report.reason)}")
    return Outcome(EXIT_UNHEALTHY, text, report, text)


def _config_show(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    user = os_user()
    data = config.to_dict()
    value = {"settings": data, "os_user": user, "administrator": user in config.admin_actor_set}
    lines = [f"{k} = {safe(v)!s}" for k, v in data.items()]
    lines.append(f"you are: {safe(user)} (administrator: {'yes' if value['administrator'] else 'no'})")
    return Outcome(EXIT_OK, "the settings in force", value, "\n".join(lines))


# -- repairs and changes (explicit) --------------------------------------------------------------
def _manager(config: ReliabilityConfig, **changes: Any) -> DatabaseManager:
    return DatabaseManager(config.replace(**changes) if changes else config)


def _migrate(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    folder = _migrations(args)
    _check_backup_dir(config)
    with _manager(config) as db:
        result = _facade(db, "migrate", folder)
    applied = list(getattr(result, "applied", []))
    text = (f"applied {len(applied)} migration(s): {', '.join(map(str, applied))}" if applied
            else "nothing to apply") + f"\ncurrent version: {result.current_version}"
    return Outcome(EXIT_OK, text.split("\n")[0], _as_dict(result), text)


def _migrations(args: argparse.Namespace) -> str:
    if not args.migrations:
        raise UsageError("--migrations DIR is required (the folder holding the migration files)")
    if not os.path.isdir(args.migrations):
        raise UsageError(f"--migrations {args.migrations!r} is not a folder")
    return str(args.migrations)


def _backup(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    _require_db(config)
    _check_backup_dir(config)
    with _manager(config, auto_recover=False) as db:
        info = _facade(db, "backup")
    text = f"backup written: {info.path} ({info.size} bytes, verified: {info.verified})"
    return Outcome(EXIT_OK, text, info, text)


def _restore(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    _check_backup_dir(config)
    if args.path:
        try:  # (the API's rule: db.restore(path) resolves the same name the same way)
            candidate = resolve_backup_name(config.backup_directory, args.path).absolute()
        except BackupError as err:  # dbfault: no fault (a name no file or two files answer to: the input)
            raise UsageError(f"{err.detail}; nothing was restored") from err
        if not is_sqlite_file(candidate):
            raise UsageError(f"backup {args.path!r} is not a SQLite database; nothing was restored")
        problems = verify_file(candidate, module=load_sqlite_module(config.sqlite_module))
        if problems:
            raise DatabaseError(ErrorKind.CORRUPT, f"backup {args.path!r} fails integrity_check: {problems[0]}",
                                user_message=f"The backup {args.path!r} is damaged; nothing was restored.")
        chosen = str(candidate)
    else:
        verified = _verified_backups(config)
        if not verified:
            raise DatabaseError(ErrorKind.CANTOPEN, f"no verified backup in {str(config.backup_directory)!r}",
                                user_message=f"There is no verified backup in {str(config.backup_directory)!r}; "
                                "nothing was restored.")
        # Chosen before the runtime starts: its startup may take a backup of the current file,
        # which must not become "the newest backup" that is then restored.
        chosen = verified[0].path
    with _manager(config, auto_recover=False) as db:
        info = _facade(db, "restore", chosen)
    text = (f"restored {config.db_path} from {info.path} (any previous files were kept aside as "
            f"{config.db_path}.replaced-*)")
    return Outcome(EXIT_OK, text, info, text)


def _recover(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    _check_backup_dir(config)
    if os.path.exists(config.db_path) and not _emptied(config):
        rolled_back = False
        try:
            with _inspector(config) as view:
                # The full check: "nothing to recover" is a verdict on the whole file, and index entries that no
                # longer match their rows pass quick_check (recovery_fuzz: such a file said ok, then writes
                # through the index deleted or duplicated acknowledged rows).
                report = view.check_integrity(full=True)
                missing = _missing_commits(config, view) if report.ok else None  # (damaged: recovered anyway)
        except DatabaseError as err:
            if err.kind is not ErrorKind.READONLY or "hot rollback journal" not in err.detail:
                raise
            # The smallest repair first: SQLite rolls an interrupted transaction back on the first read
            # of a writable connection. Then look again: often nothing else is wrong.
            with _manager(config, auto_recover=False) as db:
                try:
                    db.fetch_one("SELECT count(*) FROM sqlite_master")
                except DatabaseError as refused:
                    # The start's own first read rolled the journal back; a file it then refuses (committed
                    # transactions missing, damage) is what this command recovers: the look below says so.
                    if refused.kind is not ErrorKind.UNAVAILABLE:
                        raise
            rolled_back = True
            with _inspector(config) as view:
                report = view.check_integrity(full=True)
                missing = _missing_commits(config, view) if report.ok else None
        if report.ok and missing is None:
            done = "rolled back an interrupted transaction (hot journal); the database now passes integrity_check" \
                if rolled_back else "nothing to recover: the database passes integrity_check; nothing was changed"
            return Outcome(EXIT_OK, done, {"recovered": False, "rolled_back": rolled_back,
                                           "integrity": report.to_dict()}, done)
    elif not _verified_backups(config):
        raise DatabaseError(ErrorKind.CANTOPEN, f"the database {config.db_path!r} does not exist and there is no "
                            "verified backup", user_message=f"The database {config.db_path!r} does not exist and "
                            f"there is no verified backup in {str(config.backup_directory)!r} to recover from.")
    with _manager(config, auto_recover=False) as db:
        result = _facade(db, "recover")
    data = _as_dict(result)
    data["recovered"] = True
    lines = [f"recovery: {'ok' if result.ok else 'INCOMPLETE'}", f"backup: {result.backup}",
             f"replayed: {result.replayed} transaction(s)", f"quarantined: {', '.join(result.quarantined) or 'none'}"]
    lines += [f"  - {safe(p)}" for p in result.problems]
    return Outcome(EXIT_OK if result.ok else EXIT_UNHEALTHY, lines[0], data, "\n".join(lines))


def _missing_commits(config: ReliabilityConfig, view: Inspector) -> str | None:
    """What a starting runtime refuses the file for, read-only: committed transactions the redo journals hold and
    the database lacks (a ``-wal`` lost with them: quick_check passes). None when nothing is missing or nothing can
    tell. Without this look ``recover`` said "nothing to recover" (exit 0) while the runtime refused the file."""
    lost = find_lost_commits(config.redo_journal_file, view.committed_sequences)
    return None if lost is None else lost.describe(config.db_path)


def _command_result(result: CommandResult, text: str | None = None) -> Outcome:
    value = result.value
    data = result.to_dict() | {"value": _as_dict(value)}
    code = _RESULT_EXIT[result.status]
    out = text if (text is not None and result.ok) else result.message
    if result.pending and result.status != "queued":
        out += f"\n({result.pending} change(s) still waiting to be saved)"
    if code in (EXIT_OK, EXIT_QUEUED):
        return Outcome(code, result.message or (out or ""), data, safe(out))
    err = {"kind": result.fault or result.status}
    return Outcome(code, result.message, data, error=err)


def _flags_set(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    value: Any = args.value
    if args.type == "json":
        try:
            value = json.loads(args.value)
        except ValueError as exc:  # dbfault: no fault (VALUE is not valid JSON)
            raise UsageError(f"VALUE {args.value!r} is not valid JSON ({exc}); use --type str for text") from None
    problem = admin.validate_flag_name(args.name) or admin.validate_flag_value(value)
    if problem:
        raise UsageError(problem)
    problem = None if args.actor is None else validate_actor(args.actor)
    if problem:
        raise UsageError(f"--actor: {problem}")
    _require_db(config)
    user = os_user()
    label = args.actor if args.actor is not None and args.actor != user else None
    with _manager(config) as db:
        # A one-shot runtime has seen nothing of the file yet: look first, so a file that is damaged takes
        # neither the change nor the audit fallback (the write gate; a lock here is no verdict, and then
        # the change meets whatever it meets, as before).
        db.write_gate.look()
        if label is not None and not admin.is_authorized(db, user, "flags.set"):
            db.audit.record(user, "admin.denied", args.name,
                            {"command": "flags.set", "on_behalf_of": label,
                             "reason": "acting on behalf of another actor needs an administrator"})
            return _error(EXIT_DENIED, f"{user} is not allowed to act on behalf of {label!r}: only an "
                          "administrator (RELIABILITY_ADMIN_ACTORS) may; nothing was changed.",
                          "not_authorized", actor=user, on_behalf_of=label)
        # The OS user acts (its authority is checked by the command itself); the label says for whom.
        # Both names go into the flag.set entry, written in the change's own transaction.
        result = admin.set_flag(db, args.name, value, user, on_behalf_of=label)
    return _command_result(result)


def _selfcheck(args: argparse.Namespace, config: ReliabilityConfig) -> Outcome:
    from .selfcheck import SelfcheckUnavailable, run_selfcheck

    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        code, summary = run_selfcheck(extra, as_json=args.json)
    except SelfcheckUnavailable as exc:  # dbfault: no fault (the plugin extra is not installed)
        raise ConfigProblem(str(exc)) from None
    # pytest's own output (the report included) was already shown; the verdict is its exit code.
    return Outcome(EXIT_OK if code == 0 else EXIT_UNHEALTHY, summary["message"], summary)


_HANDLERS: dict[str, Handler] = {
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
    "config show": _config_show,
    "selfcheck": _selfcheck,
}

#: Commands that never change the database or create a file beside it.
INSPECTION_COMMANDS = frozenset({"health", "check", "schema", "backups", "flags get", "flags list", "audit",
                                 "verify-audit", "config show"})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
