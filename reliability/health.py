"""Health metrics collected cheaply on every operation, and the typed health report.

The hot path only bumps dict counters and appends a latency to a bounded ring;
percentiles are computed when someone asks for a report.
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


class HealthStatus(str, enum.Enum):
    """Overall state of the database as the runtime sees it."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class HealthReport:
    """What ``db.health()`` returns: a status, the reasons for it, and the counters."""

    status: HealthStatus
    reasons: tuple[str, ...]
    connection_state: str
    operations: dict[str, int]
    errors: dict[str, int]
    retries: int
    reconnects: int
    latency_ms: dict[str, float]
    last_error: str | None
    wal_size: int | None
    last_backup_at: float | None = None
    last_integrity_check_at: float | None = None
    integrity_ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True when the status is healthy."""
        return self.status is HealthStatus.HEALTHY

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "status": str(self.status),
            "reasons": list(self.reasons),
            "connection_state": self.connection_state,
            "operations": dict(self.operations),
            "errors": dict(self.errors),
            "retries": self.retries,
            "reconnects": self.reconnects,
            "latency_ms": dict(self.latency_ms),
            "last_error": self.last_error,
            "wal_size": self.wal_size,
            "last_backup_at": self.last_backup_at,
            "last_integrity_check_at": self.last_integrity_check_at,
            "integrity_ok": self.integrity_ok,
            **self.extra,
        }


class HealthMonitor:
    """Counters of operations by type, errors by kind, retries; a ring of recent latencies."""

    def __init__(self, latency_samples: int = 2048) -> None:
        self.operations: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.retries = 0
        self.latencies: deque[float] = deque(maxlen=latency_samples)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_backup_at: float | None = None
        self.last_integrity_check_at: float | None = None
        self.integrity_ok: bool | None = None

    def observe(self, op: str, seconds: float) -> None:
        """Count one finished operation of type ``op`` that took ``seconds``."""
        ops = self.operations
        ops[op] = ops.get(op, 0) + 1
        self.latencies.append(seconds)

    def observe_error(self, kind: str, message: str) -> None:
        """Count one surfaced error of ``kind``."""
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = f"{kind}: {message}"
        self.last_error_at = time.time()

    def latency_percentiles(self) -> dict[str, float]:
        """p50/p95/p99 of recent operation latencies, in milliseconds."""
        samples = sorted(self.latencies)
        if not samples:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
        n = len(samples)

        def pct(p: float) -> float:
            return round(samples[min(n - 1, int(p * n))] * 1000.0, 4)

        return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99)}

    def reset(self) -> None:
        """Forget every counter."""
        self.__init__(self.latencies.maxlen or 2048)  # type: ignore[misc]


def wal_size(db_path: str) -> int | None:
    """Size in bytes of the database's ``-wal`` file, or None when there is none."""
    try:
        return os.path.getsize(db_path + "-wal")
    except OSError:
        return None
