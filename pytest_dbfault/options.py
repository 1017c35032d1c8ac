"""dbfault's settings, declared once: every ``--dbfault*`` flag, its environment variable and ini key,
how its value is checked, and the merged result of one run.

:data:`OPTIONS` is the one table. The pytest glue (:mod:`pytest_dbfault._glue.options`) registers
each entry with pytest (the flag with a ``type=`` that checks it while pytest parses the command
line, the ini key) and reads them back; nothing else declares a flag. A setting can be given on the
command line, in the environment or in the ini file (``pyproject.toml``'s
``[tool.pytest.ini_options]``, ``pytest.ini``...), and that is the order of precedence; a
``@pytest.mark.dbfault(seed=...)`` marker beats all three for its test. Plain Python (no pytest
import), so the rules are testable on their own::

    opts = resolve_options(cli={"dbfault": True}, env={"DBFAULT_SEED": "7"}, ini={})
    assert opts.enabled and opts.seed == 7 and opts.seed_source == "environment"

A bad value raises :class:`OptionError` (chaos values: :class:`~pytest_dbfault.chaos.ChaosUsageError`),
whose message names the setting as it was given (flag, variable or ini key), the bad value, where it
came from and the values allowed.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._chaos_kinds import CHAOS_KINDS, DEFAULT_KINDS, DEFAULT_RATE, DEFAULT_TIMEOUT, parse_kinds, parse_rate

#: Largest accepted seed; seeds are shown in reports and pasted back, so keep them short.
MAX_SEED = 2**32 - 1

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class OptionError(ValueError):
    """A dbfault setting was given a value it cannot take."""

    def __init__(self, setting: str, value: Any, expected: str, source: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        self.source = source
        super().__init__(f"{setting}: invalid value {value!r} (from the {source}); expected {expected}")


# -- the checks: (raw value, the name it was given under, its source) -> value; raise ValueError -------------
def parse_bool(raw: Any, setting: str, source: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); booleans pass through."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OptionError(setting, raw, "one of 1, true, yes, on, 0, false, no, off", source)


def parse_fault_list(raw: str, setting: str, source: str) -> tuple[str, ...] | None:
    """``"locked, disk_full"`` → ``("locked", "disk_full")``; ``"all"`` → ``None`` (every kind).

    Names are checked against the registry separately, with :func:`check_fault_names`.
    """
    names = tuple(dict.fromkeys(n for n in re.split(r"[,\s]+", str(raw)) if n))
    if not names:
        raise OptionError(setting, raw, "a comma-separated list of fault names, or 'all'", source)
    if names == ("all",):
        return None
    return names


def check_fault_names(names: Iterable[str], known: Iterable[str], setting: str, source: str) -> None:
    """Raise :class:`OptionError` for the first name in ``names`` that is not in ``known``."""
    known = sorted(known)
    for name in names:
        if name not in known:
            raise OptionError(setting, name, f"fault names among: all, {', '.join(known)}", source)


def new_seed() -> int:
    """A fresh random seed in ``[0, MAX_SEED]``."""
    return random.SystemRandom().randint(0, MAX_SEED)


def parse_seed(
    raw: Any,
    setting: str,
    source: str,
    *,
    last_seed: int | Callable[[], int | None] | None = None,
    random_seed: Callable[[], int] = new_seed,
) -> tuple[int, str]:
    """A whole number in ``[0, MAX_SEED]``, ``"random"`` or ``"last"``; returns ``(seed, source)``.

    ``"last"`` without a previous run falls back to a random seed (source ``"random"``).
    """
    text = str(raw).strip().lower()
    if text == "random":
        return random_seed(), "random"
    if text == "last":
        last = last_seed() if callable(last_seed) else last_seed
        return (last, "last") if last is not None else (random_seed(), "random")
    if isinstance(raw, bool):
        raise OptionError(setting, raw, _SEED_EXPECTED, source)
    try:
        seed = int(text)
    except ValueError:
        raise OptionError(setting, raw, _SEED_EXPECTED, source) from None
    if not 0 <= seed <= MAX_SEED:
        raise OptionError(setting, raw, _SEED_EXPECTED, source)
    return seed, source


def check_seed(raw: Any, setting: str, source: str) -> str:
    """The check of a seed as given: a number in range, ``random`` or ``last`` (resolved later)."""
    parse_seed(raw, setting, source, last_seed=0, random_seed=lambda: 0)
    return str(raw)


def parse_marker_seed(raw: Any, where: str) -> int:
    """The ``seed=`` of a ``@pytest.mark.dbfault`` marker: a whole number in ``[0, MAX_SEED]``."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        raise OptionError(f"{where}: @pytest.mark.dbfault(seed=...)", raw,
                          f"a whole number from 0 to {MAX_SEED}", "marker")
    return raw


def parse_report_path(raw: Any, setting: str, source: str, base: Path | None = None) -> Path:
    """A file path (relative paths are taken from ``base``, default the current directory); an
    existing directory is refused."""
    text = str(raw).strip()
    if not text:
        raise OptionError(setting, raw, "a file path for the JSON report", source)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = (base if base is not None else Path.cwd()) / path
    if path.is_dir():
        raise OptionError(setting, raw, "a file path for the JSON report, not a directory", source)
    return path


def parse_seconds(raw: Any, setting: str, source: str) -> float:
    """Seconds, ``0`` or more (``0`` turns the chaos hang watchdog off)."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise OptionError(setting, raw, "seconds (0 turns the hang watchdog off)", source)
    return value


def parse_percentage(raw: Any, setting: str, source: str) -> float:
    """A percentage from 0 to 100 (``95``, ``97.5``)."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise OptionError(setting, raw, "a percentage such as 95 (0 to 100)", source)
    return value


def parse_directory(raw: Any, setting: str, source: str) -> str:
    """A directory name, not empty (relative names are resolved by whoever reads it)."""
    if not str(raw).strip():
        raise OptionError(setting, raw, "a directory", source)
    return str(raw)


# -- the table ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One setting and the names it goes by in each source.

    :param key: the setting's name here (``seed``, ``chaos_rate``...).
    :param cli: the flag (``--dbfault-seed``), or ``None`` for an ini-only setting; its ``dest`` is the
        flag without dashes (``dbfault_seed``).
    :param help: what it does (the flag's help adds where else it can be given).
    :param env: the environment variable, if it has one.
    :param ini: the ini key, if it has one.
    :param check: ``check(raw, name, source)`` returns the value or raises :class:`ValueError` with a
        message naming ``name``; the flag's ``type=`` runs it on the command-line value.
    :param action: ``"value"`` (takes a value), ``"flag"`` (on/off, with ``negation`` to turn it off),
        ``"switch"`` (on only), ``"append"`` (repeatable).
    :param negation: the ``--no-...`` flag of a ``"flag"``, and its help.
    :param metavar: the value's name in ``--help``.
    :param ini_type: pytest's ini type (``"args"``, ``"paths"``) when not a plain string.
    :param ini_default: the ini default.
    :param ini_help: the ini key's help, when the flag's does not fit it.
    :param hidden: internal (left out of ``--help`` and the docs).
    """

    key: str
    cli: str | None
    help: str
    env: str | None = None
    ini: str | None = None
    check: Callable[[Any, str, str], Any] | None = None
    action: str = "value"
    negation: tuple[str, str] | None = None
    metavar: str | None = None
    ini_type: str | None = None
    ini_default: Any = ""
    ini_help: str | None = None
    hidden: bool = False

    @property
    def dest(self) -> str:
        """The attribute on ``config.option``: the flag without dashes (or the ini key)."""
        return self.cli.lstrip("-").replace("-", "_") if self.cli else str(self.ini)

    def name_in(self, source: str) -> str:
        """How messages name this setting given in ``source``: the flag, the variable or the ini key."""
        if source == "environment" and self.env:
            return self.env
        if source in ("command line", "random") or not self.ini:
            return str(self.cli)
        return self.ini


_SEED_EXPECTED = f"a whole number from 0 to {MAX_SEED}, 'random' or 'last'"

#: Every dbfault setting, in ``--help`` order.
OPTIONS: dict[str, Option] = {
    o.key: o
    for o in (
        Option("enabled", "--dbfault", "enable dbfault: report header, property x fault summary, collect "
               "dbfault_paths", env="DBFAULT", ini="dbfault", check=parse_bool, action="flag",
               negation=("--no-dbfault", "disable dbfault even when DBFAULT or the ini file enable it.")),
        Option("faults", "--dbfault-faults", "comma-separated fault kinds to run (default: all); filters "
               "@pytest.mark.dbfault tests", env="DBFAULT_FAULTS", ini="dbfault_faults", check=parse_fault_list,
               metavar="NAMES"),
        Option("seed", "--dbfault-seed", "seed every injected fault derives from: a number, 'random' (default) "
               "or 'last'", env="DBFAULT_SEED", ini="dbfault_seed", check=check_seed, metavar="SEED"),
        Option("report", "--dbfault-report", "write the property x fault report as JSON to this path",
               env="DBFAULT_REPORT", ini="dbfault_report", check=parse_report_path, metavar="PATH"),
        Option("paths", None, "directories pytest --dbfault collects when no path is given (default: scenarios)",
               ini="dbfault_paths", ini_type="args", ini_default=["scenarios"]),
        Option("allow_root", "--dbfault-allow-root", "also let faults act on files under DIR (repeatable; by "
               "default only the session's basetemp, where every tmp_path lies)", ini="dbfault_allowed_roots",
               check=parse_directory, action="append", metavar="DIR", ini_type="paths", ini_default=[],
               ini_help="directories (one per line) faults may act on besides the session's basetemp"),
        Option("chaos", "--dbfault-chaos", "run the collected (existing) tests while injecting real SQLite faults "
               "into every connection sqlite3.connect opens; tests that pass clean but fail under chaos are "
               "reported as not fault-tolerant. Seeded by --dbfault-seed. See docs/chaos.md",
               env="DBFAULT_CHAOS", ini="dbfault_chaos", check=parse_bool, action="flag",
               negation=("--no-dbfault-chaos", "no chaos even when DBFAULT_CHAOS or the ini file ask for it.")),
        Option("chaos_rate", "--dbfault-chaos-rate", f"share of eligible statements (BEGIN IMMEDIATE, writes, "
               f"commits) that meet a fault (default {DEFAULT_RATE})", env="DBFAULT_CHAOS_RATE",
               ini="dbfault_chaos_rate", check=lambda raw, name, source: parse_rate(raw, name), metavar="RATE"),
        Option("chaos_faults", "--dbfault-chaos-faults", f"chaos faults: a level (contention [default], hard, all) "
               f"and/or kinds ({', '.join(CHAOS_KINDS)}), comma-separated", env="DBFAULT_CHAOS_FAULTS",
               ini="dbfault_chaos_faults", check=lambda raw, name, source: parse_kinds(str(raw), name),
               metavar="FAULTS"),
        Option("chaos_timeout", "--dbfault-chaos-timeout", f"seconds a test may run under chaos before it is "
               f"reported hung, with every thread's stack (default {DEFAULT_TIMEOUT:g}; 0 turns the watchdog off)",
               env="DBFAULT_CHAOS_TIMEOUT", ini="dbfault_chaos_timeout", check=parse_seconds, metavar="TIMEOUT"),
        # Internal: the clean rerun's child process writes each test's outcome here.
        Option("chaos_rerun_report", "--dbfault-chaos-rerun-report", "internal: where a clean rerun writes "
               "each test's outcome", hidden=True),
        Option("coverage", "--dbfault-coverage", "label coverage contexts with the active faults and report which "
               "fault kinds reached each except handler (needs --cov or `coverage run`).", action="switch"),
        Option("coverage_root", "--dbfault-coverage-root", "source tree whose handlers are reported (default: "
               "reliability under the rootdir).", check=parse_directory, metavar="DIR"),
        Option("coverage_fail_under", "--dbfault-coverage-fail-under", "fail the run when coverage of the root is "
               "under N%% or an except handler there is reached by no fault.", check=parse_percentage,
               metavar="N"),
    )
}


# -- the merged result ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChaosOptions:
    """Chaos mode's settings (present only when chaos is on)."""

    rate: float = DEFAULT_RATE
    kinds: tuple[str, ...] = DEFAULT_KINDS
    #: Seconds before a test counts as hung; 0: no watchdog.
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class CoverageOptions:
    """Coverage per fault's settings (present only when ``--dbfault-coverage`` or a fail-under is given)."""

    #: The source tree reported, as given (``None``: ``reliability`` under the rootdir).
    root: str | None = None
    fail_under: float | None = None


@dataclass(frozen=True)
class DbfaultOptions:
    """The merged settings of one pytest run."""

    enabled: bool = False
    #: Fault kinds to run, or ``None`` for every registered kind.
    faults: tuple[str, ...] | None = None
    seed: int = 0
    #: Where the seed came from: ``command line``, ``environment``, ``ini file ...``, ``random``, ``last``.
    seed_source: str = "random"
    report: Path | None = None
    #: Directories collected by ``pytest --dbfault`` when no path is given on the command line.
    paths: tuple[str, ...] = ("scenarios",)
    #: Where ``faults`` came from (``command line``, ``environment``, ``ini file ...``), for messages.
    faults_source: str = ""
    #: Chaos mode, ``None`` when off.
    chaos: ChaosOptions | None = None
    #: Coverage per fault, ``None`` when off.
    coverage: CoverageOptions | None = None


def resolve_options(
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    ini: Mapping[str, Any],
    *,
    ini_label: str = "ini file",
    invocation_dir: str | os.PathLike[str] = ".",
    ini_dir: str | os.PathLike[str] = ".",
    last_seed: int | Callable[[], int | None] | None = None,
    random_seed: Callable[[], int] | None = None,
) -> DbfaultOptions:
    """Merge the settings of :data:`OPTIONS`: command line > environment > ini. Every value given is
    checked, also those of a part that is off (a typo waits for no one).

    :param cli: option values by ``dest`` (``dbfault``, ``dbfault_seed``, ``dbfault_chaos_rate``...);
        ``None`` means not given.
    :param env: the environment (``DBFAULT``, ``DBFAULT_SEED``, ``DBFAULT_CHAOS_RATE``...).
    :param ini: ini values by ini name; ``""``/``None`` means not set. ``dbfault_paths`` is a list.
    :param ini_label: how messages name the ini source, e.g. ``"ini file pyproject.toml"``.
    :param invocation_dir: base of relative report paths from the command line or environment.
    :param ini_dir: base of a relative report path from the ini file.
    :param last_seed: the previous run's seed, used by ``--dbfault-seed=last`` (or a callable
        returning it, called only then).
    :param random_seed: returns a fresh seed (default: :func:`new_seed`).
    """

    def given(key: str) -> tuple[Any, str, str] | None:
        return pick(OPTIONS[key], cli, env, ini, ini_label)

    def value(key: str, default: Any = None) -> Any:
        found = given(key)
        if found is None:
            return default
        raw, name, source = found
        return OPTIONS[key].check(raw, name, source)  # type: ignore[misc]

    enabled = value("enabled", False)
    faults, faults_source = None, ""
    if (found := given("faults")) is not None:
        raw, name, faults_source = found
        faults = parse_fault_list(raw, name, faults_source)

    seed_raw, seed_name, seed_source = given("seed") or ("random", OPTIONS["seed"].name_in("random"), "random")
    seed, seed_source = parse_seed(seed_raw, seed_name, seed_source, last_seed=last_seed,
                                   random_seed=random_seed or new_seed)

    report = None
    if (found := given("report")) is not None:
        raw, name, source = found
        report = parse_report_path(raw, name, source, Path(ini_dir if source == ini_label else invocation_dir))

    chaos_on = value("chaos", False)
    chaos = ChaosOptions(rate=value("chaos_rate", DEFAULT_RATE), kinds=value("chaos_faults", DEFAULT_KINDS),
                         timeout=value("chaos_timeout", DEFAULT_TIMEOUT))
    coverage = CoverageOptions(root=value("coverage_root"), fail_under=value("coverage_fail_under"))
    coverage_on = bool(cli.get(OPTIONS["coverage"].dest)) or coverage.fail_under is not None

    paths = tuple(ini.get(OPTIONS["paths"].ini) or ()) or DbfaultOptions.paths  # type: ignore[arg-type]
    return DbfaultOptions(enabled=enabled, faults=faults, seed=seed, seed_source=seed_source, report=report,
                          paths=paths, faults_source=faults_source, chaos=chaos if chaos_on else None,
                          coverage=coverage if coverage_on else None)


def pick(option: Option, cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any],
         ini_label: str = "ini file") -> tuple[Any, str, str] | None:
    """``(raw value, name given under, source)`` of ``option``: command line > environment > ini file."""
    value = cli.get(option.dest) if option.cli else None
    if value is not None:
        return value, option.name_in("command line"), "command line"
    value = env.get(option.env) if option.env else None
    if value is not None and value.strip() != "":
        return value, option.name_in("environment"), "environment"
    value = ini.get(option.ini) if option.ini else None
    if value is not None and str(value).strip() != "":
        return value, option.name_in(ini_label), ini_label
    return None


def setting_label(key: str, source: str) -> str:
    """How messages name setting ``key`` given in ``source``: ``--dbfault-seed``, ``DBFAULT_SEED``..."""
    return OPTIONS[key].name_in(source)
