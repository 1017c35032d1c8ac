"""Operation log: one structured record per operation, batched off the hot path, nothing lost at close."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseError, DatabaseManager
from reliability.oplog import FIELDS, JsonFormatter, OperationLog


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_match_the_operations_performed(tmp_path: Path) -> None:
    log_path = tmp_path / "ops.jsonl"
    cfg = fast_config(tmp_path / "a.db", operation_log=True, operation_log_path=str(log_path), log_json=True)
    with DatabaseManager(cfg) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
        db.execute("INSERT INTO t (v) VALUES (?)", ("a",))
        db.fetch_one("SELECT v FROM t WHERE id = ?", (1,))
        db.fetch_all("SELECT v FROM t")
        db.run_in_transaction(lambda: db.execute("INSERT INTO t (v) VALUES (?)", ("b",)))
        with pytest.raises(DatabaseError):
            db.execute("INSERT INTO t (v) VALUES (?)", ("a",))
    records = _lines(log_path)
    assert [(r["kind"], r["outcome"], r["error_kind"]) for r in records] == [
        ("execute", "ok", None), ("execute", "ok", None), ("fetch_one", "ok", None), ("fetch_all", "ok", None),
        ("execute", "ok", None), ("transaction", "ok", None), ("execute", "error", "constraint")]
    assert list(records[0]) == list(FIELDS)
    assert records[1]["rows"] == 1 and records[2]["rows"] == 1 and records[3]["rows"] == 1
    assert records[2]["sql"] == "SELECT v FROM t WHERE id = ?"
    assert all(r["attempts"] >= 1 and r["duration_ms"] >= 0 for r in records)
    assert len({r["operation_id"] for r in records}) == len(records)


def test_sql_parameters_never_reach_the_log(tmp_path: Path) -> None:
    log_path = tmp_path / "ops.log"
    cfg = fast_config(tmp_path / "a.db", operation_log=True, operation_log_path=str(log_path))
    with DatabaseManager(cfg) as db:
        db.execute("CREATE TABLE t (secret TEXT)")
        db.execute("INSERT INTO t VALUES (?)", ("hunter2-password",))
    text = log_path.read_text()
    assert "hunter2-password" not in text
    assert "kind=execute" in text and "outcome=ok" in text and 'sql="INSERT INTO t VALUES (?)"' in text


def test_nothing_is_lost_on_a_clean_shutdown(tmp_path: Path) -> None:
    log_path = tmp_path / "ops.jsonl"
    cfg = fast_config(tmp_path / "a.db", operation_log=True, operation_log_path=str(log_path), log_json=True)
    db = DatabaseManager(cfg)
    db.execute("CREATE TABLE t (v)")
    for i in range(3000):
        db.fetch_one("SELECT ?", (i,))
    db.close()
    assert len(_lines(log_path)) == 3001


def test_it_is_not_installed_when_off_or_when_the_level_is_disabled(tmp_path: Path) -> None:
    with DatabaseManager(fast_config(tmp_path / "a.db")) as db:
        assert db._oplog is None
    logger = logging.getLogger("reliability.oplog")
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with DatabaseManager(fast_config(tmp_path / "b.db", operation_log=True)) as db:
            assert db._oplog is None
    finally:
        logger.setLevel(old)


def test_without_a_path_records_go_through_logging_with_structured_fields(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="reliability.oplog"):
        with DatabaseManager(fast_config(tmp_path / "a.db", operation_log=True)) as db:
            db.execute("CREATE TABLE t (v)")
    records = [r for r in caplog.records if r.name == "reliability.oplog"]
    assert len(records) == 1 and records[0].oplog["kind"] == "execute"
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["kind"] == "execute" and line["sql"] == "CREATE TABLE t (v)" and line["logger"] == "reliability.oplog"


def test_the_background_flusher_writes_batches_and_close_is_idempotent(tmp_path: Path) -> None:
    oplog = OperationLog(tmp_path / "o.log", json_lines=True, flush_interval=60)
    for i in range(10):
        oplog.record("execute", "SELECT 1", 0.001, i, 1, "ok", None)
    assert oplog.flush() == 10 and oplog.flush() == 0
    oplog.record("backup", None, 0.5, 0, 1, "error", "full")
    oplog.close()
    oplog.close()
    records = _lines(tmp_path / "o.log")
    assert [r["rows"] for r in records[:10]] == list(range(10))
    assert records[-1] == records[-1] | {"kind": "backup", "sql": None, "outcome": "error", "error_kind": "full"}


def test_the_json_formatter_flattens_runtime_error_fields() -> None:
    record = logging.LogRecord("reliability", logging.WARNING, __file__, 1, "db %s", ("busy",), None)
    record.db_kind = "busy"
    record.operation_id = "x-1"
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "db busy" and data["db_kind"] == "busy" and data["operation_id"] == "x-1"


def test_maintenance_operations_log_one_record_each(tmp_path: Path) -> None:
    from reliability import Migration

    log_path = tmp_path / "ops.jsonl"
    cfg = fast_config(tmp_path / "a.db", operation_log=True, operation_log_path=str(log_path), log_json=True)
    with DatabaseManager(cfg) as db:
        db.migrate([Migration(1, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")])
        db.execute("INSERT INTO items (name) VALUES ('a')")
        db.backup()
        db.check_integrity()
        db.recover()
    kinds = [(r["kind"], r["outcome"]) for r in _lines(log_path) if r["kind"] not in ("execute", "fetch_one",
                                                                                     "fetch_all", "transaction")]
    assert ("migration", "ok") in kinds and ("backup", "ok") in kinds and ("check", "ok") in kinds
    assert kinds[-1][0] == "recovery"
    assert [k for k, _o in kinds].count("check") == 1
