"""The options table (:data:`pytest_dbfault.options.OPTIONS`) registered with pytest and read back.

Every flag gets a ``type=`` that runs the table's check while pytest parses the command line, so a
bad value stops the run before anything else with the message the same value would get from the
environment or the ini file: ``ERROR: --dbfault-seed: invalid value 'abc' (from the command line);
expected ...``. (pytest turns a :class:`pytest.UsageError` into that line and exit status 4; an
argparse ``ArgumentTypeError`` would print pytest's usage block first.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest

from ..options import OPTIONS, DbfaultOptions, Option, OptionError, resolve_options
from .pytest_internals import early_cache

#: pytest's cache key of the last run's seed (``--dbfault-seed=last``).
CACHE_KEY = "dbfault/seed"
#: ``workerinput`` key: the controller's seed, so every xdist worker uses the same one.
WORKER_SEED = "dbfault_seed"


def add_options(parser: pytest.Parser) -> None:
    """Add every flag and ini key of the table to the ``dbfault`` option group."""
    group = parser.getgroup("dbfault", "dbfault: break SQLite for real")
    for option in OPTIONS.values():
        if option.cli is not None:
            _add_flag(group, option)
        if option.ini is not None:
            also = ", ".join(n for n in (option.cli, option.env) if n)
            parser.addini(option.ini, help=(option.ini_help or option.help) + (f" (also {also})" if also else ""),
                          type=option.ini_type, default=option.ini_default)  # type: ignore[arg-type]


def _add_flag(group: Any, option: Option) -> None:
    parts = ([f"Env {option.env}{'=1' if option.action == 'flag' else ''}"] if option.env else []) \
        + ([f"ini {option.ini}"] if option.ini else [])
    where = ", ".join(parts)
    where = f" {where[:1].upper()}{where[1:]}." if where else ""
    text = argparse.SUPPRESS if option.hidden else f"{option.help.rstrip('.')}.{where}"
    if option.action == "flag":
        group.addoption(option.cli, action="store_true", dest=option.dest, default=None, help=text)
        assert option.negation is not None
        group.addoption(option.negation[0], action="store_false", dest=option.dest, default=None,
                        help=option.negation[1])
    elif option.action == "switch":
        group.addoption(option.cli, action="store_true", dest=option.dest, default=False, help=text)
    else:
        group.addoption(option.cli, dest=option.dest, metavar=option.metavar, help=text,
                        action="append" if option.action == "append" else "store",
                        default=[] if option.action == "append" else None, type=cli_type(option))


def cli_type(option: Option) -> Callable[[str], str]:
    """The ``type=`` of ``option``'s flag: its check, failing with a usage error naming the flag.

    It returns the text as given: what a value means can depend on where it came from (a relative
    report path, ``last``), so :func:`read_options` reads every source the same way.
    """

    def check(text: str) -> str:
        if option.check is not None:
            try:
                option.check(text, str(option.cli), "command line")
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
        return text

    check.__name__ = option.dest  # argparse names the type in some messages
    return check


def read_options(config: pytest.Config) -> DbfaultOptions:
    """The session's merged options (command line > environment > ini); a bad value is a usage error."""
    cli = {o.dest: getattr(config.option, o.dest, None) for o in OPTIONS.values() if o.cli is not None}
    ini = {o.ini: config.getini(o.ini) for o in OPTIONS.values() if o.ini is not None}
    try:
        opts = resolve_options(
            cli, os.environ, ini,
            ini_label=f"ini file {config.inipath.name}" if config.inipath else "ini file",
            invocation_dir=config.invocation_params.dir,
            ini_dir=config.inipath.parent if config.inipath else config.rootpath,
            last_seed=lambda: _last_seed(config),
        )
    except (OptionError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKER_SEED in workerinput:
        opts = dataclasses.replace(opts, seed=workerinput[WORKER_SEED], seed_source="xdist controller")
    return opts


def remember_seed(config: pytest.Config, seed: int) -> None:
    """Keep ``seed`` for ``--dbfault-seed=last`` (nothing under ``-p no:cacheprovider``)."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache.set(CACHE_KEY, seed)


def _last_seed(config: pytest.Config) -> int | None:
    cache = early_cache(config)
    value = cache.get(CACHE_KEY, None) if cache is not None else None
    return value if isinstance(value, int) else None
