"""pytest glue for scenario files: one :class:`ScenarioFile` per ``*.dbfault.yaml``, one
:class:`ScenarioItem` per scenario in it.

The plugin's ``pytest_collect_file`` calls :func:`collect_file` when ``--dbfault`` is on. Public pytest
API only: the one private reach (the session's tmp path factory, which a non-function item cannot get
as a fixture) is :func:`pytest_dbfault._glue.pytest_internals.session_tmp_path_factory`.
A file that cannot be read at all, or whose top level is wrong, gives an item named
``[file]`` that fails with the error; a broken scenario fails as its own item; the rest
of the file and of the run go on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from .._glue import stash
from .._glue.pytest_internals import session_tmp_path_factory
from .errors import ScenarioError, ScenarioFailure
from .parse import BrokenScenario, Scenario, parse_file
from .registry import CommandRegistryError, ScenarioCommandRegistry, default_registry
from .runner import run_scenario, scenario_seed

#: Suffix of the files collected.
SUFFIX = stash.SCENARIO_SUFFIX
#: Name of the item standing for the file itself when its top level is wrong.
FILE_ITEM = "[file]"


def collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """``pytest_collect_file`` for scenario files: a :class:`ScenarioFile` for ``*.dbfault.yaml``."""
    if file_path.name.endswith(SUFFIX):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """A ``*.dbfault.yaml`` file; its scenarios are collected in file order."""

    def collect(self) -> Any:
        try:
            commands = self._commands()
        except CommandRegistryError as exc:
            yield ScenarioItem.from_parent(self, name=FILE_ITEM, error=ScenarioError(self.path, [
                _problem(1, f"a pytest_dbfault_register_commands hook failed: {exc}")]))
            return
        parsed = parse_file(self.path, commands)
        if parsed.error is not None:
            yield ScenarioItem.from_parent(self, name=FILE_ITEM, error=parsed.error)
            return
        if parsed.file_error is not None:
            yield ScenarioItem.from_parent(self, name=FILE_ITEM, error=parsed.file_error)
        for scenario in parsed.scenarios:
            if isinstance(scenario, BrokenScenario):
                yield ScenarioItem.from_parent(self, name=scenario.name, error=scenario.error, line=scenario.line)
            else:
                yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario,
                                               commands=commands, line=scenario.line)

    def _commands(self) -> ScenarioCommandRegistry:
        registry = default_registry()
        hook = getattr(self.ihook, "pytest_dbfault_register_commands", None)
        if hook is not None:
            hook(register=registry.register)
        return registry


class ScenarioItem(pytest.Item):
    """One scenario (or one error standing in for it)."""

    def __init__(self, *, scenario: Scenario | None = None, error: ScenarioError | None = None,
                 commands: ScenarioCommandRegistry | None = None, line: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.error = error
        self.commands = commands
        self.line = line
        self.seed: int | None = None

    def runtest(self) -> None:
        if self.error is not None:
            raise self.error
        assert self.scenario is not None
        config = self.config
        run_seed, explicit = _run_seed(config)
        self.seed = scenario_seed(self.scenario, run_seed, explicit)
        replay = run_seed if self.scenario.file_seed is None else self.scenario.file_seed
        self.user_properties.append(("dbfault_seed", str(replay)))
        factory = session_tmp_path_factory(config)
        if factory is None:
            raise RuntimeError("scenario files run in pytest's tmp directories: enable the tmpdir plugin "
                               "(remove -p no:tmpdir)")
        tmp_path = factory.mktemp(_tmp_name(self.name), numbered=True)
        make = config.hook.pytest_dbfault_runtime_factory(config=config) \
            if hasattr(config.hook, "pytest_dbfault_runtime_factory") else None
        notify = getattr(self.ihook, "pytest_dbfault_fault_injected", None)

        def injected(fault: Any, name: str) -> None:
            if notify is not None:
                notify(fault=fault, item=self)

        run_scenario(self.scenario, tmp_path, seed=self.seed, replay_seed=replay, make_runtime=make,
                     commands=self.commands, on_inject=[injected])

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        exc = excinfo.value
        if isinstance(exc, (ScenarioError, ScenarioFailure)):
            return exc.render(self._display_path())
        return super().repr_failure(excinfo, style=style)  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line - 1, f"scenario: {self.name}"

    def _display_path(self) -> str:
        try:
            return os.path.relpath(self.path, self.config.invocation_params.dir)
        except ValueError:  # pragma: no cover - another drive on Windows
            return str(self.path)


def _run_seed(config: pytest.Config) -> tuple[int, bool]:
    """The run's seed and whether the user chose it (command line, environment, ini, ``last``)."""
    opts = config.stash.get(stash.OPTIONS, None)
    if opts is None:
        return 0, False
    return opts.seed, opts.seed_source != "random"


def _tmp_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:30] or "scenario"


def _problem(line: int, message: str) -> Any:
    from .errors import Problem

    return Problem(line, message)
