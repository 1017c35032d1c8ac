"""The options table (``pytest_dbfault.options.OPTIONS``): every ``--dbfault*`` flag is declared there once,
documented, and checked by its ``type=`` with a usage error naming the flag."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_dbfault.options import OPTIONS, OptionError, resolve_options

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugin.md"

#: A bad value for each option that takes one; a new option must add its own here.
BAD_VALUES = {
    "faults": ",",
    "seed": "soon",
    "report": ".",
    "allow_root": " ",
    "chaos_rate": "often",
    "chaos_faults": "lockd",
    "chaos_timeout": "-1",
    "coverage_root": " ",
    "coverage_fail_under": "lots",
}
CHECKED = [o for o in OPTIONS.values() if o.cli is not None and o.check is not None and o.action != "flag"]


def _flags_in_help(text: str) -> set[str]:
    return set(re.findall(r"(--(?:no-)?dbfault[\w-]*)", text))


def test_every_dbfault_flag_pytest_knows_is_declared_in_the_table(pytester: pytest.Pytester) -> None:
    shown = _flags_in_help(pytester.runpytest("--help").stdout.str())
    declared = {o.cli for o in OPTIONS.values() if o.cli and not o.hidden} \
        | {o.negation[0] for o in OPTIONS.values() if o.negation}
    assert shown == declared


def test_every_flag_variable_and_ini_key_of_the_table_is_documented() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    missing = sorted(name for o in OPTIONS.values() if not o.hidden
                     for name in (o.cli, o.env, o.ini, o.negation[0] if o.negation else None)
                     if name and f"`{name}" not in doc)
    assert not missing, f"docs/plugin.md does not list: {missing}"


def test_every_option_that_takes_a_value_has_a_bad_value_here() -> None:
    assert {o.key for o in CHECKED} == set(BAD_VALUES)


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_a_bad_value_on_the_command_line_is_a_usage_error_naming_the_flag(pytester: pytest.Pytester, key: str) -> None:
    option = OPTIONS[key]
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest(f"{option.cli}={BAD_VALUES[key]}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # Exactly one line, starting with the flag: not argparse's usage block, not a traceback.
    result.stderr.fnmatch_lines([f"ERROR: {option.cli}: *{BAD_VALUES[key].strip()}*"])
    assert "usage:" not in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_a_bad_chaos_setting_in_the_environment_is_refused_even_with_chaos_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBFAULT_CHAOS_RATE", "often")
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: DBFAULT_CHAOS_RATE: invalid value 'often'*"])


def test_chaos_and_coverage_settings_merge_like_the_others() -> None:
    ini = {"dbfault_chaos": "yes", "dbfault_chaos_rate": "0.2", "dbfault_chaos_faults": "hard"}
    opts = resolve_options({"dbfault_chaos_rate": "10%"}, {"DBFAULT_CHAOS_TIMEOUT": "0"}, ini)
    assert opts.chaos is not None
    assert (opts.chaos.rate, opts.chaos.kinds, opts.chaos.timeout) == (0.1, ("io_error", "disk_full", "closed"), 0)
    assert resolve_options({"dbfault_chaos": False}, {}, ini).chaos is None
    assert resolve_options({}, {}, {}).coverage is None
    coverage = resolve_options({"dbfault_coverage_fail_under": "95"}, {}, {}).coverage
    assert coverage is not None and coverage.fail_under == 95.0


def test_a_fail_under_above_a_hundred_names_the_flag_and_the_range() -> None:
    with pytest.raises(OptionError, match=r"--dbfault-coverage-fail-under: invalid value '120'.*0 to 100") as info:
        resolve_options({"dbfault_coverage_fail_under": "120"}, {}, {})
    assert (info.value.setting, info.value.value) == ("--dbfault-coverage-fail-under", "120")
