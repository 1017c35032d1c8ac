"""Fault parameter values a scenario file can get wrong beyond types, choices and bounds.

:mod:`.parse` checks each ``params:`` value against the fault's annotations (type, choices, bounds).
Some mistakes only show in the combination of values, or in what a value names: ``corrupt`` with
``part: btree`` and no ``table``, ``disconnect`` with a ``fraction`` but ``mode: delete`` (silently
ignored), a ``replacement`` file that is not there, an I/O rule the VFS shim refuses (``error: short_read``
on writes). Without these checks such a step failed only when the scenario reached it, or ran a
different fault than the file says. Each check names the key at fault; the parser adds file:line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: A problem: (the key it is about, or None for the whole ``params:``; the message).
Problem = tuple[str | None, str]

_CORRUPT_ONLY_WITH = {"table": ("btree",), "page": ("btree",), "index": ("index",),
                      "frame": ("wal_frame",), "fraction": ("truncate",)}
_DISCONNECT_ONLY_WITH = {"fraction": ("truncate",), "readonly_via": ("readonly",),
                         "replacement": ("replace",), "backup_before": ("delete", "truncate")}


def _only_with(name: str, switch: str, default: str, table: Mapping[str, tuple[str, ...]],
               params: Mapping[str, Any]) -> list[Problem]:
    """Parameters that only act with some values of ``switch``: given with another, they would be ignored."""
    chosen = params.get(switch, default)
    out: list[Problem] = []
    for key, modes in table.items():
        if key in params and chosen not in modes:
            out.append((key, f"{key!r} only applies to fault {name!r} with {switch}: "
                             f"{' or '.join(modes)}, not {chosen!r} (it would be ignored); remove it or change "
                             f"{switch}"))
    return out


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _corrupt(params: Mapping[str, Any]) -> list[Problem]:
    part = params.get("part", "btree")
    out = _only_with("corrupt", "part", "btree", _CORRUPT_ONLY_WITH, params)
    if part == "btree" and not _name(params.get("table")):
        out.append(("table" if "table" in params else "part",
                    "fault 'corrupt' with part: btree (the default) needs `table:` naming the table whose "
                    "b-tree to damage (sqlite_schema for page 1)"))
    if part == "index" and not _name(params.get("index")):
        out.append(("index" if "index" in params else "part",
                    "fault 'corrupt' with part: index needs `index:` naming the index to damage"))
    fraction = params.get("fraction")
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and not 0 < fraction < 1:
        out.append(("fraction", f"fraction {fraction!r} must be between 0 and 1, both excluded (the share of "
                                f"the file kept)"))
    length = params.get("length")
    if isinstance(length, int) and not isinstance(length, bool) and length < 1:
        out.append(("length", f"length {length!r} must be at least 1 byte"))
    return out


def _disconnect(params: Mapping[str, Any]) -> list[Problem]:
    out = _only_with("disconnect", "mode", "close", _DISCONNECT_ONLY_WITH, params)
    fraction = params.get("fraction")
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and not 0 <= fraction < 1:
        out.append(("fraction", f"fraction {fraction!r} must be at least 0 and below 1 (the share of the "
                                f"file kept)"))
    replacement = params.get("replacement")
    if isinstance(replacement, str) and not Path(replacement).is_file():
        # The fault opens it as given, relative to the directory pytest runs in.
        out.append(("replacement", f"replacement file {replacement!r} not found (looked for "
                                   f"{Path(replacement).absolute()})"))
    return out


def _file_full(params: Mapping[str, Any]) -> list[Problem]:
    sidecar = params.get("sidecar")
    if sidecar is None:
        return [(None, "fault 'file_full' in a scenario needs `sidecar:`, the suffix of the runtime's file to "
                       "fill, e.g. '.redo' for <database>.redo (its target is the scenario's runtime)")]
    if not isinstance(sidecar, str) or not sidecar or "/" in sidecar:
        return [("sidecar", f"sidecar {sidecar!r} must be a file name suffix such as '.redo' (no '/')")]
    return []


def _io_rule(name: str) -> Callable[[Mapping[str, Any]], list[Problem]]:
    """The VFS shim's own check of a rule (ops x error, nth or probability), made now rather than at inject."""

    def check(params: Mapping[str, Any]) -> list[Problem]:
        from ..faults.registry import get_fault_class
        from ..vfs.errors import VfsUsageError
        from ..vfs.rules import FailRule

        cls = get_fault_class(name)
        ops = params.get("ops") or cls._ops
        kinds = params.get("kinds")
        try:
            FailRule(ops=frozenset([ops] if isinstance(ops, str) else ops),
                     error=params.get("error") or cls._error, path=None,
                     kinds=None if kinds is None else frozenset([kinds] if isinstance(kinds, str) else kinds),
                     nth=params.get("nth", 1), probability=params.get("probability"), seed=params.get("seed"),
                     persistent=bool(params.get("persistent", False)))
        except VfsUsageError as exc:
            text = str(exc)
            key = next((k for k in ("error", "ops", "kinds", "probability", "nth") if k in text and k in params),
                       None)
            return [(key, f"fault {name!r}: {text.removeprefix('FailRule ')}")]
        except (TypeError, ValueError):  # a wrong type was already reported by the parameter check
            return []
        return []

    return check


_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[Problem]]] = {
    "corrupt": _corrupt,
    "disconnect": _disconnect,
    "file_full": _file_full,
    "io_error": _io_rule("io_error"),
    "enospc": _io_rule("enospc"),
    "short_read": _io_rule("short_read"),
}


def value_problems(fault: str, params: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with the values of ``params`` for ``fault`` taken together (empty: nothing found)."""
    check = _CHECKS.get(fault)
    return check(params) if check is not None else []
