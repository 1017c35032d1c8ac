"""Scenario files: YAML descriptions of faults, commands and expectations, run as pytest items.

A ``*.dbfault.yaml`` file (see ``docs/scenarios.md``) is collected by ``pytest --dbfault``;
each scenario becomes a test. Applications add their own commands::

    # conftest.py
    def pytest_dbfault_register_commands(register):
        register("place_order", place_order)   # place_order(ctx, customer, total=0.0)

``register(name, fn=None, *, help=None, replace=False)`` is :meth:`ScenarioCommandRegistry.register`;
``fn`` takes the :class:`ScenarioContext` first, then the step's ``args`` by name.
"""

from .context import RuntimeUnsupported, ScenarioContext
from .errors import Problem, ScenarioError, ScenarioFailure
from .parse import BrokenScenario, ParsedFile, Scenario, Step, parse_file
from .registry import CommandRegistryError, ScenarioCommandRegistry, command_names, register_command
from .runner import run_scenario, scenario_seed
from .schema import json_schema

__all__ = [
    "BrokenScenario",
    "CommandRegistryError",
    "ParsedFile",
    "Problem",
    "RuntimeUnsupported",
    "Scenario",
    "ScenarioCommandRegistry",
    "ScenarioContext",
    "ScenarioError",
    "ScenarioFailure",
    "Step",
    "command_names",
    "json_schema",
    "parse_file",
    "register_command",
    "run_scenario",
    "scenario_seed",
]
