"""The config machine's sweep of every setting and of the watcher's state (rule ``reload_sweep``): each of its
checks fails against a runtime with one realistic defect in hot reload, and passes on the runtime.

Two kinds of test: the machine's own derandomized search (``run_machine``) for the defects any sweep meets, and the
rule called with a chosen sequence of edits (``bites``) for the ones only some settings show."""

from __future__ import annotations

import dataclasses
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from bite_settings import bite_settings, run_streams

import reliability.config as config_module
from pytest_dbfault.machines import MACHINES, bind, run_machine
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.stats import property_id
from reliability import ConfigError, ReliabilityConfig
from reliability import reload as reload_module
from reliability.reload import ConfigWatcher

BITE = bite_settings(max_examples=30, steps=15)
P16 = property_id(16)


# -- the machine's own search ---------------------------------------------------------------------------------------
def test_it_bites_a_watcher_that_clears_last_error_only_when_something_changed(tmp_path, monkeypatch):
    # "last_error is cleared by a reload": a fixed file that puts back what was in force changes nothing, so the
    # rejection of the bad version it replaced is still reported.
    real = ConfigWatcher.check_now

    def check_now(self, *, force=False):
        error = self.last_error
        changed = real(self, force=force)
        if not changed:
            self.last_error = error
        return changed

    monkeypatch.setattr(ConfigWatcher, "check_now", check_now)
    with pytest.raises(AssertionError, match=rf"{P16}.*(last_error is still ConfigError|last_error ConfigError)"):
        run_streams(MACHINES["config"], settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_it_bites_a_rejection_that_names_only_the_first_invalid_key(tmp_path, monkeypatch):
    # "Fail fast": the loader stops at the first problem, so an operator fixes one key per reload.
    real = ReliabilityConfig.from_mapping.__func__

    def from_mapping(cls, values, source="", **overrides):
        try:
            return real(cls, values, source, **overrides)
        except ConfigError as exc:
            raise ConfigError(exc.problems[:1], exc.source) from None

    monkeypatch.setattr(ReliabilityConfig, "from_mapping", classmethod(from_mapping))
    with pytest.raises(AssertionError, match=rf"{P16}.*an invalid file .*: it names \["):
        run_streams(MACHINES["config"], settings_=BITE, base_dir=str(tmp_path), enforce={16})


def test_the_same_search_passes_on_the_runtime(tmp_path):
    run_machine(MACHINES["config"], settings_=BITE, base_dir=str(tmp_path), enforce={16})


# -- the rule with chosen edits -------------------------------------------------------------------------------------
def edits(*steps: tuple[str, str, int]) -> list[tuple[list[tuple[str, str, int, str]], str, bool]]:
    """``reload_sweep``'s argument: one edit a step, unquoted, checked with ``check_now(force=False)``."""
    return [([(key, action, pick, "")], "", False) for key, action, pick in steps]


def sweep_found(base: Path, steps: list[tuple[list[tuple[str, str, int, str]], str, bool]]) -> str:
    """The first line of the violation ``reload_sweep(steps)`` raises on a fresh config machine ('' when none)."""
    base.mkdir(parents=True, exist_ok=True)
    machine = bind(MACHINES["config"], None, base_dir=str(base))()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset({"fault:locked"}))
    try:
        machine.reload_sweep(steps)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


def unmasked_describe(config: ReliabilityConfig) -> dict[str, Any]:
    # A secret added later (the retired keys) that the masking never learned about.
    data = dataclasses.asdict(config)
    if data["audit_hmac_key"]:
        data["audit_hmac_key"] = "***"
    return data


def defaults_for_absent_keys(self: ConfigWatcher) -> ReliabilityConfig:
    # "What the file says": settings absent from it fall back to the library's defaults, not the manager's own
    # (only where the database is and which SQLite: "those are read at start anyway").
    values = dict(config_module.read_env_file(self.path))
    values.update({k: v for k, v in os.environ.items() if k.startswith(config_module.ENV_PREFIX)})
    return ReliabilityConfig.from_mapping(values, source=str(self.path), db_path=self.base.db_path,
                                          sqlite_module=self.base.sqlite_module)


def told_of_every_check(real: Any) -> Any:
    def check_now(self: ConfigWatcher, *, force: bool = False) -> tuple[str, ...]:
        changed = real(self, force=force)
        if not changed:  # "a check ran": subscribers told with nothing changed
            for listener in self.listeners:
                listener(self.db.config, self.db.config, changed)
        return changed

    return check_now


real_stat = ConfigWatcher._stat

#: case -> (what to patch, its name, the defect; the edits; what the violation says)
CASES: dict[str, tuple[Any, str, Any, list[Any], str]] = {
    # describe() shows a retired audit key in clear
    "describe_unmasked": (reload_module, "describe", unmasked_describe,
                          edits(("audit_previous_keys", "good", 1)), r"describe\(\) shows \[\('audit_previous_keys'"),
    # a setting absent from the file goes back to the library default (busy_timeout_ms 5000, not the machine's 0)
    "absent_is_default": (ConfigWatcher, "load", defaults_for_absent_keys,
                          edits(("retry_attempts", "good", 1)), r"busy_timeout_ms=5000 in force, the base gives 0"),
    # subscribers told of a check that changed nothing
    "told_of_nothing": (ConfigWatcher, "check_now", told_of_every_check(ConfigWatcher.check_now),
                        edits(("auto_recover", "good", 4), ("auto_recover", "good", 4)),
                        r"subscribers were told \[\(\(\)"),
    # the retry budget not handed to the policy by a reload
    "budget_not_followed": (reload_module, "_RETRY_KEYS",
                            {k: v for k, v in reload_module._RETRY_KEYS.items() if k != "retry_budget"},
                            edits(("retry_budget", "good", 2)), r"the retry policy's budget is 5.0, retry_budget=60.0"),
    # busy_timeout_ms put in the config without reopening the connection
    "timeout_keeps_connection": (reload_module, "RECONNECT_KEYS", reload_module.RECONNECT_KEYS - {"busy_timeout_ms"},
                                 edits(("busy_timeout_ms", "good", 1)), r"PRAGMA busy_timeout=0, expected 40"),
    # a restart-only setting (where the audit fallback lives) switched under the running manager
    "fallback_path_live": (reload_module, "RESTART_KEYS", reload_module.RESTART_KEYS - {"audit_fallback_path"},
                           edits(("audit_fallback_path", "good", 0)), r"audit_fallback_path='.*' in force, expected"),
    # a misspelt name reported without the setting it most likely means
    "typo_unexplained": (config_module, "_unknown_reason", lambda name, prefix="": "unknown setting",
                         edits(("retry_attempts", "typo", 0)),
                         r"RELIABILITY_RETRY_ATEMPTS is not said to be likely RELIABILITY_RETRY_ATTEMPTS"),
    # a file missing for a moment (an editor's atomic save) read as an empty one: every setting back to the base
    "missing_is_empty": (ConfigWatcher, "_stat", lambda self: real_stat(self) or (0, 0, 0),
                         [*edits(("retry_attempts", "good", 1)), ([], "missing", True)],
                         r"with no file check_now\(\) returned \('retry_attempts',\)"),
    # the rejection of a bad version still reported after a valid one was applied
    "error_kept": (ConfigWatcher, "check_now", None,
                   edits(("backup_keep", "bad", 0), ("backup_keep", "good", 1)), r"last_error is still ConfigError"),
}


def keeps_last_error(real: Any) -> Any:
    def check_now(self: ConfigWatcher, *, force: bool = False) -> tuple[str, ...]:
        error = self.last_error
        changed = real(self, force=force)
        self.last_error = self.last_error or error  # "set on a rejection", never cleared
        return changed

    return check_now


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_sweep_bites(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, name, defect, steps, message = CASES[case]
    if defect is None:
        defect = keeps_last_error(ConfigWatcher.check_now)
    with monkeypatch.context() as patch:
        patch.setattr(target, name, defect)
        found = sweep_found(tmp_path / "broken", steps)
    assert found.startswith(P16) and re.search(message, found), found
    assert sweep_found(tmp_path / "real", steps) == ""
