"""What each fault accepts and does, read from the fault classes themselves.

One source for three readers: the scenario parser checks ``params:`` of a ``fault:`` step with
:func:`fault_params` (names, defaults, types from the annotations, allowed words from
``param_choices``), the JSON Schema for editors is built from the same list, and the table of
faults in ``docs/plugin.md`` is :func:`markdown_table` (a test keeps the two equal).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .base import Fault
from .registry import fault_names, get_fault_class

#: Parameters chosen by whoever points the fault (the target), never by a scenario.
TARGET_PARAMS = ("target", "path")

#: JSON type names for the words of a parameter annotation (``str | None`` → string, null).
_TYPE_WORDS = {
    "str": "string", "int": "integer", "float": "number", "bool": "boolean", "None": "null",
    "os.PathLike[str]": "string", "Path": "string",
}
_ARRAY_PREFIXES = ("Iterable[", "list[", "tuple[", "Sequence[")


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a fault: name, default, JSON types (empty: any) and allowed values."""

    name: str
    default: Any
    required: bool
    types: tuple[str, ...]
    choices: tuple[Any, ...] | None
    bounds: tuple[float | None, float | None] = (None, None)

    def accepts(self, value: Any) -> str | None:
        """``None`` when ``value`` fits, else what was expected (for an error message)."""
        if self.types and not any(_is_type(value, t) for t in self.types):
            return "expected " + " or ".join(_TYPE_LABELS[t] for t in self.types)
        low, high = self.bounds
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                low is not None and value < low or high is not None and value > high):
            if high is None:
                return f"expected a number >= {low}"
            return f"expected a number <= {high}" if low is None else f"expected a number from {low} to {high}"
        if self.choices is not None:
            listed = "array" in self.types and isinstance(value, list)
            for item in value if listed else [value]:
                if item not in self.choices:
                    words = [c for c in self.choices if isinstance(c, str)]
                    from reliability._suggest import did_you_mean  # on this error path only: loads the runtime

                    hint = did_you_mean(item, words)
                    what = f"the item {item!r} is not" if listed else "expected"
                    return (f"{what} one of " + ", ".join("null" if c is None else str(c) for c in self.choices)
                            + hint)
        return None

    def json(self) -> dict[str, Any]:
        """This parameter as a JSON Schema fragment."""
        options: list[dict[str, Any]] = []
        for t in self.types:
            if t == "array":
                item: dict[str, Any] = {"type": "string"}
                if self.choices is not None:
                    item = {"enum": [c for c in self.choices if c is not None]}
                options.append({"type": "array", "items": item})
            elif t == "null":
                options.append({"type": "null"})
            elif self.choices is not None and t == "string":
                options.append({"enum": [c for c in self.choices if isinstance(c, str)]})
            else:
                numeric: dict[str, Any] = {"type": t}
                if t in ("integer", "number"):
                    low, high = self.bounds
                    if low is not None:
                        numeric["minimum"] = low
                    if high is not None:
                        numeric["maximum"] = high
                options.append(numeric)
        out: dict[str, Any] = options[0] if len(options) == 1 else ({"anyOf": options} if options else {})
        if self.default is not None and not self.required:
            out = {**out, "default": self.default}
        return out


_TYPE_LABELS = {"string": "a text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
                "null": "null", "array": "a list", "object": "a mapping"}


def _is_type(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return True  # pragma: no cover - only the names above are produced


def _types(annotation: Any) -> tuple[str, ...]:
    if annotation is inspect.Parameter.empty:
        return ()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    out: list[str] = []
    for word in (w.strip() for w in text.split("|")):
        if word in _TYPE_WORDS:
            out.append(_TYPE_WORDS[word])
        elif word.startswith(_ARRAY_PREFIXES):
            out.append("array")
        elif word.startswith("dict["):
            out.append("object")
        else:
            return ()  # a type a YAML value cannot name (a callable, Any...): not checked
    return tuple(dict.fromkeys(out))


def fault_params(cls: type[Fault]) -> tuple[list[Param], bool]:
    """``(parameters, open)`` of a fault class, its target left out; ``open``: takes any other keyword.

    Classes whose ``**options`` are another function's keywords say so with ``options_of``
    (``crash`` → :func:`~.crash.run_and_kill`).
    """
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - a class with an unreadable signature
        return [], True
    if parameters and parameters[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                             inspect.Parameter.POSITIONAL_OR_KEYWORD):
        parameters = parameters[1:]  # the target: a path, connection or manager
    is_open = any(p.kind is p.VAR_KEYWORD for p in parameters)
    extra = getattr(cls, "options_of", None)
    if is_open and extra is not None:
        own = {p.name for p in parameters}
        more = [p for p in inspect.signature(extra).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in own]
        parameters = [p for p in parameters if p.kind is not p.VAR_KEYWORD] + more
        is_open = False
    choices = getattr(cls, "param_choices", {}) or {}
    bounds = getattr(cls, "param_bounds", {}) or {}
    out = []
    for p in parameters:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.name in TARGET_PARAMS:
            continue
        required = p.default is p.empty
        out.append(Param(p.name, None if required else p.default, required, _types(p.annotation),
                         tuple(choices[p.name]) if p.name in choices else None,
                         tuple(bounds.get(p.name, (None, None)))))
    return out, is_open


@dataclass(frozen=True)
class FaultInfo:
    """How a built-in fault is pointed and what it does, for the table in ``docs/plugin.md``.

    ``accepts``: the kinds of target (``path``, ``connection``, ``manager``) it takes with its default
    parameters; ``targets`` says the same for people, with the exceptions other parameters make.
    """

    accepts: tuple[str, ...]
    targets: str
    sees: str
    heals: str


#: The built-in faults (engine-level and VFS). ``tests/faults/test_fault_catalog.py`` points each at a
#: path, a connection and a manager and checks ``accepts``.
_ALL = ("path", "connection", "manager")
BUILTIN: dict[str, FaultInfo] = {
    "busy_commit": FaultInfo(
        _ALL,
        "path, connection, manager",
        "rollback journal: writes succeed, `COMMIT` gets 5/SQLITE_BUSY after the busy timeout, the "
        "transaction stays open",
        "the reader's SHARED lock is released; a retried COMMIT works"),
    "busy_snapshot": FaultInfo(
        ("connection", "manager"),
        "connection, manager",
        "WAL: the next write in the current transaction gets 517/SQLITE_BUSY_SNAPSHOT",
        "rolls the victim's transaction back (`rollback_on_heal`)"),
    "corrupt": FaultInfo(
        _ALL,
        "path, connection, manager",
        "new connections get 11/SQLITE_CORRUPT or 26/SQLITE_NOTADB (WAL parts: no error; the tail is dropped when "
        "the WAL index is rebuilt, but while a connection keeps it open a damaged frame is served and checkpointed "
        "as it is; "
        "index_entry: no error, only integrity_check finds it; append: no error, SQLite reads only the pages its "
        "header counts, and the file ends inside a page)",
        "only with `backup_before=True` (the files are copied back); otherwise permanent"),
    "crash": FaultInfo(
        _ALL,
        "path, connection, manager",
        "a writer subprocess killed with SIGKILL at a chosen point; the file as the crash left it",
        "not healable: reopen the database to recover it (`fault.result`)"),
    "disconnect": FaultInfo(
        ("connection", "manager"),
        "connection, manager (`close`, `readonly`); path too for `delete`, `rename`, `replace`, "
        "`replace_for_good`, `readonly` (chmod), `truncate`, `remove_wal`, `remove_wal_shm`",
        "`close`: ProgrammingError on a closed database; moved/replaced file: 1032/SQLITE_READONLY_DBMOVED "
        "(WAL: silent writes to the lost file); `readonly`: 8/SQLITE_READONLY; `truncate`: 11/SQLITE_CORRUPT; "
        "`remove_wal`/`remove_wal_shm`: no error, open handles go on with the unlinked WAL, new connections "
        "get a disk I/O error (or, `-shm` gone too, the database as of the last checkpoint)",
        "`rename`/`replace` move the files back, `readonly` restores the flag or mode, `delete`/`truncate` "
        "only with `backup_before=True`, `close` and `remove_wal`/`remove_wal_shm` cannot be undone, "
        "`replace_for_good` leaves the replacement (the original is gone)"),
    "disk_full": FaultInfo(
        ("connection", "manager"),
        "connection, manager",
        "writes needing more than `headroom` new pages get 13/SQLITE_FULL, the transaction is rolled back",
        "the connection's previous `max_page_count` is restored"),
    "enospc": FaultInfo(
        ("path",),
        "path, or none (every file)",
        "connections opened after inject: every write gets 13/SQLITE_FULL",
        "the rule is removed; new connections write normally"),
    "file_full": FaultInfo(
        ("path",),
        "path or descriptor of an open file; path, connection or manager with `sidecar`",
        "`write()` on the file's open descriptors fails with OSError 28 ENOSPC, `fsync()` with EINVAL",
        "the original descriptors are put back, offsets intact"),
    "io_error": FaultInfo(
        ("path",),
        "path, or none (every file)",
        "connections opened after inject: the chosen operations fail with SQLITE_IOERR_* (or `error`)",
        "the rule is removed; new connections work normally"),
    "locked": FaultInfo(
        _ALL,
        "path, connection, manager",
        "writers get 5/SQLITE_BUSY after their busy timeout (`exclusive` in a rollback journal: readers too)",
        "the holder rolls back and exits (or after `duration` seconds)"),
    "power_loss": FaultInfo(
        ("path",),
        "path",
        "nothing until `cut()`: then copies of the files hold only what was synced (or torn sectors)",
        "recording stops; the copies stay for the test to open"),
    "short_read": FaultInfo(
        ("path",),
        "path, or none (every file)",
        "connections opened after inject: reads return half a page, usually 11/SQLITE_CORRUPT",
        "the rule is removed; new connections read normally"),
}


def _param_text(p: Param) -> str:
    if p.required:
        return f"`{p.name}` (required)"
    return f"`{p.name}={p.default!r}`"


def markdown_table(names: list[str] | None = None) -> str:
    """The table of faults in ``docs/plugin.md``: targets, parameters with defaults, effect, heal."""
    rows = ["| fault | targets | parameters (defaults) | what the application sees | how it heals |",
            "|---|---|---|---|---|"]
    for name in names if names is not None else [n for n in fault_names() if n in BUILTIN]:
        info = BUILTIN[name]
        params, is_open = fault_params(get_fault_class(name))
        text = ", ".join(_param_text(p) for p in params) + (", `**options`" if is_open else "")
        rows.append(f"| `{name}` | {info.targets} | {text or '—'} | {info.sees} | {info.heals} |")
    return "\n".join(rows) + "\n"
