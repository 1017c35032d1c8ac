"""ReliabilityConfig: defaults, .env + environment reading, validation naming every bad key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliability.config import ConfigError, ReliabilityConfig


def test_defaults_are_safe_for_production() -> None:
    cfg = ReliabilityConfig()
    assert cfg.journal_mode == "WAL"
    assert cfg.synchronous == "FULL"
    assert cfg.foreign_keys is True
    assert cfg.retry_attempts >= 1 and cfg.retry_budget > 0
    assert cfg.log_sql_params is False


def test_it_is_immutable() -> None:
    cfg = ReliabilityConfig()
    with pytest.raises(AttributeError):
        cfg.busy_timeout_ms = 1  # type: ignore[misc]


def test_environment_beats_the_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_DB_PATH=from_file.db\nRELIABILITY_RETRY_ATTEMPTS=7\n")
    cfg = ReliabilityConfig.from_env(env, environ={"RELIABILITY_RETRY_ATTEMPTS": "2"})
    assert cfg.db_path == "from_file.db"
    assert cfg.retry_attempts == 2


def test_values_are_converted_to_each_settings_type(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_OPERATION_LOG=yes\nRELIABILITY_RETRY_BASE_DELAY=0.25\n"
                   "RELIABILITY_JOURNAL_MODE=DELETE\n")
    cfg = ReliabilityConfig.from_env(env, environ={})
    assert cfg.operation_log is True
    assert cfg.retry_base_delay == 0.25
    assert cfg.journal_mode == "DELETE"


def test_a_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    cfg = ReliabilityConfig.from_env(tmp_path / "absent.env", environ={"RELIABILITY_DB_PATH": "x.db"})
    assert cfg.db_path == "x.db"


def test_one_error_names_every_bad_key_its_value_and_why(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_RETRY_ATTEMPTS=many\nRELIABILITY_BUSY_TIMEOUT_MS=-5\n"
                   "RELIABILITY_RETRY_BASE_DELAY=2\nRELIABILITY_RETRY_MAX_DELAY=1\n")
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_env(env, environ={})
    keys = {key for key, _value, _reason in info.value.problems}
    assert keys == {"RELIABILITY_RETRY_ATTEMPTS", "RELIABILITY_BUSY_TIMEOUT_MS", "RELIABILITY_RETRY_MAX_DELAY"}
    text = str(info.value)
    assert "RELIABILITY_RETRY_ATTEMPTS='many': expected a whole number" in text
    assert "RELIABILITY_BUSY_TIMEOUT_MS" in text and "must be >= 0" in text
    assert "must be >= retry_base_delay" in text
    assert str(env) in text


def test_unknown_reliability_keys_are_reported_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_env(None, environ={"RELIABILITY_RETRY_ATTEMPT": "3", "OTHER_VAR": "x"})
    (key, value, reason), = info.value.problems
    assert key == "RELIABILITY_RETRY_ATTEMPT" and value == "3"
    assert "did you mean RELIABILITY_RETRY_ATTEMPTS" in reason


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="journal_mode='SIDEWAYS'"):
        ReliabilityConfig(journal_mode="SIDEWAYS")
    with pytest.raises(ConfigError, match="expected int, got str"):
        ReliabilityConfig(retry_attempts="3")  # type: ignore[arg-type]


def test_replace_validates_and_rejects_unknown_names() -> None:
    cfg = ReliabilityConfig()
    assert cfg.replace(busy_timeout_ms=10).busy_timeout_ms == 10
    with pytest.raises(ConfigError, match="did you mean busy_timeout_ms"):
        cfg.replace(busy_timeout=10)
    with pytest.raises(ConfigError, match="backup_keep"):
        cfg.replace(backup_keep=0)


def test_derived_paths_sit_beside_the_database() -> None:
    cfg = ReliabilityConfig(db_path="/data/app.db")
    assert str(cfg.backup_directory) == "/data/app.db.backups"
    assert str(cfg.write_queue_file) == "/data/app.db.queue.jsonl"
    assert str(cfg.audit_fallback_file) == "/data/app.db.audit-fallback.jsonl"
    assert ReliabilityConfig(admin_actors=" ann, bob ,").admin_actor_set == {"ann", "bob"}


def test_to_dict_masks_the_audit_key() -> None:
    assert ReliabilityConfig(audit_hmac_key="secret").to_dict()["audit_hmac_key"] == "***"


@given(st.integers(min_value=-100, max_value=100), st.floats(min_value=0, max_value=5),
       st.floats(min_value=0, max_value=5))
def test_retry_settings_are_accepted_exactly_when_consistent(attempts: int, base: float, top: float) -> None:
    valid = attempts >= 1 and top >= base
    try:
        ReliabilityConfig(retry_attempts=attempts, retry_base_delay=base, retry_max_delay=top)
    except ConfigError as exc:
        assert not valid
        named = {key for key, _v, _r in exc.problems}
        assert named <= {"retry_attempts", "retry_max_delay"} and named
    else:
        assert valid


def test_the_shipped_env_example_parses_cleanly() -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    if not example.exists():
        pytest.fail(".env.example is missing from the repository root")
    ReliabilityConfig.from_env(example, environ={})


# -- non-finite and out-of-range numbers (#15 item 13) ---------------------------------------------------
NUMERIC_KEYS = [f.name for f in dataclasses.fields(ReliabilityConfig) if f.type in ("int", "float")]


@pytest.mark.parametrize("key", NUMERIC_KEYS)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e300", "99999999999999999999999"])
def test_every_numeric_setting_refuses_nan_inf_and_huge_values_naming_the_key(key: str, text: str) -> None:
    env_key = "RELIABILITY_" + key.upper()
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_mapping({env_key: text})
    assert env_key in {k for k, _v, _r in info.value.problems}, str(info.value)
    assert env_key in str(info.value)


def test_a_huge_reload_interval_is_refused_before_it_reaches_the_watcher(tmp_path: Path) -> None:
    from reliability import DatabaseManager

    env = tmp_path / ".env"
    env.write_text("RELIABILITY_CONFIG_RELOAD_INTERVAL=1e300\n")
    with pytest.raises(ConfigError, match=r"RELIABILITY_CONFIG_RELOAD_INTERVAL=.*must be <= 3.16224e\+07"):
        ReliabilityConfig.from_env(env, environ={})
    with DatabaseManager(ReliabilityConfig(db_path=str(tmp_path / "a.db"), config_reload_interval=0.05)) as db:
        env.write_text("RELIABILITY_DB_PATH=" + str(tmp_path / "a.db") + "\n")
        watcher = db.watch_env(env)
        env.write_text("RELIABILITY_DB_PATH=" + str(tmp_path / "a.db") + "\nRELIABILITY_BACKUP_INTERVAL=inf\n")
        with pytest.raises(ConfigError, match="RELIABILITY_BACKUP_INTERVAL"):
            watcher.check_now(force=True)
        assert watcher._thread.is_alive() and db.config.backup_interval == 3600.0


def test_values_at_the_limits_are_accepted() -> None:
    from reliability.config import LIMITS

    for key, (low, high, _why) in LIMITS.items():
        kind = int if key in ("busy_timeout_ms", "retry_attempts", "backup_keep", "write_queue_max") else float
        low_extra = {"retry_base_delay": 0.0} if key == "retry_max_delay" else {}
        high_extra = {"retry_max_delay": kind(high)} if key == "retry_base_delay" else {}
        ReliabilityConfig(**{key: kind(low), **low_extra})
        ReliabilityConfig(**{key: kind(high), **high_extra})


def test_each_invalid_setting_is_named_with_the_file_and_line_or_the_environment(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_BUSY_TIMEOUT_MS=5\n# a comment\nRELIABILITY_RETRY_BASE_DELAY=abc\n"
                   "export RELIABILITY_JOURNAL_MODE = SIDEWAYS\nRELIABILITY_BUSY_TIMEOT_MS=3\n"
                   "RELIABILITY_BACKUP_KEEP=2\nRELIABILITY_BACKUP_KEEP=0\n")
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_env(env, environ={"RELIABILITY_SYNCHRONOUS": "SOMETIMES"})
    text = str(info.value)
    assert f"{env}:3: RELIABILITY_RETRY_BASE_DELAY='abc': expected a number" in text
    assert f"{env}:4: RELIABILITY_JOURNAL_MODE='SIDEWAYS'" in text
    assert (f"{env}:5: RELIABILITY_BUSY_TIMEOT_MS='3': unknown setting; did you mean "
            "RELIABILITY_BUSY_TIMEOUT_MS?") in text
    assert f"{env}:7: RELIABILITY_BACKUP_KEEP=0" in text  # (the last assignment is the one that counts)
    assert "environment: RELIABILITY_SYNCHRONOUS='SOMETIMES'" in text
    assert info.value.where["RELIABILITY_RETRY_BASE_DELAY"] == f"{env}:3"
    # The problems themselves are unchanged: (key, value, reason), whatever the message says.
    assert ("RELIABILITY_RETRY_BASE_DELAY", "abc", "expected a number") in info.value.problems


def test_a_setting_is_not_compared_with_one_that_is_not_a_number(tmp_path: Path) -> None:
    # retry_max_delay is checked against retry_base_delay; with the base delay unreadable, the check would
    # compare with its default and name a problem the file does not have.
    env = tmp_path / ".env"
    env.write_text("RELIABILITY_RETRY_MAX_DELAY=0.01\nRELIABILITY_RETRY_BASE_DELAY=abc\n")
    with pytest.raises(ConfigError) as info:
        ReliabilityConfig.from_env(env, environ={})
    assert [key for key, _v, _r in info.value.problems] == ["RELIABILITY_RETRY_BASE_DELAY"]
    with pytest.raises(ConfigError, match=rf"{env}:1: RELIABILITY_RETRY_MAX_DELAY=0.01: must be >= retry_base_delay"):
        ReliabilityConfig.from_env(env, environ={"RELIABILITY_RETRY_BASE_DELAY": "0.5"})
