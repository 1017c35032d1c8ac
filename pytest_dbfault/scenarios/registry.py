"""The scenario command registry: name → ``fn(ctx, **args)``.

A *command* is what a ``command:`` step runs. dbfault ships built-ins (``sql``, ``backup``,
``set_flag``...; see :mod:`.commands`); an application adds its own, either directly::

    from pytest_dbfault.scenarios import register_command

    @register_command("place_order")
    def place_order(ctx, customer: str, total: float = 0.0):
        ctx.db.execute("INSERT INTO orders (customer, total) VALUES (?, ?)", (customer, total))

or from a ``conftest.py`` / plugin through the ``pytest_dbfault_register_commands`` hook::

    def pytest_dbfault_register_commands(register):
        register("place_order", place_order)

The first parameter receives the :class:`~.context.ScenarioContext`; the others are the
step's ``args``. Their names (and which have defaults) are how scenario files are checked
before anything runs: an unknown or missing argument is reported with its line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..faults.registry import unknown_name_message
from .errors import did_you_mean

CommandFn = Callable[..., Any]


class CommandRegistryError(ValueError):
    """A command could not be registered (bad name, not callable, or the name is taken)."""


@dataclass(frozen=True)
class CommandSpec:
    """A registered command and what its signature accepts."""

    name: str
    fn: CommandFn
    help: str
    #: Argument names accepted (the context parameter excluded), in signature order.
    params: tuple[str, ...]
    #: Arguments without a default.
    required: tuple[str, ...]
    #: True when the function takes ``**kwargs``: any argument name is accepted.
    open: bool

    def check_args(self, given: Iterable[str]) -> list[tuple[str | None, str]]:
        """Problems with argument names ``given``: ``[(arg or None, message)]``."""
        given = list(given)
        problems: list[tuple[str | None, str]] = []
        if not self.open:
            for name in given:
                if name not in self.params:
                    accepted = ", ".join(self.params) or "none"
                    problems.append((name, f"unknown argument {name!r} for command {self.name!r}"
                                           f"{did_you_mean(name, self.params)} (accepted: {accepted})"))
        missing = [p for p in self.required if p not in given]
        if missing:
            problems.append((None, f"command {self.name!r} needs argument(s) {', '.join(missing)} under `args:`"))
        return problems


class ScenarioCommandRegistry:
    """Commands by name. :meth:`copy` gives a registry that can grow without changing this one."""

    def __init__(self, commands: dict[str, CommandSpec] | None = None) -> None:
        self._commands: dict[str, CommandSpec] = dict(commands or {})

    def register(self, name: str, fn: CommandFn | None = None, *, help: str | None = None,
                 replace: bool = False) -> Any:
        """Register ``fn(ctx, **args)`` as command ``name``; without ``fn`` it is a decorator.

        Registering the same function again under the same name replaces it; another function
        under a taken name raises :class:`CommandRegistryError` unless ``replace=True``.
        """
        if fn is None:
            def decorate(func: CommandFn) -> CommandFn:
                self.register(name, func, help=help, replace=replace)
                return func
            return decorate
        spec = describe_command(name, fn, help)
        current = self._commands.get(name)
        # The same function again (or its re-imported copy: same module and name) is not a conflict.
        if current is not None and _qualname(current.fn) != _qualname(fn) and not replace:
            raise CommandRegistryError(
                f"scenario command {name!r} is already registered by {_qualname(current.fn)}; "
                f"pick another name or pass replace=True")
        self._commands[name] = spec
        return fn

    def get(self, name: str) -> CommandSpec | None:
        """The command called ``name``, or None."""
        return self._commands.get(name)

    def names(self) -> list[str]:
        """Every command name, sorted."""
        return sorted(self._commands)

    def unknown_message(self, name: str) -> str:
        """``unknown command 'bakup'; did you mean 'backup'? (known: ...)``."""
        return unknown_name_message("command", name, self._commands)

    def copy(self) -> ScenarioCommandRegistry:
        """An independent registry holding the same commands."""
        return ScenarioCommandRegistry(self._commands)

    def __contains__(self, name: object) -> bool:
        return name in self._commands


def describe_command(name: str, fn: CommandFn, help: str | None = None) -> CommandSpec:
    """Check ``name`` and ``fn`` and read the arguments ``fn`` accepts."""
    if not isinstance(name, str) or not name.isidentifier():
        raise CommandRegistryError(f"a scenario command name must be a word such as 'place_order', got {name!r}")
    if not callable(fn):
        raise CommandRegistryError(f"scenario command {name!r}: {fn!r} is not callable; register a function "
                                   f"taking (ctx, **args)")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise CommandRegistryError(f"scenario command {name!r}: cannot read the signature of {fn!r} ({exc})") from None
    parameters = list(sig.parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        raise CommandRegistryError(f"scenario command {name!r}: {_qualname(fn)} must take the scenario context "
                                   f"as its first parameter, e.g. def {name}(ctx, ...)")
    rest = parameters[1:] if positional and parameters[0] is positional[0] else parameters
    params = tuple(p.name for p in rest if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    required = tuple(p.name for p in rest
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty)
    is_open = any(p.kind is p.VAR_KEYWORD for p in rest)
    text = help if help is not None else (inspect.getdoc(fn) or "").split("\n")[0]
    return CommandSpec(name, fn, text, params, required, is_open)


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


#: The process-wide registry: dbfault's built-ins plus what :func:`register_command` adds.
COMMANDS = ScenarioCommandRegistry()


def register_command(name: str, fn: CommandFn | None = None, *, help: str | None = None,
                     replace: bool = False) -> Any:
    """Register a scenario command process-wide (see the module docstring); decorator without ``fn``."""
    return COMMANDS.register(name, fn, help=help, replace=replace)


def command_names() -> list[str]:
    """Every command known process-wide (built-ins included), sorted."""
    _load_builtins()
    return COMMANDS.names()


def default_registry() -> ScenarioCommandRegistry:
    """A copy of the process-wide registry with the built-ins loaded, for one scenario file."""
    _load_builtins()
    return COMMANDS.copy()


_builtins_loaded = False


def _load_builtins() -> None:
    # Registered on first use, not on import: the commands module loads the runtime's pieces it needs.
    global _builtins_loaded
    if not _builtins_loaded:
        from .commands import BUILTINS

        for name, fn in BUILTINS.items():
            COMMANDS.register(name, fn)
        _builtins_loaded = True
