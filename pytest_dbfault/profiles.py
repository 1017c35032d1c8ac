"""Which Hypothesis profile the property machines run with, and why (shown in the header and the report).

The machines have their own profiles, ``dbfault`` (fast) and ``dbfault-ci`` (longer), registered by
:mod:`pytest_dbfault.machines`. The choice follows Hypothesis' own ways of choosing a profile, first
match wins:

1. ``--hypothesis-profile NAME`` (Hypothesis' pytest option);
2. the ``HYPOTHESIS_PROFILE`` environment variable (what this project's CI and tests use);
3. a profile loaded in code (``settings.load_profile(NAME)`` in a ``conftest.py``), when it is neither
   ``default`` nor ``ci`` (those two Hypothesis loads by itself);
4. being on CI: ``CI`` read as a boolean (``CI=false`` and ``CI=0`` are not CI; any other non-empty value
   is), or one of the vendor variables Hypothesis knows (``GITHUB_ACTIONS=true``...).

Hypothesis' generic ``default`` and ``ci`` map onto ``dbfault`` and ``dbfault-ci`` (the machines need
their step counts and no deadline); any other registered name is used as it is. Plain Python::

    choose_profile(cli=None, env={"CI": "false"}, loaded="ci")  # -> ("dbfault", "not on CI (CI=false)")

How long a failing machine may shrink also follows the profile (:func:`shrink_seconds`): a found bug
must end the run with its shrunk example within two minutes (issue #14), and Hypothesis on its own
shrinks for up to five minutes per failing test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

FAST = "dbfault"
CI = "dbfault-ci"
#: Hypothesis' own profile names and the machine profile each stands for.
ALIASES = {"default": FAST, "ci": CI, FAST: FAST, CI: CI}
#: Vendor CI variables (name -> value required, None: any), as Hypothesis' ``is_in_ci`` reads them.
VENDOR_CI = {"TF_BUILD": "true", "BUILDKITE": "true", "CIRCLECI": "true", "CIRRUS_CI": "true",
             "CODEBUILD_BUILD_ID": None, "GITHUB_ACTIONS": "true", "GITLAB_CI": None,
             "HEROKU_TEST_RUN_ID": None, "TEAMCITY_VERSION": None}
_FALSE = frozenset({"", "0", "false", "no", "off"})


#: Seconds of shrinking per profile: (one failing machine, every failing machine of the process together).
#: The default run's goal is 60 s with no bug, so with one it would end within 60 + 50 s plus the replays of
#: the examples; the CI profile (a run of up to 5 min) gets more for a smaller example. Measured
#: (benchmarks/README.md): under these bounds three planted bugs ended with examples of one or two steps.
SHRINK_SECONDS: dict[str, tuple[float, float]] = {FAST: (40.0, 50.0), CI: (60.0, 90.0)}
#: A failing machine shrinks at least this long, whatever is left of the budget (a replayable example,
#: partly shrunk, is always reported: Hypothesis prints the best example found when it stops). Short: one
#: bug often fails many machines (a planted P9 bug failed 13 in one run), and each later one would add
#: its floor; ``pytest --dbfault -k <machine>`` reruns one machine with the whole budget.
SHRINK_FLOOR = 2.0
#: Environment variable: seconds each failing machine may shrink (no total cap), e.g. 300 for Hypothesis'
#: own limit when a minimal example matters more than a quick verdict.
SHRINK_ENV = "DBFAULT_SHRINK_SECONDS"


class ProfileError(ValueError):
    """The chosen profile was never registered."""


def on_ci(env: Mapping[str, str]) -> str | None:
    """Why this is a CI run (``"CI=true"``), or ``None``: ``CI`` is read as a boolean."""
    ci = env.get("CI")
    if ci is not None and ci.strip().lower() not in _FALSE:
        return f"CI={ci}"
    for name, value in VENDOR_CI.items():
        if name in env and (value is None or env[name] == value):
            return f"{name}={env[name]}"
    return None


def choose_profile(cli: str | None, env: Mapping[str, str], loaded: str | None = None) -> tuple[str, str]:
    """The machines' profile name and where the choice came from.

    :param cli: the ``--hypothesis-profile`` value, or ``None``.
    :param env: the environment (``HYPOTHESIS_PROFILE``, ``CI``, vendor variables).
    :param loaded: the profile Hypothesis has loaded (``settings.get_current_profile_name()``).
    """
    if cli:
        return ALIASES.get(cli, cli), f"--hypothesis-profile={cli}"
    chosen = env.get("HYPOTHESIS_PROFILE", "").strip()
    if chosen:
        return ALIASES.get(chosen, chosen), f"HYPOTHESIS_PROFILE={chosen}"
    if loaded and loaded not in ("default", "ci"):
        return loaded, f"loaded by settings.load_profile({loaded!r})"
    why = on_ci(env)
    if why:
        return CI, f"on CI ({why})"
    ci = env.get("CI")
    return FAST, f"not on CI (CI={ci})" if ci is not None else "default"


def positive_seconds(name: str, raw: str, also: str = "") -> float:
    """``raw``, the value of the environment variable ``name``, as a positive finite number of seconds, or
    :class:`ProfileError` (a ``ValueError``) naming the variable; ``also`` names the other values it accepts."""
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):  # (NaN fails both comparisons)
        raise ProfileError(f"{name}={raw!r}: expected a positive number of seconds{also}")
    return value


def shrink_seconds(profile: str, spent: float, env: Mapping[str, str]) -> float:
    """Seconds the next failing machine may shrink under ``profile``, ``spent`` seconds already used.

    ``DBFAULT_SHRINK_SECONDS`` (see :data:`SHRINK_ENV`) overrides the per-machine figure and lifts the
    total cap; a profile of another name gets the default profile's bounds::

        shrink_seconds("dbfault", 0.0, {})    # -> 40.0
        shrink_seconds("dbfault", 30.0, {})   # -> 20.0 (50 s for the whole run)
        shrink_seconds("dbfault", 80.0, {})   # -> 2.0  (the floor)
    """
    raw = env.get(SHRINK_ENV, "").strip()
    if raw:
        return positive_seconds(SHRINK_ENV, raw)
    one, total = SHRINK_SECONDS.get(profile, SHRINK_SECONDS[FAST])
    return max(SHRINK_FLOOR, min(one, total - spent))


def current_profile(cli: str | None = None, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """:func:`choose_profile` for this process: Hypothesis' loaded profile and registered names."""
    from hypothesis import settings

    loaded = settings.get_current_profile_name() if hasattr(settings, "get_current_profile_name") else None
    return choose_profile(cli, os.environ if env is None else env, loaded)


def load(name: str) -> object:
    """The registered ``hypothesis.settings`` profile ``name``; :class:`ProfileError` naming the known ones."""
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        return settings.get_profile(name)
    except InvalidArgument:
        known = ", ".join(sorted(getattr(settings, "_profiles", {})))
        raise ProfileError(f"Hypothesis profile {name!r} is not registered; known: {known}") from None
