"""Small type descriptors that check located YAML values and describe themselves as JSON Schema.

The scenario format (:mod:`.schema`) is written with these, so the checker, the JSON Schema
shipped for editors and the reference tables cannot disagree. Each check appends
:class:`~.errors.Problem` objects (never raises), so one pass reports every mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Problem, closest, did_you_mean
from .loader import LocatedList, LocatedMap


@dataclass
class At:
    """Where a value sits: its path in the document and its line/column; collects problems."""

    problems: list[Problem]
    where: str
    line: int
    column: int = 0

    def key(self, parent: LocatedMap, key: str) -> At:
        """The position of ``parent[key]``'s value."""
        line, column = parent.value_at(key)
        return At(self.problems, f"{self.where}.{key}" if self.where else str(key), line, column)

    def key_itself(self, parent: LocatedMap, key: Any) -> At:
        """The position of the key ``key`` in ``parent``."""
        line, column = parent.key_at(key)
        return At(self.problems, f"{self.where}.{key}" if self.where else str(key), line, column)

    def item(self, parent: LocatedList, index: int) -> At:
        """The position of ``parent[index]``."""
        line, column = parent.item_at(index)
        return At(self.problems, f"{self.where}[{index}]", line, column)

    def problem(self, message: str) -> None:
        """Record ``message`` at this position."""
        self.problems.append(Problem(self.line, message, self.column, self.where))


def describe(value: Any) -> str:
    """How a message names a value of the wrong type: ``the text 'abc'``, ``a list``..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} value"


class Spec:
    """A kind of value. ``label`` is how messages name it (``a whole number``)."""

    label = "a value"

    def accepts_type(self, value: Any) -> bool:
        """True when ``value`` has the right Python type (its content may still be wrong)."""
        return True

    def check(self, value: Any, at: At) -> None:
        """Append problems with ``value`` to ``at``."""
        if not self.accepts_type(value):
            at.problem(f"expected {self.label}, got {describe(value)}")
            return
        self.check_content(value, at)

    def check_content(self, value: Any, at: At) -> None:
        """Check a value already known to have the right type."""

    def json(self) -> dict[str, Any]:
        """This spec as a JSON Schema fragment."""
        return {}


@dataclass
class Anything(Spec):
    """Any YAML value."""

    label: str = "any value"


@dataclass
class Str(Spec):
    """A string, non-empty unless ``allow_empty``."""

    label: str = "a text"
    allow_empty: bool = False

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def check_content(self, value: Any, at: At) -> None:
        if not self.allow_empty and not value.strip():
            at.problem(f"expected {self.label}, got an empty text")

    def json(self) -> dict[str, Any]:
        return {"type": "string"} if self.allow_empty else {"type": "string", "minLength": 1}


@dataclass
class Bool(Spec):
    """``true`` or ``false``."""

    label: str = "true or false"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, bool)

    def json(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass
class Int(Spec):
    """A whole number, at least ``minimum`` and at most ``maximum`` when given."""

    label: str = "a whole number"
    minimum: int | None = None
    maximum: int | None = None

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def check_content(self, value: Any, at: At) -> None:
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            at.problem(f"expected {self.label}, got {value}")

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass
class Choice(Spec):
    """One of a fixed set of words."""

    values: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or "one of " + ", ".join(self.values)

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, str)

    def check_content(self, value: Any, at: At) -> None:
        if value not in self.values:
            at.problem(f"unknown value {value!r}{did_you_mean(value, self.values)} (expected {self.label})")

    def json(self) -> dict[str, Any]:
        return {"enum": list(self.values)}


@dataclass
class ListOf(Spec):
    """A list whose items are ``item``; at least ``min_items`` of them."""

    item: Spec = field(default_factory=Anything)
    min_items: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or f"a list of {_plural(self.item.label)}"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, list)

    def check_content(self, value: Any, at: At) -> None:
        if len(value) < self.min_items:
            at.problem(f"expected {self.label} with at least {self.min_items} item(s), got an empty list")
        for i, item in enumerate(value):
            self.item.check(item, at.item(value, i) if isinstance(value, LocatedList) else at)

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.json()}
        if self.min_items:
            out["minItems"] = self.min_items
        return out


@dataclass
class MapOf(Spec):
    """A mapping from free names (non-empty text) to ``value``."""

    value: Spec = field(default_factory=Anything)
    label: str = ""
    key_label: str = "a name"

    def __post_init__(self) -> None:
        self.label = self.label or f"a mapping of {_plural(self.key_label)} to {_plural(self.value.label)}"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check_content(self, value: Any, at: At) -> None:
        for key in value:
            if not isinstance(key, str) or not key:
                at.key_itself(value, key).problem(f"expected {self.key_label} as key, got {describe(key)}")
                continue
            self.value.check(value[key], at.key(value, key) if isinstance(value, LocatedMap) else at)

    def json(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.value.json()}


@dataclass(frozen=True)
class Field:
    """One key of an :class:`Obj`: its spec, whether it is required, its default and meaning."""

    spec: Spec
    doc: str
    required: bool = False
    default: Any = None


@dataclass
class Obj(Spec):
    """A mapping with a fixed set of keys."""

    fields: dict[str, Field] = field(default_factory=dict)
    label: str = "a mapping"

    def accepts_type(self, value: Any) -> bool:
        return isinstance(value, dict)

    def check_content(self, value: Any, at: At) -> None:
        known = list(self.fields)
        for key in value:
            if key not in self.fields:
                shown = key if isinstance(key, str) else describe(key)
                at.key_itself(value, key).problem(
                    f"unknown key {shown!r}{did_you_mean(key, known)} (expected one of: {', '.join(known)})")
        # A required key whose near miss is present was already reported as "did you mean".
        suggested = {closest(k, known) for k in value if k not in self.fields}
        missing = [k for k, f in self.fields.items() if f.required and k not in value and k not in suggested]
        for key in missing:
            at.problem(f"missing required key {key!r} ({self.fields[key].doc})")
        for key, spec in self.fields.items():
            if key in value:
                spec.spec.check(value[key], at.key(value, key) if isinstance(value, LocatedMap) else at)

    def json(self) -> dict[str, Any]:
        props = {}
        for key, f in self.fields.items():
            prop = {**f.spec.json(), "description": f.doc}
            if f.default is not None:
                prop["default"] = f.default
            props[key] = prop
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        return out


@dataclass
class Either(Spec):
    """One of several specs, picked by the value's type (the first whose type fits)."""

    options: tuple[Spec, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or " or ".join(o.label for o in self.options)

    def accepts_type(self, value: Any) -> bool:
        return any(o.accepts_type(value) for o in self.options)

    def check_content(self, value: Any, at: At) -> None:
        for option in self.options:
            if option.accepts_type(value):
                option.check_content(value, at)
                return

    def json(self) -> dict[str, Any]:
        return {"anyOf": [o.json() for o in self.options]}


def _plural(label: str) -> str:
    for article in ("a ", "an ", "one of "):
        if label.startswith(article):
            return label[len(article):] + ("s" if article != "one of " else "")
    return label
