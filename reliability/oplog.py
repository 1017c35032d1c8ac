"""Operation logging: one structured record per database operation, written off the hot path.

Example::

    cfg = ReliabilityConfig(db_path="app.db", operation_log=True, operation_log_path="ops.jsonl", log_json=True)
    with DatabaseManager(cfg) as db:     # the manager installs an OperationLog from the config
        db.execute("SELECT 1")
    # ops.jsonl: {"ts": ..., "operation_id": "a1b2c3-o1", "kind": "execute", "sql": "SELECT 1",
    #             "duration_ms": 0.004, "rows": -1, "attempts": 1, "outcome": "ok", "error_kind": null}

Why batching: a raw SQLite point read costs ~2.5 µs while one stdlib ``logging`` record
written by a FileHandler costs ~9 µs. :meth:`OperationLog.record` therefore only appends a
tuple to a deque; a background thread formats and writes whole batches, and
:meth:`OperationLog.close` (called by ``db.close()`` and at interpreter exit) drains
the rest so a clean shutdown loses nothing.

SQL parameters never reach the operation log (the manager passes the SQL text only, whose
values are placeholders), so they are redacted by construction.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from . import files
from .names import printable

#: Field names of one record, in output order.
FIELDS = ("ts", "operation_id", "kind", "sql", "duration_ms", "rows", "attempts", "outcome", "error_kind")

oplog_logger = logging.getLogger("reliability.oplog")

_time = time.time


class OperationLog:
    """Collects operation records cheaply and writes them in batches from a background thread.

    :param path: a file to append formatted lines to; None sends each record to the
        ``reliability.oplog`` logger at INFO instead (with the fields as ``extra``).
    :param json_lines: format file lines as JSON objects (else ``key=value`` text).
    :param flush_interval: seconds between background flushes.
    :param prefix: operation ids are ``<prefix>-o<n>`` in record order.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        json_lines: bool = False,
        flush_interval: float = 0.2,
        prefix: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = Path(path) if path else None
        self.json_lines = json_lines
        self.flush_interval = flush_interval
        self.prefix = prefix or os.urandom(3).hex()
        self.logger = logger or oplog_logger
        self.written = 0
        self.closed = False
        self._buf: deque[tuple[Any, ...]] = deque()
        self._append = self._buf.append
        self._seq = 0
        self._sql_cache: dict[str | None, str] = {}
        self._io_lock = threading.Lock()
        # Opened now: a link planted where the log should be is refused when the runtime starts
        # (files.UnsafePathError naming operation_log_path), not found later by the flush thread.
        self._file: TextIO | None = self._open() if self.path is not None else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reliability-oplog", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> OperationLog | None:
        """The operation log the config asks for, or None when it is off.

        Without a file path the records go through logging; when the ``reliability.oplog``
        logger is not enabled for INFO nothing is installed, so a disabled level costs nothing.
        """
        if not config.operation_log:
            return None
        path = config.operation_log_path or None
        if path is None and not (kwargs.get("logger") or oplog_logger).isEnabledFor(logging.INFO):
            return None
        return cls(path, json_lines=config.log_json, **kwargs)

    # -- hot path ------------------------------------------------------------------------------
    def record(self, op: str, sql: str | None, duration: float, rows: int, attempts: int, outcome: str,
               error_kind: str | None) -> None:
        """Hand one record over (a tuple appended to a deque; formatting happens later)."""
        self._append((_time(), op, sql, duration, rows, attempts, outcome, error_kind))

    # -- background ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # a log sink failing must never take the runtime down
                logging.getLogger("reliability").exception("operation log flush failed")

    def flush(self) -> int:
        """Format and write every record handed over so far; returns how many were written."""
        with self._io_lock:
            buf = self._buf
            batch: list[tuple[Any, ...]] = []
            pop = buf.popleft
            try:
                while True:
                    batch.append(pop())
            except IndexError:
                pass
            if not batch:
                return 0
            if self.path is not None:
                self._write_lines(batch)
            else:
                self._emit_records(batch)
            self.written += len(batch)
            return len(batch)

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self.prefix}-o{self._seq}"

    def _write_lines(self, batch: list[tuple[Any, ...]]) -> None:
        if self._file is None:
            self._file = self._open()
        fmt = self._json_line if self.json_lines else self._text_line
        self._file.write("".join([fmt(rec) for rec in batch]))
        self._file.flush()

    def _open(self) -> TextIO:
        # Created 0600 and never through a planted link (the file may hold SQL text).
        assert self.path is not None
        self.path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)
        fd = files.open_private(self.path, what="operation log (operation_log_path)")
        return os.fdopen(fd, "a", encoding="utf-8")

    def _quoted_sql(self, sql: str | None) -> str:
        # SQL texts repeat: escape each distinct one once.
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = json.dumps(sql, ensure_ascii=False)
            if len(self._sql_cache) < 4096:
                self._sql_cache[sql] = cached
        return cached

    def _json_line(self, rec: tuple[Any, ...]) -> str:
        ts, op, sql, duration, rows, attempts, outcome, error_kind = rec
        err = "null" if error_kind is None else json.dumps(error_kind)
        return (f'{{"ts": {ts:.6f}, "operation_id": "{self._next_id()}", "kind": "{op}", '
                f'"sql": {self._quoted_sql(sql)}, "duration_ms": {duration * 1000.0:.4f}, "rows": {rows}, '
                f'"attempts": {attempts}, "outcome": "{outcome}", "error_kind": {err}}}\n')

    def _text_line(self, rec: tuple[Any, ...]) -> str:
        ts, op, sql, duration, rows, attempts, outcome, error_kind = rec
        return (f"ts={ts:.6f} operation_id={self._next_id()} kind={op} duration_ms={duration * 1000.0:.4f} "
                f"rows={rows} attempts={attempts} outcome={outcome} error_kind={error_kind or '-'} "
                f"sql={self._quoted_sql(sql)}\n")

    def _emit_records(self, batch: list[tuple[Any, ...]]) -> None:
        logger = self.logger
        for ts, op, sql, duration, rows, attempts, outcome, error_kind in batch:
            fields = {"ts": ts, "operation_id": self._next_id(), "kind": op, "sql": sql,
                      "duration_ms": round(duration * 1000.0, 4), "rows": rows, "attempts": attempts,
                      "outcome": outcome, "error_kind": error_kind}
            level = logging.INFO if outcome == "ok" else logging.WARNING
            logger.log(level, "%s %s in %.3f ms (%s rows, %s attempts)%s", op, outcome, fields["duration_ms"],
                       rows, attempts, f" [{error_kind}]" if error_kind else "", extra={"oplog": fields})

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the flusher and write everything still buffered. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        # A full or failing disk loses the last records but must not stop the caller's shutdown or
        # config reload (db.close() closes the connection next; a reload installs the new log).
        try:
            self.flush()
        except OSError:
            logging.getLogger("reliability").exception("operation log: the last records could not be written")
        with self._io_lock:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()  # flushes what a failed write left buffered; the file is closed even if that fails
                except OSError:
                    logging.getLogger("reliability").exception("operation log: closing %s failed", self.path)


def _close_at_exit(ref: weakref.ReferenceType[OperationLog]) -> None:
    oplog = ref()
    if oplog is not None:
        oplog.close()


class JsonFormatter(logging.Formatter):
    """A logging formatter writing one JSON object per record, ready for a log aggregator.

    Standard fields (``ts``, ``level``, ``logger``, ``message``) plus every structured
    field the runtime attaches (``db_kind``, ``operation_id``, ``attempt``, ``sql``, …;
    operation-log records are flattened from their ``oplog`` dict).
    """

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in self._STANDARD:
                continue
            if key == "oplog" and isinstance(value, dict):
                data.update(value)
            elif key != "db_traceback" or record.levelno >= logging.ERROR:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """The text formatter: control characters in the message are escaped, so a name holding a newline
    cannot forge a log line (a traceback, added after the message, keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's own name
        record.message = printable(record.message)
        return super().formatMessage(record)


def configure_logging(config: Any, stream: TextIO | None = None) -> logging.Handler:
    """Send the ``reliability`` loggers to ``stream`` (stderr) at ``config.log_level``, JSON when ``log_json``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if config.log_json else
                         OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("reliability")
    root.setLevel(config.log_level.upper())
    root.addHandler(handler)
    return handler
