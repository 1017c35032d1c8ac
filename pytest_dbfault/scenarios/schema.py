"""The scenario file format, written once, checked from here and exported as JSON Schema.

``docs/scenarios.md`` is the reference for humans; ``pytest_dbfault/scenario.schema.json`` is
:func:`json_schema` written to disk for editors (a test keeps the two in step). Names that
only the registries know (commands, faults, their arguments) are checked in :mod:`.parse`.
"""

from __future__ import annotations

from typing import Any

from reliability.errors import ErrorKind

from ..stats import PROPERTIES
from .spec import Anything, Bool, Choice, Either, Field, Int, ListOf, MapOf, Obj, Spec, Str

#: Error kinds a command step may expect: the runtime's own list, so a new kind is accepted at once.
ERROR_KINDS: tuple[str, ...] = tuple(kind.value for kind in ErrorKind)
#: Outcomes a command step may expect besides an error kind.
OUTCOMES = ("ok", "queued", "error", "rejected")
#: Fault constructor parameters a scenario may not set: the runner chooses the target.
RESERVED_FAULT_PARAMS = ("target", "path", "allow_unsafe")
#: The step types; a step has exactly one of these keys (a step with only ``expect`` is a check).
STEP_TYPES = ("command", "fault", "heal", "expect")
HEALTH_STATUSES = ("healthy", "degraded", "unavailable")

PROPERTY_NAMES = tuple(PROPERTIES.values())
PROPERTY = Either((Int(label="a property number (1-17)", minimum=1, maximum=len(PROPERTIES)),
                   Choice(PROPERTY_NAMES + tuple(f"p{n:02d}_{s}" for n, s in PROPERTIES.items()),
                          label="a property name such as transaction_atomicity")),
                  label="a property number (1-17) or name")

OUTCOME_WORD = Choice(OUTCOMES + ERROR_KINDS, label="ok, queued, error, rejected or an error kind")

COMMAND_EXPECT = Either((
    OUTCOME_WORD,
    Obj({
        "outcome": Field(OUTCOME_WORD, "ok, queued, error, rejected, or an error kind such as busy"),
        "error": Field(Choice(("any",) + ERROR_KINDS, label="an error kind such as busy, or any"),
                       "the command must fail with this error kind (any: with any error)"),
        "message": Field(Str(label="a regular expression"),
                         "a regular expression searched in the user message of the outcome"),
        "result": Field(Anything(), "the value the command must return (compared after JSON-like normalisation)"),
    }, label="a mapping of outcome/error/message/result"),
), label="ok, queued, error, rejected, an error kind, or a mapping")

QUERY = Obj({
    "sql": Field(Str(label="an SQL statement"), "the query to run", required=True),
    "params": Field(Either((ListOf(), MapOf())), "its parameters", default=[]),
    "result": Field(Anything(), "expected rows as lists, or one value for a one-column one-row answer",
                    required=True),
}, label="a query mapping (sql, params, result)")

CHECKS = Obj({
    "rows": Field(MapOf(Int(minimum=0), key_label="a table name", label="a mapping of table names to row counts"),
                  "exact row count per table"),
    "query": Field(Either((QUERY, ListOf(QUERY, min_items=1))), "queries and the rows they must return"),
    "flag": Field(Obj({"name": Field(Str(), "the flag", required=True),
                       "value": Field(Anything(), "its expected value (null: unset)", required=True)},
                      label="a flag mapping (name, value)"), "a feature flag's current value"),
    "audit": Field(Obj({"actor": Field(Str(), "only entries by this actor"),
                        "action": Field(Str(), "only entries with this action"),
                        "target": Field(Str(allow_empty=True), "only entries about this target"),
                        "count": Field(Int(minimum=0), "exact number of matching entries (default: at least one)"),
                        "verified": Field(Bool(), "the hash chain verifies (true) or is broken (false)")},
                       label="an audit mapping"), "entries in the audit log"),
    "integrity": Field(Choice(("ok", "failed")), "PRAGMA integrity_check result"),
    "health": Field(Choice(HEALTH_STATUSES), "the runtime's health status"),
    "backup": Field(Choice(("exists", "none")), "whether at least one backup exists"),
    "queue": Field(Either((Choice(("empty",)), Int(minimum=0))), "write queue: empty, or its exact length"),
    "version": Field(Int(minimum=0), "the schema version reached by migrations"),
    "schema": Field(Choice(("valid", "invalid")), "validate_schema() against the scenario's migrations"),
    "property": Field(Either((PROPERTY, ListOf(PROPERTY, min_items=1))),
                      "property invariants that must hold now (each also counted in the report)"),
}, label="a mapping of checks")

MIGRATION = Obj({
    "version": Field(Int(minimum=1), "migration version, unique and increasing", required=True),
    "name": Field(Str(), "a short name", required=True),
    "up": Field(Str(label="SQL text"), "the SQL applying the change", required=True),
    "down": Field(Str(label="SQL text"), "the SQL undoing it"),
}, label="a migration mapping (version, name, up, down)")

MIGRATIONS = Either((ListOf(MIGRATION), Str(label="a folder of .sql migrations")),
                    label="a list of migrations or a folder path")

GENERATED = Obj({
    "generate": Field(Int(minimum=0), "how many rows Faker generates", required=True),
    "columns": Field(MapOf(Either((Str(label="a Faker provider name"),
                                   Obj({"provider": Field(Str(), "a Faker provider such as email", required=True),
                                        "args": Field(MapOf(), "keyword arguments for the provider", default={}),
                                        "unique": Field(Bool(), "values never repeat", default=False)},
                                       label="a provider mapping"),
                                   Obj({"value": Field(Anything(), "the same value in every row", required=True)},
                                       label="a constant mapping (value)"))),
                           key_label="a column name"),
                     "column → Faker provider", required=True),
    "locale": Field(Str(), "Faker locale", default="en_US"),
}, label="a generator mapping (generate, columns)")

SETUP = Obj({
    "migrations": Field(MIGRATIONS, "migrations applied before the steps (a folder is relative to the file)"),
    "data": Field(MapOf(Either((ListOf(MapOf(key_label="a column name")), GENERATED),
                               label="a list of rows or a generator"), key_label="a table name"),
                  "rows inserted after the migrations, per table: literal rows or generated by Faker"),
}, label="a setup mapping (migrations, data)")


def _step(kind_key: str, kind_spec: Spec, doc: str, **extra: Field) -> Obj:
    return Obj({kind_key: Field(kind_spec, doc, required=True),
                "description": Field(Str(), "what this step is for (shown in failure reports)"), **extra},
               label=f"a {kind_key} step")


STEPS: dict[str, Obj] = {
    "command": _step("command", Str(label="a command name"), "the registered command to run",
                     args=Field(MapOf(key_label="an argument name"), "the command's arguments", default={}),
                     expect=Field(COMMAND_EXPECT, "what the command must do", default="ok")),
    "fault": _step("fault", Str(label="a fault name"), "the registered fault to inject",
                   params=Field(MapOf(key_label="a parameter name"), "the fault's parameters", default={}),
                   **{"as": Field(Str(), "a label for heal (default: the fault name)")}),
    "heal": _step("heal", Str(label="a fault label"), "the label (or name) of an injected fault, or all"),
    "expect": _step("expect", CHECKS, "checks on the state of the database"),
}

SCENARIO = Obj({
    "name": Field(Str(), "the test id; unique in the file", required=True),
    "description": Field(Str(), "what the scenario shows"),
    "properties": Field(ListOf(PROPERTY, min_items=1),
                        "properties this scenario demonstrates; each passing expect step counts a check"),
    "config": Field(MapOf(key_label="a setting name"), "ReliabilityConfig overrides for this scenario", default={}),
    "setup": Field(SETUP, "migrations and data prepared before the steps", default={}),
    "steps": Field(ListOf(Anything(label="a step"), min_items=1), "the ordered steps", required=True),
}, label="a scenario mapping")

FILE = Obj({
    "description": Field(Str(), "what the file covers"),
    "seed": Field(Int(minimum=0, maximum=2**32 - 1), "seed of this file's scenarios; it beats --dbfault-seed"),
    "config": Field(MapOf(key_label="a setting name"), "ReliabilityConfig overrides for every scenario", default={}),
    "scenarios": Field(ListOf(Anything(label="a scenario"), min_items=1), "the scenarios", required=True),
}, label="a mapping with a `scenarios:` list")


def _shipped(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).startswith("pytest_dbfault.")


def json_schema(*, plugins: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``*.dbfault.yaml`` file.

    Built from the definitions the parser checks with: the shapes above, the registered fault
    names and each fault's parameters (:func:`~pytest_dbfault.faults.catalog.fault_params`), and the
    registered command names and their arguments. By default only what dbfault ships (the file in
    the package); ``plugins=True`` adds every fault and command registered in this process, for a
    project that generates its own schema after loading its plugins.
    """
    from ..faults.catalog import fault_params
    from ..faults.registry import fault_names, get_fault_class
    from .registry import ScenarioCommandRegistry, default_registry

    commands = default_registry()
    if not plugins:
        commands = ScenarioCommandRegistry({n: commands.get(n) for n in commands.names()  # type: ignore[misc]
                                    if _shipped(commands.get(n).fn)})  # type: ignore[union-attr]
    steps = {k: STEPS[k].json() for k in STEP_TYPES}

    names = [n for n in fault_names() if plugins or _shipped(get_fault_class(n))]
    fault_rules = []
    for name in names:
        declared, is_open = fault_params(get_fault_class(name))
        props = {p.name: p.json() for p in declared if p.name not in RESERVED_FAULT_PARAMS}
        params: dict[str, Any] = {"type": "object", "properties": props}
        if not is_open:
            params["additionalProperties"] = False
        required = [p.name for p in declared if p.required and p.name not in RESERVED_FAULT_PARAMS]
        then: dict[str, Any] = {"properties": {"params": params}}
        if required:
            then["required"] = ["params"]
            params["required"] = required
        fault_rules.append({"if": {"properties": {"fault": {"const": name}}, "required": ["fault"]}, "then": then})
    fault_step = steps["fault"]
    fault_step["properties"]["fault"] = {**fault_step["properties"]["fault"], "enum": names}
    fault_step["allOf"] = fault_rules

    command_rules = []
    for name in commands.names():
        spec = commands.get(name)
        assert spec is not None
        args: dict[str, Any] = {"type": "object", "properties": {a: {} for a in spec.params}}
        if not spec.open:
            args["additionalProperties"] = False
        then = {"properties": {"args": args}}
        if spec.required:
            args["required"] = list(spec.required)
            then["required"] = ["args"]
        command_rules.append({"if": {"properties": {"command": {"const": name}}, "required": ["command"]},
                              "then": then})
    command_step = steps["command"]
    command_step["properties"]["command"] = {**command_step["properties"]["command"], "enum": commands.names()}
    command_step["allOf"] = command_rules

    scenario = SCENARIO.json()
    scenario["properties"]["steps"] = {"type": "array", "minItems": 1,
                                       "items": {"anyOf": [steps[k] for k in STEP_TYPES]},
                                       "description": SCENARIO.fields["steps"].doc}
    top = FILE.json()
    top["properties"]["scenarios"] = {"type": "array", "minItems": 1, "items": scenario,
                                      "description": FILE.fields["scenarios"].doc}
    # `x-...` keys hold YAML anchors shared by scenarios; the parser ignores them (docs/scenarios.md).
    top["patternProperties"] = {"^x-": {"description": "ignored: a place for YAML anchors"}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://dbfault.invalid/scenario.schema.json",
            "title": "dbfault scenario file (*.dbfault.yaml)", **top}


def main() -> None:
    """``python -m pytest_dbfault.scenarios.schema``: print the schema (regenerates the shipped file)."""
    import json

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()


__all__ = ["CHECKS", "COMMAND_EXPECT", "ERROR_KINDS", "FILE", "OUTCOMES", "SCENARIO", "SETUP", "STEPS",
           "STEP_TYPES", "json_schema"]
