"""Hooks other plugins and ``conftest.py`` files implement to extend dbfault.

Added to pytest with ``pytest_addhooks``; implement them like any pytest hook, by
name, in a plugin or a ``conftest.py``. A worked example, a third-party fault that
makes a connection read-only, is in ``docs/plugin.md``::

    # conftest.py
    def pytest_dbfault_register_faults(register):
        register(QueryOnlyFault)  # now dbfault.query_only(conn) and @pytest.mark.dbfault("query_only")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pluggy import HookspecMarker

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps this module import-cheap
    import pytest

    from .faults.base import Fault

hookspec = HookspecMarker("pytest")


@hookspec(historic=True)
def pytest_dbfault_register_faults(register: Callable[..., Any]) -> None:
    """Register extra fault kinds, once per session at configure time.

    Historic: a plugin or ``conftest.py`` registered later is called when it is
    registered. Faults registered here are removed again at the end of the session.
    Register in a plugin or the root ``conftest.py`` so that ``--dbfault-faults``
    (validated at configure time) already knows the name.

    :param register: ``register(cls, name=None, *, replace=False)``, the
        :func:`pytest_dbfault.faults.registry.register_fault` of this session. ``cls`` is a
        :class:`pytest_dbfault.faults.base.Fault` subclass; ``name`` defaults to ``cls.name``.
    """


@hookspec
def pytest_dbfault_register_commands(register: Callable[..., Any]) -> None:
    """Register extra scenario commands (the steps a ``*.dbfault.yaml`` file may use).

    Called by the scenario loader before it parses scenario files, when every
    ``conftest.py`` of the scenario's directory is already loaded.

    :param register: the scenario command registry's ``register`` function; see
        :mod:`pytest_dbfault.scenarios` for its signature.
    """


@hookspec(firstresult=True)
def pytest_dbfault_runtime_factory(config: pytest.Config) -> Callable[[Any], Any] | None:
    """Provide the runtime under test: a callable taking a ``ReliabilityConfig``.

    Called when the ``reliable_db`` fixture (or a scenario) needs a database object.
    The first non-``None`` answer wins; dbfault's own answer, tried last, is
    ``reliability.DatabaseManager``. The object returned by the callable should offer
    the ``DatabaseManager`` API the tests use, and a ``close()`` method.

    :param config: the pytest config object.
    """


@hookspec
def pytest_dbfault_fault_injected(fault: Fault, item: pytest.Item | None) -> None:
    """Observe each injected fault, right after its ``inject()`` succeeded.

    Called for faults made through the ``dbfault`` fixture (and the scenarios), from the fault
    lifecycle event (:class:`pytest_dbfault.faults.base.FaultEvent`, which every fault emits; subscribe
    to it with :func:`pytest_dbfault.faults.base.subscribe` to hear of every fault of the process);
    a fault injected again after a ``heal()`` is reported again.

    :param fault: the active fault; ``fault.kind`` (the name it was made under), ``fault.params``
        and ``fault.records`` say what was done.
    :param item: the test item that injected it, or ``None`` outside a test.
    """
