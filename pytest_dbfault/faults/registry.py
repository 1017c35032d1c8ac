"""Name → fault registry: the one way fixtures, the marker, scenarios, machines, chaos and the sweep make a fault.

Every fault dbfault ships is registered here, in :func:`_load_builtins` (engine-level faults and
the I/O faults of :mod:`pytest_dbfault.vfs.faults`), so no fault module imports the registry.
Third-party faults are added through the ``pytest_dbfault_register_faults`` hook or by calling
:func:`register_fault` directly.

A *variant* is a registered fault with some parameters fixed, under its own name: the kinds the
property machines draw and the report counts (``disconnect_rename`` is ``disconnect`` with
``mode="rename"``)::

    fault = make_fault("disconnect_rename", db_path)   # DisconnectFault(db_path, mode="rename")
    fault.kind                                          # "disconnect_rename": what stats and coverage say
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import Fault, FaultCounter, FaultError

_REGISTRY: dict[str, type[Fault]] = {}


@dataclass(frozen=True)
class Variant:
    """A registered fault with fixed parameters, made under its own name (see the module docstring)."""

    name: str
    fault: str
    params: Mapping[str, Any] = field(default_factory=dict)


_VARIANTS: dict[str, Variant] = {}


def register_fault(cls: type[Fault], name: str | None = None, *, replace: bool = False) -> type[Fault]:
    """Register ``cls`` under ``name`` (default ``cls.name``). Usable as a decorator."""
    key = name or cls.name
    if not key or key == Fault.name:
        raise FaultError(f"{cls.__qualname__} has no fault name; set the class attribute `name`.")
    if key in _VARIANTS:
        raise FaultError(f"fault name {key!r} is a variant of {_VARIANTS[key].fault!r}; pick another name.")
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
    """Every registered fault name, sorted (variants are listed by :func:`variant_names`)."""
    _load_builtins()
    return sorted(_REGISTRY)


def variant_names() -> list[str]:
    """Every registered variant name, sorted."""
    _load_builtins()
    return sorted(_VARIANTS)


def get_fault_class(name: str) -> type[Fault]:
    """The class registered under ``name`` (a variant's: its fault's class); unknown names raise with a near-miss
    suggestion."""
    _load_builtins()
    variant = _VARIANTS.get(name)
    try:
        return _REGISTRY[variant.fault if variant is not None else name]
    except KeyError:
        raise FaultError(unknown_name_message("fault", name, [*_REGISTRY, *_VARIANTS])) from None


def make_fault(name: str, *target: Any, kind: str | None = None, counted_in: FaultCounter | None = None,
               **params: Any) -> Fault:
    """Instantiate the fault (or variant) registered under ``name`` with ``target`` and ``params`` (not injected).

    :param kind: what the fault is labelled as in stats, coverage contexts and hooks (default ``name``).
    :param counted_in: the :class:`~pytest_dbfault.stats.Stats` its injections are counted in (default: not
        counted; the ``dbfault`` fixture, scenarios and property machines count theirs).
    """
    cls = get_fault_class(name)
    variant = _VARIANTS.get(name)
    fault = cls(*target, **({**variant.params, **params} if variant is not None else params))
    fault.kind = kind or name
    fault.counted_in = counted_in
    return fault


def unknown_name_message(what: str, name: str, known: Any) -> str:
    """``unknown fault 'disk_ful'; did you mean 'disk_full'? (known: ...)``."""
    # The one "did you mean" of both wings; imported on this error path only, because importing
    # reliability loads the whole runtime, which making a fault does not need.
    from reliability._suggest import unknown_name_message as message

    return message(what, name, known)


def _register_variant(name: str, fault: str, **params: Any) -> None:
    _VARIANTS[name] = Variant(name, fault, params)


_loaded = False


def _load_builtins() -> None:
    # Imported lazily so `import pytest_dbfault` stays cheap when the plugin is inert. The one place
    # dbfault's own faults are registered: the fault modules themselves never import this one.
    global _loaded
    if _loaded:
        return
    _loaded = True
    from .corrupt import CorruptFault
    from .crash import CrashFault
    from .disconnect import DisconnectFault
    from .disk_full import DiskFullFault
    from .file_full import FileFullFault
    from .locked import BusyCommitFault, BusySnapshotFault, LockedFault

    builtins: list[type[Fault]] = [BusyCommitFault, BusySnapshotFault, CorruptFault, CrashFault, DisconnectFault,
                                   DiskFullFault, FileFullFault, LockedFault]
    try:
        from ..vfs.faults import EnospcFault, IoErrorFault, PowerLossFault, ShortReadFault
    except ImportError:  # pragma: no cover - the VFS package is optional on exotic builds
        pass
    else:
        builtins += [EnospcFault, IoErrorFault, PowerLossFault, ShortReadFault]
    for cls in builtins:
        register_fault(cls)
    # The kinds of the property machines, under the names the report and FAMILIES use.
    _register_variant("disconnect_close", "disconnect", mode="close")
    _register_variant("disconnect_rename", "disconnect", mode="rename")
    _register_variant("disconnect_replace", "disconnect", mode="replace")
    # The file and its sidecars are deleted; healing puts the copy back (a restore from outside, as an
    # operator would).
    _register_variant("disconnect_delete", "disconnect", mode="delete", backup_before=True)
    # The -wal (and the -shm) removed under live connections, as a cleanup script does: nothing to heal.
    _register_variant("disconnect_remove_wal", "disconnect", mode="remove_wal")
    _register_variant("disconnect_remove_wal_shm", "disconnect", mode="remove_wal_shm")
