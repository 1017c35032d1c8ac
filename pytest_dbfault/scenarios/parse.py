"""Turn a scenario file into checked :class:`Scenario` objects, or precise errors.

Problems are scoped as narrowly as possible so one mistake never hides the rest of a file:

* the file cannot be read or parsed, or has no ``scenarios:`` list → :attr:`ParsedFile.error`;
* a wrong top-level key or setting → :attr:`ParsedFile.file_error`, the scenarios still run;
* a wrong scenario → that scenario's own :class:`BrokenScenario` (its test item fails), the
  others run.

Example::

    parsed = parse_file("scenarios/p06_transaction_atomicity.dbfault.yaml")
    for s in parsed.scenarios:
        print(s.name, "broken" if isinstance(s, BrokenScenario) else f"{len(s.steps)} steps")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..faults.catalog import fault_params
from ..faults.registry import fault_names, get_fault_class, unknown_name_message
from ..stats import PROPERTIES
from .errors import Problem, ScenarioError, did_you_mean
from .fault_values import value_problems
from .loader import LocatedList, LocatedMap, load_file
from .registry import ScenarioCommandRegistry, default_registry
from .schema import FILE, RESERVED_FAULT_PARAMS, SCENARIO, STEP_TYPES, STEPS
from .spec import At

#: Fault constructor parameters a scenario may not set: the runner chooses the target.
_RESERVED_FAULT_PARAMS = RESERVED_FAULT_PARAMS
#: Settings the runner controls itself.
_RESERVED_SETTINGS = ("db_path",)


@dataclass(frozen=True)
class Step:
    """One checked step: its type (``command``/``fault``/``heal``/``expect``), line and content."""

    kind: str
    index: int
    line: int
    data: dict[str, Any]

    @property
    def label(self) -> str:
        """The label a ``fault`` step's fault is healed by."""
        return str(self.data.get("as") or self.data.get("fault"))

    def describe(self) -> str:
        """One line: ``command: sql {'sql': 'SELECT 1'}``."""
        if self.kind == "command":
            args = self.data.get("args") or {}
            return f"command: {self.data['command']}" + (f" {_short(args)}" if args else "")
        if self.kind == "fault":
            params = self.data.get("params") or {}
            label = f" as {self.data['as']}" if self.data.get("as") else ""
            return f"fault: {self.data['fault']}" + (f" {_short(params)}" if params else "") + label
        if self.kind == "heal":
            return f"heal: {self.data['heal']}"
        return f"expect: {_short(self.data['expect'])}"


@dataclass(frozen=True)
class Scenario:
    """A valid scenario, ready for :func:`~.runner.run_scenario`."""

    name: str
    file: Path
    line: int
    steps: tuple[Step, ...]
    description: str = ""
    properties: tuple[int, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    migrations: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    #: The file's ``seed:``, used when no seed is given on the command line.
    file_seed: int | None = None
    source: str = ""


@dataclass(frozen=True)
class BrokenScenario:
    """A scenario that failed validation; running it reports :attr:`error`."""

    name: str
    file: Path
    line: int
    error: ScenarioError


@dataclass
class ParsedFile:
    """Everything read from one file."""

    path: Path
    scenarios: list[Scenario | BrokenScenario] = field(default_factory=list)
    #: The whole file is unusable (no scenario could be read).
    error: ScenarioError | None = None
    #: Top-level problems (unknown key, bad config...) reported alongside the scenarios.
    file_error: ScenarioError | None = None
    seed: int | None = None
    source: str = ""


def parse_file(path: str | Path, commands: ScenarioCommandRegistry | None = None) -> ParsedFile:
    """Read, validate and split ``path`` into scenarios (never raises for a bad file)."""
    path = Path(path)
    try:
        doc, source = load_file(path)
    except ScenarioError as exc:
        return ParsedFile(path, error=exc)
    return parse_document(doc, path, source, commands)


def parse_document(doc: Any, path: Path, source: str = "",
                   commands: ScenarioCommandRegistry | None = None) -> ParsedFile:
    """Validate an already loaded document (see :func:`~.loader.load_text`)."""
    commands = commands if commands is not None else default_registry()
    result = ParsedFile(path, source=source)
    if not isinstance(doc, LocatedMap) or "scenarios" not in doc or not isinstance(doc["scenarios"], LocatedList):
        result.error = ScenarioError(path, [_top_problem(doc)], source)
        return result

    top_problems: list[Problem] = []
    top = At(top_problems, "", doc.line, doc.column)
    top_only = dataclasses.replace(FILE, fields={k: f for k, f in FILE.fields.items() if k != "scenarios"})
    top_only.check(LocatedMapView(doc, exclude="scenarios"), top)
    if "config" in doc and isinstance(doc["config"], LocatedMap):
        _check_config(doc["config"], top.key(doc, "config"))
    if not top_problems:
        result.seed = doc.get("seed")
    file_config = dict(doc["config"]) if isinstance(doc.get("config"), dict) and not top_problems else {}
    if top_problems:
        result.file_error = ScenarioError(path, top_problems, source)

    items: LocatedList = doc["scenarios"]
    if not items:
        result.error = ScenarioError(path, [Problem(items.line or doc.line, "`scenarios:` is an empty list; add at "
                                                    "least one scenario with a name and steps",
                                                    where="scenarios")], source)
        return result
    seen: dict[str, int] = {}
    for i, raw in enumerate(items):
        line, _column = items.item_at(i)
        at = At([], f"scenarios[{i}]", line, _column)
        name = raw.get("name") if isinstance(raw, dict) else None
        usable_name = isinstance(name, str) and bool(name.strip()) and "::" not in name and "\n" not in name
        if isinstance(name, str) and name.strip() and not usable_name:
            at.key(raw, "name").problem("a scenario name cannot contain '::' or a line break (it is the test id)")
        if usable_name and name in seen:
            at.key(raw, "name").problem(f"duplicate scenario name {name!r} (first used on line {seen[name]}); "
                                        f"names are test ids and must be unique in a file")
            usable_name = False
        item_name = name if usable_name else f"scenario-{i + 1}"
        if usable_name:
            seen[name] = line
        scenario = _check_scenario(raw, at, path, source, commands, file_config, result.seed)
        if at.problems or scenario is None:
            result.scenarios.append(BrokenScenario(item_name, path, line, ScenarioError(path, at.problems, source)))
        else:
            result.scenarios.append(dataclasses.replace(scenario, name=item_name, line=line))
    return result


class LocatedMapView(LocatedMap):
    """A copy of a :class:`LocatedMap` without one key (to check the top level apart from its scenarios).

    Keys starting with ``x-`` are left out too: they hold YAML anchors shared by scenarios.
    """

    def __init__(self, source: LocatedMap, exclude: str) -> None:
        super().__init__(source.line, source.column)
        for key, value in source.items():
            if key != exclude and not (isinstance(key, str) and key.startswith("x-")):
                self[key] = value
        self.key_lines = dict(source.key_lines)
        self.value_lines = dict(source.value_lines)


def _top_problem(doc: Any) -> Problem:
    expected = ("expected a mapping with a `scenarios:` list, e.g.\n"
                "    scenarios:\n      - name: my first scenario\n        steps:\n          - command: ping")
    if doc is None:
        return Problem(1, "the file is empty; " + expected)
    if not isinstance(doc, LocatedMap):
        what = "a list" if isinstance(doc, list) else "a single value"
        return Problem(getattr(doc, "line", 1) or 1, f"the file holds {what}; " + expected)
    if "scenarios" not in doc:
        hint = did_you_mean_key(doc, "scenarios")
        return Problem(doc.line, f"missing required key 'scenarios'{hint}; " + expected)
    line, column = doc.value_at("scenarios")
    return Problem(line, "`scenarios:` must be a list of scenarios (each item starts with '- name: ...')",
                   column, "scenarios")


def did_you_mean_key(doc: LocatedMap, wanted: str) -> str:
    """``" (found 'scenarious' on line 3)"`` when a key of ``doc`` is a near miss of ``wanted``."""
    for key in doc:
        if isinstance(key, str) and did_you_mean(key, [wanted]):
            return f" (found {key!r} on line {doc.key_at(key)[0]}; did you mean 'scenarios'?)"
    return ""


def _check_scenario(raw: Any, at: At, path: Path, source: str, commands: ScenarioCommandRegistry,
                    file_config: dict[str, Any], file_seed: int | None) -> Scenario | None:
    SCENARIO.check(raw, at)
    if not isinstance(raw, LocatedMap):
        return None
    if isinstance(raw.get("config"), LocatedMap):
        _check_config(raw["config"], at.key(raw, "config"), base=file_config)
    setup = raw.get("setup")
    if isinstance(setup, LocatedMap):
        _check_setup(setup, at.key(raw, "setup"), path)
    steps: list[Step] = []
    raw_steps = raw.get("steps")
    if isinstance(raw_steps, LocatedList):
        steps_at = at.key(raw, "steps")
        labels: set[str] = set()
        for i, step in enumerate(raw_steps):
            checked = _check_step(step, steps_at.item(raw_steps, i), i, commands, labels)
            if checked is not None:
                steps.append(checked)
    if at.problems:
        return None
    props = tuple(_property_number(p) for p in raw.get("properties") or ())
    setup = setup or {}
    return Scenario(
        name=raw["name"], file=path, line=at.line, steps=tuple(steps), description=raw.get("description") or "",
        properties=props, config={**file_config, **(raw.get("config") or {})},
        migrations=_plain(setup.get("migrations")), data=_plain(setup.get("data") or {}),
        file_seed=file_seed, source=source)


def _check_step(step: Any, at: At, index: int, commands: ScenarioCommandRegistry, labels: set[str]) -> Step | None:
    if not isinstance(step, LocatedMap):
        at.problem("expected a step (a mapping with one of: command, fault, heal, expect), got "
                   + ("a list" if isinstance(step, list) else repr(step)))
        return None
    kinds = [k for k in ("command", "fault", "heal") if k in step]
    if len(kinds) > 1:
        at.key_itself(step, kinds[1]).problem(
            f"a step has exactly one of command, fault, heal; this one has {' and '.join(kinds)} "
            f"(split it into {len(kinds)} steps)")
        return None
    kind = kinds[0] if kinds else ("expect" if "expect" in step else None)
    if kind is None:
        near = [f"{k!r}{did_you_mean(k, STEP_TYPES)}" for k in step if did_you_mean(k, STEP_TYPES)]
        hint = f" (found {', '.join(near)})" if near else ""
        at.problem(f"a step needs one of the keys command, fault, heal or expect{hint}")
        return None
    before = len(at.problems)
    STEPS[kind].check(step, at)
    # Go on to the names even when the shape had problems: every mistake of a step is reported in one
    # run (`args: {sqll: ...}` together with `expect: {outcom: ...}`), as long as the name itself is text.
    named = isinstance(step.get(kind), str) and bool(step[kind].strip())
    if kind == "command" and named:
        _check_command(step, at, commands)
    elif kind == "fault" and named:
        _check_fault(step, at)
        labels.add(str(step.get("as") or step["fault"]))
    elif kind == "heal" and named:
        label = step["heal"]
        if label != "all" and label not in labels:
            known = sorted(labels)
            at.key(step, "heal").problem(
                f"no fault labelled {label!r} was injected before this step{did_you_mean(label, known)} "
                f"(injected so far: {', '.join(known) or 'none'}; or use `heal: all`)")
    if len(at.problems) > before:
        return None
    return Step(kind, index, at.line, _plain(step))


def _check_command(step: LocatedMap, at: At, commands: ScenarioCommandRegistry) -> None:
    spec = commands.get(step["command"])
    if spec is None:
        at.key(step, "command").problem(commands.unknown_message(step["command"]))
        return
    args = step.get("args")
    if args is None:
        args = LocatedMap(*step.value_at("args"))
    if not isinstance(args, dict):
        return  # the wrong type of `args:` itself was reported by the shape check
    for arg, message in spec.check_args(list(args)):
        if arg is not None and isinstance(args, LocatedMap):
            at.key(step, "args").key_itself(args, arg).problem(message)
        else:
            at.key(step, "args" if "args" in step else "command").problem(message)


def _check_fault(step: LocatedMap, at: At) -> None:
    name = step["fault"]
    if name not in fault_names():
        at.key(step, "fault").problem(unknown_name_message("fault", name, fault_names()))
        return
    declared, is_open = fault_params(get_fault_class(name))
    by_name = {p.name: p for p in declared if p.name not in _RESERVED_FAULT_PARAMS}
    accepted = tuple(by_name)
    params = step.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return  # reported by the shape check
    params_at = at.key(step, "params")
    before = len(at.problems)
    for key in params:
        if key in _RESERVED_FAULT_PARAMS:
            params_at.key_itself(params, key).problem(
                f"{key!r} is chosen by the scenario runner (the scenario's own database); remove it")
        elif key in by_name:
            # Values are checked now, at collection, against the fault's own annotations and choices:
            # `locked: {mode: writ}` fails before anything runs, not when the step is reached.
            wrong = by_name[key].accepts(params[key])
            if wrong is not None:
                value = params[key]
                shown = f" {value!r}" if isinstance(value, (str, int, float, bool, type(None))) else ""
                target = params_at.key(params, key) if isinstance(params, LocatedMap) else params_at
                target.problem(f"invalid value{shown} for parameter {key!r} of fault {name!r}: {wrong}")
        elif not is_open:
            params_at.key_itself(params, key).problem(
                f"unknown parameter {key!r} for fault {name!r}{did_you_mean(key, accepted)} "
                f"(accepted: {', '.join(accepted) or 'none'})")
    missing = [p.name for p in declared if p.required and p.name not in params]
    if missing:
        (params_at if "params" in step else at.key(step, "fault")).problem(
            f"fault {name!r} needs parameter(s) {', '.join(missing)} under `params:`")
    if len(at.problems) > before:
        return  # each value is wrong on its own: what they mean together is not worth judging yet
    # What the values mean together (a part needing a table, a parameter its mode ignores, a file that is
    # not there): checked now too, so the step does not fail only when the scenario reaches it.
    for key, message in value_problems(name, _plain(params)):
        if key is not None and isinstance(params, LocatedMap) and key in params:
            params_at.key(params, key).problem(message)
        else:
            (params_at if "params" in step else at.key(step, "fault")).problem(message)


def fault_parameters(name: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """``(accepted, required, open)`` parameter names of fault ``name``, its target excluded."""
    declared, is_open = fault_params(get_fault_class(name))
    named = [p for p in declared if p.name not in _RESERVED_FAULT_PARAMS]
    return tuple(p.name for p in named), tuple(p.name for p in named if p.required), is_open


def _check_config(config: LocatedMap, at: At, base: dict[str, Any] | None = None) -> None:
    from reliability.config import ConfigError, ReliabilityConfig

    known = [f.name for f in dataclasses.fields(ReliabilityConfig) if f.name not in _RESERVED_SETTINGS]
    good: dict[str, Any] = {}
    for key, value in config.items():
        if key in _RESERVED_SETTINGS:
            at.key_itself(config, key).problem(f"{key!r} is chosen by the scenario runner (a fresh database per "
                                               f"scenario); remove it")
        elif key not in known:
            at.key_itself(config, key).problem(f"unknown setting {key!r}{did_you_mean(key, known)} "
                                               f"(settings are ReliabilityConfig fields)")
        else:
            good[key] = value
    try:
        ReliabilityConfig(db_path="scenario.db", **{**(base or {}), **good})
    except ConfigError as exc:
        for key, value, reason in exc.problems:
            target = at.key(config, key) if key in config else at
            target.problem(f"invalid value {value!r} for setting {key!r}: {reason}")
    except TypeError as exc:  # pragma: no cover - a field rejected by the dataclass itself
        at.problem(f"invalid settings: {exc}")


def _check_setup(setup: LocatedMap, at: At, path: Path) -> None:
    migrations = setup.get("migrations")
    if isinstance(migrations, str) and migrations.strip():
        folder = (path.parent / migrations)
        if not folder.is_dir():
            at.key(setup, "migrations").problem(f"migrations folder {migrations!r} not found (looked for {folder})")
    elif isinstance(migrations, LocatedList):
        seen: dict[int, int] = {}
        for i, m in enumerate(migrations):
            if isinstance(m, LocatedMap) and isinstance(m.get("version"), int):
                v = m["version"]
                if v in seen:
                    at.key(setup, "migrations").item(migrations, i).problem(
                        f"duplicate migration version {v} (first on line {seen[v]})")
                seen[v] = migrations.item_at(i)[0]
    data = setup.get("data")
    if isinstance(data, LocatedMap):
        for table, rows in data.items():
            if isinstance(rows, LocatedMap) and isinstance(rows.get("columns"), LocatedMap):
                _check_providers(rows["columns"], at.key(setup, "data").key(data, table).key(rows, "columns"))


def _check_providers(columns: LocatedMap, at: At) -> None:
    names = {col: spec if isinstance(spec, str) else spec.get("provider")
             for col, spec in columns.items() if isinstance(spec, (str, dict))}
    names = {c: n for c, n in names.items() if isinstance(n, str)}
    if not names:
        return
    providers = faker_providers()
    for col, provider in names.items():
        if provider not in providers:
            at.key(columns, col).problem(f"unknown Faker provider {provider!r}{did_you_mean(provider, providers)} "
                                         f"(see https://faker.readthedocs.io/en/master/providers.html)")


_PROVIDERS: list[str] = []


def faker_providers() -> list[str]:
    """Names of the default Faker instance's providers (loaded once)."""
    if not _PROVIDERS:
        from faker import Faker

        fake = Faker()
        _PROVIDERS.extend(sorted(n for n in dir(fake) if not n.startswith("_") and
                                 n not in ("seed", "seed_instance", "seed_locale", "unique", "optional", "random",
                                           "locales", "weights", "factories", "items", "provider", "providers",
                                           "get_providers", "add_provider", "format", "parse",
                                           "set_arguments", "get_arguments", "del_arguments", "set_formatter",
                                           "get_formatter")))
    return _PROVIDERS


def _property_number(value: Any) -> int:
    if isinstance(value, int):
        return value
    for number, slug in PROPERTIES.items():
        if value in (slug, f"p{number:02d}_{slug}"):
            return number
    raise ValueError(value)  # pragma: no cover - the schema only lets known names through


def property_numbers(value: Any) -> tuple[int, ...]:
    """``6``, ``"transaction_atomicity"`` or a list of them → ``(6,)``."""
    values = value if isinstance(value, list) else [value]
    return tuple(_property_number(v) for v in values)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _short(value: Any, limit: int = 100) -> str:
    text = repr(_plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
