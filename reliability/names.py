"""Names that come from users (actors, flag names): limits, validation, and safe display.

Example::

    from reliability.names import validate_actor, printable

    validate_actor("alice")            # None: valid
    validate_actor("x" * 10_000)       # "An actor name may have at most 200 characters; ..."
    printable("eve\\n1.0 admin flag.set")   # 'eve\\\\n1.0 admin flag.set' - one line, no forged entry

Every entry point (the admin API, the command registry, the CLI, scenarios) validates
with these functions, so the same limits hold everywhere. Names may contain any
printable text; control characters are kept as given but :func:`printable` escapes them
wherever a name is shown on one line (CLI output, text logs), so a newline in a name
can never forge a line.
"""

from __future__ import annotations

import re
from typing import Any

#: Longest actor name accepted (characters).
MAX_ACTOR = 200
#: Longest flag name accepted (characters).
MAX_FLAG_NAME = 200

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators a terminal or log viewer may
# break a line on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def text_problem(what: str, value: Any, limit: int | None = None) -> str | None:
    """A message saying what is wrong with text ``value`` (named ``what``), or None when it is valid.

    Refuses non-text, empty text, text longer than ``limit``, NUL characters and lone surrogates
    (which cannot be stored as UTF-8: Python lets them into a str, SQLite and JSON files cannot take them).
    """
    if not isinstance(value, str):
        return f"{what} must be text, not {type(value).__name__}."
    if not value.strip():
        return f"{what} must not be empty."
    if limit is not None and len(value) > limit:
        return f"{what} may have at most {limit} characters; this one has {len(value)}."
    if "\x00" in value:
        return f"{what} must not contain NUL characters."
    return surrogate_problem(what, value)


def surrogate_problem(what: str, value: str) -> str | None:
    """A message when ``value`` holds a lone surrogate (invalid Unicode, e.g. from undecodable bytes)."""
    match = _SURROGATE.search(value)
    if match is None:
        return None
    return (f"{what} contains an invalid character (lone surrogate U+{ord(match.group()):04X} at position "
            f"{match.start()}): it is not valid Unicode text and cannot be stored.")


def validate_actor(actor: Any) -> str | None:
    """A message saying what is wrong with actor name ``actor``, or None when it is valid."""
    return text_problem("An actor name", actor, MAX_ACTOR)


def validate_flag_name(name: Any) -> str | None:
    """A message saying what is wrong with flag name ``name``, or None when it is valid."""
    return text_problem("A flag name", name, MAX_FLAG_NAME)


def printable(text: Any) -> str:
    """``text`` on one line: control characters escaped (``\\n``, ``\\x1b``, ``\\u2028``), backslashes doubled.

    Use it wherever a user-supplied name is printed or logged as text; JSON output does not
    need it (JSON escapes controls itself).
    """
    s = str(text)
    if not _CONTROL.search(s) and "\\" not in s and not _SURROGATE.search(s):
        return s
    s = s.replace("\\", "\\\\")
    return _SURROGATE.sub(_escape_one, _CONTROL.sub(_escape_one, s))


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
