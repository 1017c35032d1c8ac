"""The operation log on a full disk: the flusher thread survives, logs the failure, and writes on after."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from runtime_helpers import wait_for

from pytest_dbfault.faults import FileFullFault
from reliability.oplog import OperationLog


def _same_file(link: str, want: os.stat_result) -> bool:
    try:
        st = os.stat(link)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino)


def test_a_flush_that_meets_a_full_disk_is_logged_and_the_flusher_keeps_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ops.jsonl"
    oplog = OperationLog(path, json_lines=True, flush_interval=0.01)
    try:
        oplog.record("execute", "SELECT 1", 0.001, -1, 1, "ok", None)
        assert wait_for(lambda: oplog.written == 1)  # the file is open now
        with caplog.at_level(logging.ERROR, logger="reliability"):
            with FileFullFault(path):
                oplog.record("execute", "INSERT INTO t VALUES (?)", 0.002, 1, 1, "ok", None)
                assert wait_for(lambda: any(r.getMessage() == "operation log flush failed"
                                             for r in caplog.records))
                failure = next(r for r in caplog.records if r.getMessage() == "operation log flush failed")
                assert failure.exc_info and failure.exc_info[0] is OSError
                assert oplog._thread.is_alive()
        oplog.record("fetch_all", "SELECT * FROM t", 0.003, 2, 1, "ok", None)
        assert wait_for(lambda: oplog.written == 2)  # the flusher went on after the disk had room again
    finally:
        oplog.close()
    # The batch that failed stayed in the file object's buffer and went out with the next flush: none lost.
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds == ["execute", "execute", "fetch_all"]


def test_closing_on_a_full_disk_logs_the_loss_closes_the_file_and_does_not_raise(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ops.jsonl"
    oplog = OperationLog(path, json_lines=True, flush_interval=60)
    oplog.record("execute", "SELECT 1", 0.001, -1, 1, "ok", None)
    assert oplog.flush() == 1  # opens the file
    oplog.record("execute", "SELECT 2", 0.001, -1, 1, "ok", None)
    with caplog.at_level(logging.ERROR, logger="reliability"), FileFullFault(path):
        oplog.close()  # must not raise: the manager closes its connection right after
        assert oplog.closed and oplog._file is None and not oplog._thread.is_alive()
    want = path.stat()
    open_on_it = [fd for fd in os.listdir("/proc/self/fd") if _same_file(f"/proc/self/fd/{fd}", want)]
    assert open_on_it == []  # the descriptor was closed, not leaked
    messages = [r.getMessage() for r in caplog.records]
    assert "operation log: the last records could not be written" in messages
    assert any(m.startswith("operation log: closing") for m in messages)
    assert [json.loads(line)["sql"] for line in path.read_text().splitlines()] == ["SELECT 1"]


def test_logging_setup_formats_json_with_the_exception_and_exit_closes_the_log(tmp_path: Path) -> None:
    import io

    from reliability import ReliabilityConfig
    from reliability.oplog import _close_at_exit, configure_logging

    stream = io.StringIO()
    level = logging.getLogger("reliability").level
    handler = configure_logging(ReliabilityConfig(log_json=True, log_level="INFO"), stream)
    try:
        try:
            raise RuntimeError("shown in the record")
        except RuntimeError:
            logging.getLogger("reliability.test").exception("failed", extra={"db_traceback": "hidden"})
    finally:
        logging.getLogger("reliability").removeHandler(handler)
        logging.getLogger("reliability").setLevel(level)
    record = json.loads(stream.getvalue())
    assert record["message"] == "failed" and "shown in the record" in record["exception"]
    assert record["db_traceback"] == "hidden"  # kept at ERROR level
    oplog = OperationLog(tmp_path / "ops.log", flush_interval=60)
    oplog.record("execute", "SELECT 1", 0.001, -1, 1, "ok", None)
    _close_at_exit(lambda: oplog)  # type: ignore[arg-type]
    assert oplog.closed and "SELECT 1" in (tmp_path / "ops.log").read_text()
