"""P8 user-friendly errors, P9 technical logging and P17 one operation-log record per operation."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, ClassVar

from hypothesis.stateful import invariant, precondition

from .workload import Workload


class OperationLogMixin(Workload):
    """Reads the runtime's operation log (JSON lines in the example's directory)."""

    settings_overrides: ClassVar[dict[str, Any]] = {"operation_log": True, "log_json": True}
    oplog_lines_seen = 0

    def make_config(self, **overrides: Any) -> Any:
        return super().make_config(operation_log_path=os.path.join(self.dir, "ops.jsonl"), **overrides)

    def after_reopen(self) -> None:
        super().after_reopen()
        # flushed first: the new runtime may have logged work of its own at startup (a re-anchoring backup)
        self.oplog_lines_seen = len(self.oplog_records(flush=True, all_lines=True))

    def oplog_records(self, flush: bool = True, all_lines: bool = False) -> list[dict[str, Any]]:
        oplog = getattr(self.db, "oplog", None)
        if flush and oplog is not None:
            oplog.flush()
        lines = self._oplog_lines(os.path.join(self.dir, "ops.jsonl"))
        return [r for r in lines[0 if all_lines else self.oplog_lines_seen:] if r is not None]

    def _oplog_lines(self, path: str) -> list[Any]:
        """Every line of the log parsed (None for a blank one), read incrementally: the log only grows,
        and re-reading it whole after every call made long examples quadratic."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return []
        cache = getattr(self, "_oplog_cache", None)
        if cache is None or cache[0] != (st.st_dev, st.st_ino) or st.st_size < cache[1]:
            cache = [(st.st_dev, st.st_ino), 0, []]
            self._oplog_cache = cache
        if st.st_size > cache[1]:
            with open(path, "rb") as fh:
                fh.seek(cache[1])
                data = fh.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            for line in data[:end].decode("utf-8").splitlines():
                cache[2].append(json.loads(line) if line.strip() else None)
            cache[1] += end
        return cache[2]

    def absorbed_oplog(self) -> None:
        # Count the records a feature call made as expected (they are not the ones under test).
        records = self.oplog_records()
        actual = Counter((r.get("kind"), r.get("outcome")) for r in records)
        for key, n in (actual - self.model.ledger.oplog).items():
            self.model.ledger.oplog[key] += n

    @precondition(lambda self: self.db is not None)
    @invariant()
    def p17_operation_logging(self) -> None:
        """Each operation made one record with a duration and its outcome."""
        records = self.oplog_records()
        malformed = [r for r in records if not isinstance(r.get("duration_ms"), (int, float))
                     or r["duration_ms"] < 0 or r.get("outcome") not in ("ok", "error")]
        self.check(17, not malformed, lambda: f"operation records without duration/outcome: {malformed[:3]}")
        actual = Counter((r.get("kind"), r.get("outcome")) for r in records)
        expected = self.model.ledger.oplog
        if self.opaque_ops:
            short = {k: n for k, n in expected.items() if actual[k] < n}
            self.check(17, not short, lambda: f"operations without a log record: {short}")
            return
        extra = actual - expected
        # A transaction aborted by the application's own exception may or may not be logged as an error.
        tolerated = extra.get(("transaction", "error"), 0) <= self.model.ledger.app_aborts
        extra.pop(("transaction", "error"), None)
        self.check(17, actual.keys() >= {k for k, n in expected.items() if n} and not (expected - actual)
                   and not extra and tolerated,
                   lambda: f"operation log records {dict(actual)} do not match the operations performed "
                           f"{dict(expected)}")


class ErrorsLoggingMachine(OperationLogMixin):
    """Errors of every origin (faults, duplicates, bad SQL) checked for P8/P9 by the workload; P17 here."""

    fault_kinds = ("none", "locked", "disk_full", "disconnect_close", "disconnect_rename", "disconnect_delete")
