"""Configuration input errors (no fault reaches these): every bad setting is named with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.config import ConfigError, ReliabilityConfig


def _problems(values: dict[str, str], **overrides: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_mapping(values, source="test", **overrides)
    assert "in test" in str(info.value)
    return {key: reason for key, _value, reason in info.value.problems}


def test_text_that_is_not_of_the_settings_type_is_named_with_the_type_expected() -> None:
    problems = _problems({"RELIABILITY_BUSY_TIMEOUT_MS": "soon", "RELIABILITY_RETRY_BUDGET": "lots",
                          "RELIABILITY_FOREIGN_KEYS": "maybe"})
    assert problems == {"RELIABILITY_BUSY_TIMEOUT_MS": "expected a whole number",
                        "RELIABILITY_RETRY_BUDGET": "expected a number",
                        "RELIABILITY_FOREIGN_KEYS": "expected a boolean (true/false, 1/0, yes/no, on/off)"}


def test_a_value_out_of_range_is_named_with_its_environment_key() -> None:
    assert _problems({"RELIABILITY_RETRY_ATTEMPTS": "0"}) == {
        "RELIABILITY_RETRY_ATTEMPTS": "must be >= 1 (1 means no retry)"}


def test_type_and_range_problems_are_reported_together() -> None:
    problems = _problems({"RELIABILITY_BUSY_TIMEOUT_MS": "x", "RELIABILITY_RETRY_ATTEMPTS": "0",
                          "RELIABILITY_RETRY_ATEMPTS": "2"})
    assert set(problems) == {"RELIABILITY_BUSY_TIMEOUT_MS", "RELIABILITY_RETRY_ATTEMPTS", "RELIABILITY_RETRY_ATEMPTS"}
    assert "did you mean RELIABILITY_RETRY_ATTEMPTS" in problems["RELIABILITY_RETRY_ATEMPTS"]


def test_an_env_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"RELIABILITY_RETRY_ATTEMPTS=3\nRELIABILITY_LOG_LEVEL=\xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_env(env, environ={})
    [(key, value, reason)] = info.value.problems
    assert (key, value) == ("file", str(env)) and reason.startswith("not UTF-8 text")
    assert str(env) in str(info.value)


def test_every_bad_value_is_named_and_other_variables_are_ignored() -> None:
    problems = _problems({"HOME": "/root", "RELIABILITY_DB_PATH": "", "RELIABILITY_BACKUP_INTERVAL": "-1",
                          "RELIABILITY_SYNCHRONOUS": "sometimes", "RELIABILITY_LOG_LEVEL": "loud"})
    assert problems == {"RELIABILITY_DB_PATH": "must not be empty", "RELIABILITY_BACKUP_INTERVAL": "must be >= 0",
                        "RELIABILITY_SYNCHRONOUS": "expected one of OFF, NORMAL, FULL, EXTRA",
                        "RELIABILITY_LOG_LEVEL": "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"}


def test_derived_paths_and_the_shown_settings() -> None:
    cfg = ReliabilityConfig(db_path="/data/app.db")
    assert cfg.redo_journal_file == Path("/data/app.db.redo")
    assert cfg.to_dict()["audit_hmac_key"] == ""  # nothing to mask
    assert ReliabilityConfig(audit_hmac_key="secret").to_dict()["audit_hmac_key"] == "***"
