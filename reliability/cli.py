"""The ``reliability`` command line: ``reliability --db PATH [--env FILE] [--json] COMMAND``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .config import ConfigError, ReliabilityConfig
from .errors import DatabaseError
from .manager import DatabaseManager

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
EXIT_DB_ERROR = 3
EXIT_CONFIG_ERROR = 4


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands are added by each feature module)."""
    parser = argparse.ArgumentParser(prog="reliability", description="SQLite reliability runtime tools.")
    parser.add_argument("--db", help="database file (default: RELIABILITY_DB_PATH or reliability.db)")
    parser.add_argument("--env", default=".env", help="the .env file to read settings from (default: .env)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("health", help="show the health report; exit 1 when not healthy",
                   description="Example: reliability --db app.db health")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 unhealthy, 2 usage, 3 database error, 4 config error)."""
    args = build_parser().parse_args(argv)
    try:
        overrides = {"db_path": args.db} if args.db else {}
        config = ReliabilityConfig.from_env(args.env, **overrides)
    except ConfigError as exc:
        print(f"reliability: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        with DatabaseManager(config) as db:
            if args.command == "health":
                report = db.health()
                if args.json:
                    print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
                else:
                    print(f"status: {report.status}")
                    for reason in report.reasons:
                        print(f"  - {reason}")
                    print(f"connection: {report.connection_state}")
                    print(f"wal size: {report.wal_size if report.wal_size is not None else 'none'}")
                return EXIT_OK if report.healthy else EXIT_UNHEALTHY
    except DatabaseError as exc:
        print(f"reliability: {exc.user_message} (error kind: {exc.kind})", file=sys.stderr)
        return EXIT_DB_ERROR
    return EXIT_USAGE  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
