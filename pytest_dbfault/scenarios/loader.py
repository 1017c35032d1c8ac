"""Read a YAML scenario file into plain values that remember their line numbers.

PyYAML's constructors forget where values came from, so this module composes the node
tree (every node has a ``start_mark``) and builds the values itself:

* mappings become :class:`LocatedMap` (a ``dict``) with ``.line`` and ``.key_lines`` /
  ``.value_lines`` per key;
* sequences become :class:`LocatedList` (a ``list``) with ``.line`` and ``.item_lines``;
* scalars are built by PyYAML's ``SafeConstructor`` (so ``300``, ``true``, ``null``,
  ``1.5`` mean what YAML 1.1 says) and located by their parent.

It refuses what PyYAML would accept silently: duplicate keys, several documents, tags
other than the standard ones, non-scalar keys and recursive aliases. Every refusal is a
:class:`~.errors.ScenarioError` with the line, never a PyYAML traceback::

    doc = load_text("scenarios:\\n  - name: x\\n", "x.dbfault.yaml")
    doc["scenarios"].item_lines[0]  # 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Problem, ScenarioError

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
#: Deeper than any sane scenario; protects the builder from pathological nesting.
MAX_DEPTH = 100
#: Largest file read (bytes). The shipped files are a few kilobytes; a megabyte of scenarios is a mistake.
MAX_BYTES = 1_000_000
#: Most values one document may build, aliases expanded. Aliases share nodes, so a small file can
#: stand for billions of values ("billion laughs"); the builder stops at this many, in well under a second.
MAX_VALUES = 100_000


class LocatedMap(dict):
    """A mapping from a YAML file, with the 1-based line of itself, each key and each value."""

    line: int = 0
    column: int = 0

    def __init__(self, line: int = 0, column: int = 0) -> None:
        super().__init__()
        self.line = line
        self.column = column
        self.key_lines: dict[Any, tuple[int, int]] = {}
        self.value_lines: dict[Any, tuple[int, int]] = {}

    def key_at(self, key: Any) -> tuple[int, int]:
        """``(line, column)`` of ``key`` (the mapping's own position when absent)."""
        return self.key_lines.get(key, (self.line, self.column))

    def value_at(self, key: Any) -> tuple[int, int]:
        """``(line, column)`` of the value of ``key`` (the mapping's own position when absent)."""
        return self.value_lines.get(key, (self.line, self.column))


class LocatedList(list):
    """A sequence from a YAML file, with the 1-based line of itself and of each item."""

    line: int = 0
    column: int = 0

    def __init__(self, line: int = 0, column: int = 0) -> None:
        super().__init__()
        self.line = line
        self.column = column
        self.item_lines: list[tuple[int, int]] = []

    def item_at(self, index: int) -> tuple[int, int]:
        """``(line, column)`` of item ``index``."""
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line, self.column


def load_file(path: str | Path) -> tuple[Any, str]:
    """Read and parse ``path``; returns ``(document, source text)``."""
    path = Path(path)
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ScenarioError(path, [Problem(line, f"the file is not valid UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ScenarioError(path, [Problem(1, f"cannot read the file: {exc.strerror or exc}")]) from None
    return load_text(source, path), source


def load_text(source: str, path: str | Path = "<string>") -> Any:
    """Parse one YAML document from ``source``; ``None`` for an empty document."""
    if len(source) > MAX_BYTES:
        line = source[:MAX_BYTES].count("\n") + 1
        raise ScenarioError(path, [Problem(line, f"the file is larger than {MAX_BYTES:,} characters; split the "
                                           f"scenarios into several files")], source)
    try:
        documents = list(yaml.compose_all(source, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 0)
        raise ScenarioError(path, [Problem(line, _yaml_message(exc), column)], source) from None
    except yaml.YAMLError as exc:  # reader errors (control characters...) carry no mark
        raise ScenarioError(path, [Problem(_reader_line(source, exc), f"invalid YAML: {exc}")], source) from None
    except RecursionError:
        raise ScenarioError(path, [Problem(1, "invalid YAML: nested too deeply")], source) from None
    if len(documents) > 1:
        line = documents[1].start_mark.line + 1
        raise ScenarioError(path, [Problem(line, "a scenario file holds one YAML document, but a second one "
                                           "starts here (after '---'); put every scenario under the one "
                                           "`scenarios:` list")], source)
    if not documents:
        return None
    builder = _Builder(path, source)
    try:
        value = builder.build(documents[0], 0)
    except _TooLarge as exc:
        raise ScenarioError(path, [Problem(exc.line, f"the document expands to more than {MAX_VALUES:,} values "
                                           f"through its aliases (*name); a scenario file never needs that "
                                           f"many (this looks like a YAML alias bomb); the expansion passed "
                                           f"the limit in the value starting here", exc.column)], source) from None
    if builder.problems:
        raise ScenarioError(path, builder.problems, source)
    return value


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """Our wording for PyYAML's errors; the indentation ones said as such, with where the block began."""
    problem = str(exc.problem or "")
    context = str(exc.context or "")
    if "expected <block end>" in problem and exc.context_mark is not None:
        what = "mapping" if "mapping" in context else "list"
        start = exc.context_mark
        return (f"wrong indentation: this line does not line up with the {what} that starts on line "
                f"{start.line + 1} at column {start.column + 1}; indent it by exactly as many spaces as the "
                f"other {'keys' if what == 'mapping' else 'items (- ...)'} it belongs with")
    if "mapping values are not allowed here" in problem:
        return ("a ':' where a value was expected: put a space after the first ':' of a key, quote a text "
                "containing ': ', or start a nested mapping on its own, more indented line")
    text = " ".join(p for p in (context, problem) if p) or "invalid YAML"
    return f"invalid YAML: {text}"


class _TooLarge(Exception):
    """Raised inside the builder when :data:`MAX_VALUES` is passed; carries where."""

    def __init__(self, line: int, column: int) -> None:
        super().__init__(line, column)
        self.line, self.column = line, column


class _Builder:
    """Turns composed nodes into located values, collecting problems instead of raising."""

    def __init__(self, path: str | Path, source: str) -> None:
        self.path = path
        self.source = source
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._building: set[int] = set()
        self._built = 0

    def build(self, node: Node, depth: int) -> Any:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self._built += 1
        if self._built > MAX_VALUES:
            raise _TooLarge(line, column)
        if depth > MAX_DEPTH:
            self._problem(node, f"nested more than {MAX_DEPTH} levels deep")
            return None
        if id(node) in self._building:
            self._problem(node, "this alias refers to a mapping or list that contains it (a recursive alias)")
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        self._building.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    self._problem(node, f"unsupported YAML tag {node.tag!r} on a list; remove it")
                out = LocatedList(line, column)
                for item in node.value:
                    out.append(self.build(item, depth + 1))
                    out.item_lines.append((item.start_mark.line + 1, item.start_mark.column + 1))
                return out
            if isinstance(node, MappingNode):
                if node.tag not in (_MAP_TAG, "tag:yaml.org,2002:set", "tag:yaml.org,2002:omap"):
                    self._problem(node, f"unsupported YAML tag {node.tag!r} on a mapping; remove it")
                out_map = LocatedMap(line, column)
                self._fill(out_map, node, depth, explicit=True)
                return out_map
        finally:
            self._building.discard(id(node))
        self._problem(node, "unsupported YAML node")  # pragma: no cover - composer makes only these three
        return None

    def _fill(self, out: LocatedMap, node: MappingNode, depth: int, *, explicit: bool) -> None:
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, "a key must be a plain word, not a list or mapping")
                continue
            key = self._scalar(key_node)
            if key in out:
                if explicit:
                    first = out.key_lines[key][0]
                    self._problem(key_node, f"duplicate key {key!r} (first given on line {first}); "
                                            f"a key may appear once per mapping")
                continue  # and merged keys never override explicit ones
            out[key] = self.build(value_node, depth + 1)
            out.key_lines[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out.value_lines[key] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self._problem(source, "`<<` merges a mapping (or a list of mappings) into this one")
                    continue
                if id(source) in self._building:
                    self._problem(source, "this alias refers to a mapping that contains it (a recursive alias)")
                    continue
                self._building.add(id(source))
                try:
                    self._fill(out, source, depth + 1, explicit=False)
                finally:
                    self._building.discard(id(source))

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag == _MERGE_TAG:
            self._problem(node, "`<<` can only be used as a key")
            return None
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            what = getattr(exc, "problem", None) or str(exc)
            self._problem(node, f"cannot read this value ({what})")
            return None

    def _problem(self, node: Node, message: str) -> None:
        self.problems.append(Problem(node.start_mark.line + 1, message, node.start_mark.column + 1))


def _reader_line(source: str, exc: yaml.YAMLError) -> int:
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        return source[:position].count("\n") + 1
    return 1
