"""What a run collects: the ``dbfault_paths`` in place of ``testpaths``, one test per fault kind of a
``@pytest.mark.dbfault`` test (every mistake in the marker gathered into one collection error per
module), the deselection of the kinds ``--dbfault-faults`` leaves out, and scenario files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..options import DbfaultOptions, OptionError, parse_marker_seed
from . import stash

MARKER_HELP = (
    "dbfault(*faults, faults=None, seed=None): run the test once per fault kind listed "
    "(all registered kinds when none), the kind in the dbfault_kind fixture; seed= fixes the seed."
)


def collect_dbfault_paths(config: pytest.Config, opts: DbfaultOptions) -> None:
    """``pytest --dbfault`` from the project root means "run the fault scenarios", not ``testpaths``."""
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    base = config.inipath.parent if config.inipath else config.rootpath
    found = [str(base / p) for p in opts.paths if (base / p).is_dir()]
    if found:
        config.args[:] = found
        config.stash[stash.COLLECTING] = [os.path.relpath(p, config.invocation_params.dir) for p in found]


def parametrize_marked(metafunc: pytest.Metafunc) -> None:
    """``pytest_generate_tests``: one call of a marked test per fault kind, the kind in ``dbfault_kind``."""
    marker = metafunc.definition.get_closest_marker("dbfault")
    if marker is None:
        return
    where = metafunc.definition.nodeid
    problems: list[str] = []
    kinds, _seed = read_marker(marker, where, problems)
    if "dbfault_kind" not in metafunc.fixturenames:
        problems.append(f"{where} is marked @pytest.mark.dbfault but uses neither the dbfault_kind nor the "
                        f"dbfault fixture, so it could not see the fault kind; add one of them to its arguments")
    if problems:
        # Not pytest.fail here: that would stop the module at its first bad test and hide the rest (other
        # tests, classes). Every mistake is gathered and reported when collection finishes.
        parent = metafunc.definition.parent
        metafunc.config.stash.setdefault(stash.MARKER_PROBLEMS, []).append(
            (parent.nodeid if parent is not None else where, where, problems))
        return
    metafunc.parametrize("dbfault_kind", kinds, indirect=True, ids=kinds)


def report_marker_problems(session: pytest.Session) -> None:
    """One collection error per module (or class) holding every marker mistake found in it."""
    found = session.config.stash.get(stash.MARKER_PROBLEMS, [])
    if not found:
        return
    by_collector: dict[str, list[str]] = {}
    bad_tests = set()
    for collector, test, problems in found:
        by_collector.setdefault(collector, []).extend(problems)
        bad_tests.add(test)
    session.items[:] = [item for item in session.items if item.nodeid not in bad_tests]
    for collector, problems in by_collector.items():
        # Counted as a collection error, so the run stops before any test as it would for a module
        # that failed to import.
        report = pytest.CollectReport(collector, "failed", "\n".join(problems), [])
        session.config.hook.pytest_collectreport(report=report)
    found.clear()


def deselect_other_faults(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the calls of marked tests whose kind ``--dbfault-faults`` leaves out."""
    opts = config.stash[stash.OPTIONS]
    if opts.faults is None:
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("dbfault_kind") if callspec is not None else None
        (drop if kind is not None and kind not in opts.faults else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def collect_scenario_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """``pytest_collect_file`` with ``--dbfault``: a scenario file, or ``None`` for anything else."""
    if not file_path.name.endswith(stash.SCENARIO_SUFFIX):
        return None
    from ..scenario_extra import require_plugin_extra

    if not require_plugin_extra(file_path, parent.config):  # a usage error naming what to install
        return None
    from ..scenarios.collect import collect_file  # lazily: YAML parsing only when there are scenario files

    return collect_file(file_path, parent)


def read_marker(marker: pytest.Mark, where: str, problems: list[str]) -> tuple[list[str], int | None]:
    """The kinds and seed of a marker; every mistake in it is appended to ``problems``."""
    from ..faults.registry import fault_names, unknown_name_message

    unknown = set(marker.kwargs) - {"faults", "seed"}
    if unknown:
        problems.append(f"{where}: @pytest.mark.dbfault got unknown argument(s) {', '.join(sorted(unknown))}; "
                        f"it takes fault names, faults=[...] and seed=N")
    listed = marker.kwargs.get("faults")
    if listed is not None and marker.args:
        problems.append(f"{where}: @pytest.mark.dbfault got fault names both as arguments and as faults=; "
                        f"use one of the two")
    if isinstance(listed, str):
        listed = [listed]
    kinds = list(listed if listed is not None else marker.args)
    known = fault_names()
    for kind in kinds:
        if not isinstance(kind, str) or kind not in known:
            problems.append(f"{where}: @pytest.mark.dbfault: " + unknown_name_message("fault", str(kind), known))
    seed = None
    if "seed" in marker.kwargs:
        try:
            seed = parse_marker_seed(marker.kwargs["seed"], where)
        except OptionError as exc:
            problems.append(str(exc))
    return list(dict.fromkeys(k for k in kinds if isinstance(k, str) and k in known)) or known, seed


def seed_of(item: pytest.Item, opts: DbfaultOptions) -> int:
    """The seed of ``item``: its marker's ``seed=`` (checked at collection), else the run's."""
    marker = item.get_closest_marker("dbfault")
    if marker is not None and "seed" in marker.kwargs:
        return int(marker.kwargs["seed"])
    return opts.seed
