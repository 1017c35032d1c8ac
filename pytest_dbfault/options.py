"""dbfault's run settings: where each comes from, how it is parsed, and the merged result.

Each setting can be given on the command line, in the environment or in the ini file
(``pyproject.toml``'s ``[tool.pytest.ini_options]``, ``pytest.ini``...), and that is the
order of precedence; a ``@pytest.mark.dbfault(seed=...)`` marker beats all three for its
test. Plain Python (no pytest import), so the rules are testable on their own::

    opts = resolve_options(cli={"dbfault": True}, env={"DBFAULT_SEED": "7"}, ini={})
    assert opts.enabled and opts.seed == 7 and opts.seed_source == "environment"

A bad value raises :class:`OptionError`, whose message names the setting, the bad value,
where it came from and the values allowed.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Largest accepted seed; seeds are shown in reports and pasted back, so keep them short.
MAX_SEED = 2**32 - 1

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SEED_WORDS = ("random", "last")


@dataclass(frozen=True)
class Setting:
    """The names one setting goes by in each source."""

    key: str
    cli: str
    env: str
    ini: str
    help: str


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("enabled", "--dbfault", "DBFAULT", "dbfault",
                "enable dbfault: report header, property x fault summary, collect dbfault_paths"),
        Setting("faults", "--dbfault-faults", "DBFAULT_FAULTS", "dbfault_faults",
                "comma-separated fault kinds to run (default: all); filters @pytest.mark.dbfault tests"),
        Setting("seed", "--dbfault-seed", "DBFAULT_SEED", "dbfault_seed",
                "seed every injected fault derives from: a number, 'random' (default) or 'last'"),
        Setting("report", "--dbfault-report", "DBFAULT_REPORT", "dbfault_report",
                "write the property x fault report as JSON to this path"),
    )
}

#: ``dest`` of each command-line option, by setting key.
CLI_DEST = {"enabled": "dbfault", "faults": "dbfault_faults", "seed": "dbfault_seed", "report": "dbfault_report"}


class OptionError(ValueError):
    """A dbfault setting was given a value it cannot take."""

    def __init__(self, setting: str, value: Any, expected: str, source: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        self.source = source
        super().__init__(f"{setting}: invalid value {value!r} (from the {source}); expected {expected}")


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

    def selects(self, fault: str) -> bool:
        """True when fault kind ``fault`` is part of this run."""
        return self.faults is None or fault in self.faults


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
    """Merge the settings: command line > environment > ini.

    :param cli: option values by ``dest`` (``dbfault``, ``dbfault_faults``, ``dbfault_seed``,
        ``dbfault_report``, ``dbfault_paths``); ``None`` means not given.
    :param env: the environment (``DBFAULT``, ``DBFAULT_FAULTS``, ``DBFAULT_SEED``, ``DBFAULT_REPORT``).
    :param ini: ini values by ini name; ``""``/``None`` means not set. ``dbfault_paths`` is a list.
    :param ini_label: how messages name the ini source, e.g. ``"ini file pyproject.toml"``.
    :param invocation_dir: base of relative report paths from the command line or environment.
    :param ini_dir: base of a relative report path from the ini file.
    :param last_seed: the previous run's seed, used by ``--dbfault-seed=last`` (or a callable
        returning it, called only then).
    :param random_seed: returns a fresh seed (default: :func:`new_seed`).
    """
    picked = {key: _pick(setting, cli, env, ini, ini_label) for key, setting in SETTINGS.items()}

    enabled = False
    if picked["enabled"] is not None:
        raw, source = picked["enabled"]
        enabled = parse_bool(raw, _label(SETTINGS["enabled"], source), source)

    faults, faults_source = None, ""
    if picked["faults"] is not None:
        raw, faults_source = picked["faults"]
        faults = parse_fault_list(raw, setting_label("faults", faults_source), faults_source)

    seed_raw, seed_source = picked["seed"] if picked["seed"] is not None else ("random", "random")
    seed, seed_source = parse_seed(seed_raw, _label(SETTINGS["seed"], seed_source), seed_source,
                                   last_seed=last_seed, random_seed=random_seed or new_seed)

    report = None
    if picked["report"] is not None:
        raw, source = picked["report"]
        base = ini_dir if source == ini_label else invocation_dir
        report = parse_report_path(raw, _label(SETTINGS["report"], source), source, Path(base))

    paths = tuple(ini.get("dbfault_paths") or ()) or DbfaultOptions.paths
    return DbfaultOptions(enabled=enabled, faults=faults, seed=seed, seed_source=seed_source,
                          report=report, paths=paths, faults_source=faults_source)


def new_seed() -> int:
    """A fresh random seed in ``[0, MAX_SEED]``."""
    return random.SystemRandom().randint(0, MAX_SEED)


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


def parse_marker_seed(raw: Any, where: str) -> int:
    """The ``seed=`` of a ``@pytest.mark.dbfault`` marker: a whole number in ``[0, MAX_SEED]``."""
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        raise OptionError(f"{where}: @pytest.mark.dbfault(seed=...)", raw,
                          f"a whole number from 0 to {MAX_SEED}", "marker")
    return raw


def parse_report_path(raw: Any, setting: str, source: str, base: Path) -> Path:
    """A file path (relative paths are taken from ``base``); an existing directory is refused."""
    text = str(raw).strip()
    if not text:
        raise OptionError(setting, raw, "a file path for the JSON report", source)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = base / path
    if path.is_dir():
        raise OptionError(setting, raw, "a file path for the JSON report, not a directory", source)
    return path


_SEED_EXPECTED = f"a whole number from 0 to {MAX_SEED}, 'random' or 'last'"


def setting_label(key: str, source: str) -> str:
    """How messages name setting ``key`` given in ``source``: ``--dbfault-seed``, ``DBFAULT_SEED``..."""
    return _label(SETTINGS[key], source)


def _label(setting: Setting, source: str) -> str:
    if source == "command line":
        return setting.cli
    if source == "environment":
        return setting.env
    if source == "random":
        return setting.cli
    return setting.ini


def _pick(setting: Setting, cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any],
          ini_label: str) -> tuple[Any, str] | None:
    value = cli.get(CLI_DEST[setting.key])
    if value is not None:
        return value, "command line"
    value = env.get(setting.env)
    if value is not None and value.strip() != "":
        return value, "environment"
    value = ini.get(setting.ini)
    if value is not None and str(value).strip() != "":
        return value, ini_label
    return None
