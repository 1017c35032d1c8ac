"""What a scenario command receives: the runtime under test and everything around it.

Extension commands take it as their first argument::

    def place_order(ctx, customer: str):
        ctx.db.execute("INSERT INTO orders (customer) VALUES (?)", (customer,))
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..faults.base import Fault
from ..per_test import FaultFactory


class RuntimeUnsupported(Exception):
    """The runtime under test lacks a method a command or check needs."""


class ScenarioContext:
    """The state of one running scenario.

    :ivar db: the runtime under test (a ``DatabaseManager`` unless a plugin provides another).
    :ivar path: the database file (fresh for each scenario).
    :ivar tmp_path: the scenario's own directory.
    :ivar config: the ``ReliabilityConfig`` the runtime was built with.
    :ivar seed: the scenario's seed; :ivar rng: a ``random.Random`` seeded from it.
    :ivar faults: the :class:`~pytest_dbfault.per_test.FaultFactory` making (and finally healing) faults.
    :ivar labels: label → fault, for the faults injected by ``fault:`` steps.
    :ivar migrations: the scenario's migrations as ``reliability.schema.Migration`` objects (or a folder).
    :ivar scenario_dir: the folder of the scenario file (relative paths in arguments start there).
    :ivar values: scratch space commands may share within one scenario.
    """

    def __init__(self, *, make_runtime: Callable[[Any], Any], config: Any, tmp_path: Path, seed: int,
                 faults: FaultFactory, migrations: Any = None, scenario_dir: Path | None = None) -> None:
        self._make_runtime = make_runtime
        self.config = config
        self.path = Path(config.db_path)
        self.tmp_path = tmp_path
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults
        self.labels: dict[str, Fault] = {}
        self.migrations = migrations
        self.scenario_dir = scenario_dir or tmp_path
        self.values: dict[str, Any] = {}
        self.restarts = 0
        self.db: Any = make_runtime(config)

    def require(self, name: str) -> Any:
        """``getattr(self.db, name)``, or a :class:`RuntimeUnsupported` naming the runtime and method."""
        attr = getattr(self.db, name, None)
        if attr is None:
            raise RuntimeUnsupported(f"the runtime under test ({type(self.db).__name__}) has no `{name}`; "
                                     f"this command or check needs it")
        return attr

    def restart(self) -> None:
        """Close the runtime and build a new one on the same files (a process restart)."""
        self.close_runtime()
        self.restarts += 1
        self.db = self._make_runtime(self.config)

    def close_runtime(self) -> None:
        """Close the runtime if it has ``close()``."""
        close = getattr(self.db, "close", None)
        if close is not None:
            close()

    @property
    def active_faults(self) -> list[Fault]:
        """Faults injected by this scenario and still active."""
        return self.faults.active

    def describe_active(self) -> list[str]:
        """``["locked(duration=0.3, mode='exclusive')", ...]`` for failure reports."""
        out = []
        for label, fault in self.labels.items():
            if fault.active:
                params = {k: v for k, v in fault.params.items() if k not in ("target", "path")}
                args = ", ".join(f"{k}={v!r}" for k, v in params.items())
                name = fault.name if label == fault.name else f"{label}={fault.name}"
                out.append(f"{name}({args})")
        return out

    def active_names(self) -> list[str]:
        """Fault kinds active now, for the property × fault report."""
        return sorted({f.name for f in self.labels.values() if f.active})
