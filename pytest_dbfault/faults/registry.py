"""Name → fault class registry, shared by fixtures, the marker, scenario files and extensions.

Third-party faults are added through the ``pytest_dbfault_register_faults`` hook
or by calling :func:`register_fault` directly.
"""

from __future__ import annotations

import difflib
from typing import Any

from .base import Fault, FaultError

_REGISTRY: dict[str, type[Fault]] = {}


def register_fault(cls: type[Fault], name: str | None = None, *, replace: bool = False) -> type[Fault]:
    """Register ``cls`` under ``name`` (default ``cls.name``). Usable as a decorator."""
    key = name or cls.name
    if not key or key == Fault.name:
        raise FaultError(f"{cls.__qualname__} has no fault name; set the class attribute `name`.")
    if key in _REGISTRY and _REGISTRY[key] is not cls and not replace:
        raise FaultError(
            f"fault name {key!r} is already registered by {_REGISTRY[key].__qualname__}; "
            f"pick another name or pass replace=True."
        )
    _REGISTRY[key] = cls
    return cls


def unregister_fault(name: str) -> None:
    """Remove ``name`` from the registry (unknown names are ignored).

    The pytest plugin calls it at the end of a session for faults that plugins registered
    through ``pytest_dbfault_register_faults``, so an in-process re-run can register them again.
    """
    _REGISTRY.pop(name, None)


def fault_names() -> list[str]:
    """Every registered fault name, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_fault_class(name: str) -> type[Fault]:
    """The class registered under ``name``; unknown names raise with a near-miss suggestion."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FaultError(unknown_name_message("fault", name, _REGISTRY)) from None


def make_fault(name: str, *args: Any, **params: Any) -> Fault:
    """Instantiate the fault registered under ``name`` with the given parameters."""
    return get_fault_class(name)(*args, **params)


def unknown_name_message(what: str, name: str, known: Any) -> str:
    """``unknown fault 'disk_ful'; did you mean 'disk_full'? (known: ...)``."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (known: {', '.join(known)})"


_loaded = False


def _load_builtins() -> None:
    # Imported lazily so `import pytest_dbfault` stays cheap when the plugin is inert.
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import builtin  # noqa: F401  (registers the engine-level faults)

    try:
        from ..vfs import faults as _vfs_faults  # noqa: F401  (registers I/O-level faults)
    except ImportError:  # pragma: no cover - the VFS package is optional on exotic builds
        pass
