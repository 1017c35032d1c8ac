"""pytest-dbfault: break SQLite for real and check that an application survives.

The public names below are loaded on first use, so importing the package (which pytest
does for every run through the plugin entry point) costs nothing when dbfault is inert::

    from pytest_dbfault import FaultFactory, register_fault
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .faults.base import Fault, FaultError, FaultRecord
    from .faults.registry import fault_names, get_fault_class, make_fault, register_fault
    from .options import DbfaultOptions, OptionError
    from .per_test import FaultFactory, seeded_rng
    from .runtime_config import FAST_TEST_SETTINGS, fast_test_config
    from .stats import STATS, record_check, record_fault, record_violation

__all__ = [
    "FAST_TEST_SETTINGS",
    "STATS",
    "DbfaultOptions",
    "Fault",
    "FaultError",
    "FaultFactory",
    "FaultRecord",
    "OptionError",
    "fast_test_config",
    "fault_names",
    "get_fault_class",
    "make_fault",
    "record_check",
    "record_fault",
    "record_violation",
    "register_fault",
    "seeded_rng",
]

_HOME = {
    "FAST_TEST_SETTINGS": ".runtime_config",
    "FaultFactory": ".per_test",
    "fast_test_config": ".runtime_config",
    "seeded_rng": ".per_test",
    "Fault": ".faults.base",
    "FaultError": ".faults.base",
    "FaultRecord": ".faults.base",
    "fault_names": ".faults.registry",
    "get_fault_class": ".faults.registry",
    "make_fault": ".faults.registry",
    "register_fault": ".faults.registry",
    "DbfaultOptions": ".options",
    "OptionError": ".options",
    "STATS": ".stats",
    "record_check": ".stats",
    "record_fault": ".stats",
    "record_violation": ".stats",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_dbfault' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
