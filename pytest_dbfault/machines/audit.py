"""P15 audit retry: exponential delays within jitter bounds, then the fallback file; no entry lost."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from .workload import Workload


def has_audit(self: Any) -> bool:
    return self.db is not None and getattr(self.db, "audit", None) is not None


class AuditMixin(Workload):
    """Records audit entries under faults; watches every retry delay the policy computes."""

    def after_start(self) -> None:
        super().after_start()
        self.delays: list[tuple[int, float]] = []
        self.watch_policy()

    def after_reopen(self) -> None:
        super().after_reopen()
        self.watch_policy()

    def watch_policy(self) -> None:
        # Observe (not replace) the policy's delay computation: which attempt each sleep followed.
        policy = getattr(self.db, "policy", None)
        if policy is None:
            return
        compute = type(policy).delay.__get__(policy)

        def delay(attempt: int) -> float:
            d = compute(attempt)
            self.delays.append((attempt, d))
            return d

        policy.delay = delay

    @precondition(has_audit)
    @rule(heal_after=st.integers(0, 4))
    def record_entry(self, heal_after: int) -> None:
        """Record one entry; a fault in force may heal after the ``heal_after``-th retry (4 = never)."""
        faults = self.active_fault_names
        if faults and heal_after < self.config.retry_attempts - 1 and heal_after:
            self.heal_after_sleeps(faults, heal_after)
        delays0, sleeps0 = len(self.delays), len(self.time.sleeps)
        actor, action = self.fake.user_name(), self.fake.random_element(["flag.set", "user.login", "export"])
        details = {"note": self.fake.sentence(), "who": self.fake.name()}
        self.opaque_ops = True
        try:
            entry = self.call(None, self.db.audit.record, actor, action, self.fake.slug(), details, faults=faults,
                              series=2)
        finally:
            self.clear_sleep_hooks()
        self.check(15, entry.ok, lambda: f"audit.record raised {entry.error!r}: an entry must never be refused for a "
                                         f"database fault", faults=faults)
        self.model.audit_ids.append(entry.value.entry_id)
        self.check_backoff(self.delays[delays0:], self.time.sleeps[sleeps0:], faults)
        if entry.value.pending:
            self.check(15, bool(faults), "an entry went to the fallback file with no fault in force", faults=faults)

    def check_backoff(self, delays: list[tuple[int, float]], sleeps: list[float], faults: list[str]) -> None:
        cfg = self.config
        self.check(15, [d for _a, d in delays] == sleeps,
                   f"the runtime slept {sleeps} but the policy computed {delays}", faults=faults)
        expected_attempt = 1
        for attempt, d in delays:
            if attempt != expected_attempt:
                expected_attempt = 1  # a new retry series (the fallback reconcile or the next entry)
            ceiling = min(cfg.retry_max_delay, cfg.retry_base_delay * 2 ** (attempt - 1))
            self.check(15, attempt == expected_attempt and 0 <= d <= ceiling + 1e-12 and attempt < cfg.retry_attempts,
                       f"retry delay {d:.5f}s after attempt {attempt} is outside [0, {ceiling:.5f}] "
                       f"(base {cfg.retry_base_delay}, doubling, max {cfg.retry_max_delay}, "
                       f"{cfg.retry_attempts} attempts)", faults=faults)
            expected_attempt += 1

    def fallback_ids(self) -> list[str]:
        ids = []
        path = self.db.audit.fallback_path
        for p in (path.with_name(path.name + ".reconciling"), path):
            if os.path.exists(p):
                with open(p, encoding="utf-8") as fh:
                    ids += [json.loads(line)["entry_id"] for line in fh if line.strip()]
        return ids

    @precondition(lambda self: has_audit(self))
    @invariant()
    def p15_audit_retry(self) -> None:
        """Every recorded entry is in the database or the fallback file, exactly once; healed, all reconcile."""
        if not self.faults and self.fallback_ids():
            out = self.call(None, self.absorb, self.db.audit.reconcile)
            self.check(15, out.ok, lambda: f"reconcile failed with the database healthy: {out.error!r}")
        stored: list[str] = []
        if "disconnect_rename" not in self.faults:
            with self.raw() as conn:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone():
                    stored = [r[0] for r in conn.execute("SELECT entry_id FROM reliability_audit ORDER BY seq")]
        else:
            return
        both = stored + self.fallback_ids()
        self.check(15, sorted(both) == sorted(self.model.audit_ids) and len(set(both)) == len(both),
                   lambda: f"audit entries lost or duplicated: recorded {len(self.model.audit_ids)}, database "
                           f"{len(stored)}, fallback {len(both) - len(stored)}")
        if not self.faults:
            self.check(15, stored == self.model.audit_ids, "entries are in the database out of order")
            report = self.absorb(self.db.audit.verify)
            self.check(15, report.ok, f"the audit chain does not verify: {report}")


class AuditMachine(AuditMixin):
    """Audit entries under lock, disk-full and file-moved faults."""

    fault_kinds = ("none", "locked", "disk_full", "disconnect_rename")
