"""P15 audit retry: exponential delays within jitter bounds, then the fallback file; no entry lost."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from .base import swarm
from .degradation import OUTAGES
from .workload import AppError, Workload

#: The fields of an audit entry written to the fallback file that its line's MAC covers (edited one at a time).
FALLBACK_FIELDS = ("target", "actor", "action", "details", "ts")

#: The filters a read of the log is drawn with (``unknown_actor``: one no entry has; ``no_pending``:
#: ``include_pending=False``).
READ_FILTERS = ("none", "actor", "action", "since", "actor_action", "unknown_actor", "no_pending")
#: The fields of an :class:`~reliability.audit.AuditEntry` a read must give as the files hold them.
ENTRY_FIELDS = ("entry_id", "ts", "actor", "action", "target", "details", "seq", "hash", "key_id", "pending")

#: The two ways to run a transaction, each nestable in the other.
TX_FORMS = ("transaction", "run_in_transaction")

#: Invalid ``db.audit.record`` arguments (actor, action, target, details), by what is wrong with them.
INVALID_ENTRIES: dict[str, tuple[Any, ...]] = {
    "an empty actor": ("", "flag.set", "beta", {}),
    "a blank action": ("alice", "   ", "beta", {}),
    "an actor of 201 characters": ("a" * 201, "flag.set", "beta", {}),
    "an action of 201 characters": ("alice", "x" * 201, "beta", {}),
    "a target of 1001 characters": ("alice", "flag.set", "t" * 1001, {}),
    "a target that is not text": ("alice", "flag.set", 7, {}),
    "details that are a list": ("alice", "flag.set", "beta", ["on"]),
    "details that are not JSON": ("alice", "flag.set", "beta", {"when": object()}),
    "details with NaN": ("alice", "flag.set", "beta", {"x": float("nan")}),
}

#: More invalid ``db.audit.record`` arguments, each refused by the validator before anything is written: details
#: that JSON cannot hold (a set, bytes, an object deep inside, a key that is not text, an infinity) or that UTF-8
#: cannot encode (a lone surrogate in a key or a value), names holding a lone surrogate, details that are text.
#: Every one of them and of :data:`INVALID_ENTRIES` is tried by each run of ``record_an_invalid_entry``.
INVALID_DETAILS: dict[str, tuple[Any, ...]] = {
    "details holding a set": ("alice", "flag.set", "beta", {"roles": {"admin"}}),
    "details holding bytes": ("alice", "flag.set", "beta", {"raw": b"\x00on"}),
    "details holding an object deep inside": ("alice", "flag.set", "beta", {"a": {"b": [1, object()]}}),
    "details with a key that is not text": ("alice", "flag.set", "beta", {("a", "b"): 1}),
    "details with an infinity": ("alice", "flag.set", "beta", {"x": [float("-inf")]}),
    "details with a lone surrogate in a key": ("alice", "flag.set", "beta", {"k\ud800": "on"}),
    "details with a lone surrogate in a value": ("alice", "flag.set", "beta", {"k": ["x\udfff"]}),
    "details that are text": ("alice", "flag.set", "beta", '{"on": true}'),
    "an actor with a lone surrogate": ("al\udc80ice", "flag.set", "beta", {}),
    "an action with a lone surrogate": ("alice", "flag.\ud83d", "beta", {}),
    "a target with a lone surrogate": ("alice", "flag.set", "\udcffbeta", {}),
}


def has_audit(self: Any) -> bool:
    return self.db is not None and getattr(self.db, "audit", None) is not None


def read_model(pending: list[dict[str, Any]], stored: list[dict[str, Any]], filters: dict[str, Any],
               include_pending: bool) -> list[dict[str, Any]]:
    """What a read of the whole log answers (before its limit): the waiting entries (``pending``, oldest first)
    newest first, then the stored ones (``stored``, newest first), those that match ``filters`` (``since``
    inclusive)."""
    def fits(e: dict[str, Any]) -> bool:
        return all(e[k] == v for k, v in filters.items() if k != "since") and e["ts"] >= filters.get("since", e["ts"])

    return ([e for e in reversed(pending) if fits(e)] if include_pending else []) + [e for e in stored if fits(e)]


class AuditMixin(Workload):
    """Records audit entries under faults; watches every retry delay the policy computes."""

    @precondition(swarm("outage"))
    @precondition(lambda self: has_audit(self) and not self.faults)
    @rule(outage=st.sampled_from(OUTAGES), n=st.integers(3, 4), param=st.integers(0, 5))
    def audit_during_outage(self, outage: str, n: int, param: int) -> None:
        """A targeted rare sequence: three or four audit entries during one outage, then the heal; the
        invariant then wants every entry reconciled, once, in order (P15)."""
        if not self.inject(outage, param):
            return
        for _ in range(n):
            self.record_entry(4)
        self.heal(outage)

    @precondition(swarm("audit"))
    @precondition(has_audit)
    @rule(heal_after=st.integers(0, 4))
    def record_entry(self, heal_after: int) -> None:
        """Record one entry; a fault in force may heal after the ``heal_after``-th retry (4 = never)."""
        faults = self.active_fault_names
        if faults and heal_after < self.config.retry_attempts - 1 and heal_after:
            self.heal_after_sleeps(faults, heal_after)
        delays0, sleeps0 = len(self.delays), len(self.time.sleeps)
        actor, action = self.pick("user_name"), self.rng.choice(["flag.set", "user.login", "export"])
        note, who = self.pick("sentence"), self.pick("name")
        details = {"who": who, "note": note}  # (keys not in sorted order: the stored form must not depend on it)
        self.opaque_ops = True
        try:
            entry = self.call(None, self.db.audit.record, actor, action, self.pick("slug"), details, faults=faults,
                              series=2)
        finally:
            self.clear_sleep_hooks()
        self.check(15, entry.ok, lambda: f"audit.record raised {entry.error!r}: an entry must never be refused for a "
                                         f"database fault", faults=faults)
        self.model.audit_ids.append(entry.value.entry_id)
        self.check_backoff(15, self.delays[delays0:], self.time.sleeps[sleeps0:], faults)
        if entry.value.pending:
            self.check(15, bool(faults), "an entry went to the fallback file with no fault in force", faults=faults)
        elif not self.faults:
            self.judge_canonical_details(entry.value.entry_id, details)

    def judge_canonical_details(self, entry_id: str, details: dict[str, Any]) -> None:
        """P15: an entry's details are chained and stored as their *canonical* JSON (module docstring of
        reliability.audit: the hash covers "canonical JSON of [...] details"): one text for the same details whatever
        order the caller's dict lists its keys in, so anyone holding the key can recompute the hash from the entry.
        Judged on the stored text: the same object as given, its keys in sorted order."""
        try:
            with self.raw() as conn:
                row = conn.execute("SELECT details FROM reliability_audit WHERE entry_id = ?", (entry_id,)).fetchone()
        except sqlite3.Error:
            return  # (unreadable beside the runtime just now: other checks judge the file)
        if row is None:
            return  # (where the entry went is the invariant's business)
        pairs = json.loads(row[0], object_pairs_hook=lambda kv: kv)
        keys = [k for k, _v in pairs]
        self.check(15, dict(pairs) == details and keys == sorted(keys), lambda: (
            f"audit entry {entry_id} was recorded with the details {details} (keys in the order {list(details)}); "
            f"the log stores {row[0]!r}: not the canonical form (the same object, keys sorted), so the stored text and "
            "the hash depend on the caller's key order"))

    @precondition(swarm("audit"))
    @precondition(lambda self: has_audit(self) and not self.faults and len(self.model.audit_ids) >= 2)
    @rule(how=st.sampled_from(("edit", "delete_middle", "delete_last")), pick=st.integers(0, 2**16))
    def tamper_with_the_audit_log(self, how: str, pick: int) -> None:
        """P15: the log is tamper-evident. An entry edited, or removed from the middle or the end, by someone
        writing to the file around the runtime (without the key) fails ``verify()``, which names where; with
        the rows put back exactly, it verifies again."""
        if self.fallback_ids():
            return  # (entries still waiting for the database: the rows to tamper with are not all there)
        # (every column: a row put back without its key id would be an entry of the format before key ids)
        columns = "seq, entry_id, ts, actor, action, target, details, prev_hash, hash, key_id"
        with self.raw() as conn:
            rows = conn.execute(f"SELECT {columns} FROM reliability_audit ORDER BY seq").fetchall()
        if len(rows) < 2:
            return
        before = self.absorb(self.db.audit.verify)
        if not before.ok:
            return  # (judged by the invariant)
        row = rows[-1] if how == "delete_last" else rows[pick % (len(rows) - 1)]
        done = {"edit": "edited", "delete_middle": "removed", "delete_last": "removed from the end"}[how]
        with self.raw() as conn:
            if how == "edit":
                conn.execute("UPDATE reliability_audit SET details = ? WHERE seq = ?",
                             (json.dumps({"edited": True}), row[0]))
            else:
                conn.execute("DELETE FROM reliability_audit WHERE seq = ?", (row[0],))
        try:
            report = self.absorb(self.db.audit.verify)
            self.check(15, not report.ok, f"the audit log verifies with entry {row[0]} {done} in the file")
            if how != "delete_last":
                # edited: that entry's content; removed: the link of the entry after it
                at = row[0] if how == "edit" else next(r[0] for r in rows if r[0] > row[0])
                self.check(15, report.first_broken_seq == at,
                           f"the audit log with entry {row[0]} {done} is reported broken at "
                           f"{report.first_broken_seq} ({report.reason})")
            # The operator's entry point to the same rule: `reliability verify-audit` exits 1 and names the entry.
            ran = self.run_command_line(["verify-audit"], 15, None)
            if ran is not None:
                code, doc = ran
                seq = (doc.get("value") or {}).get("first_broken_seq") if isinstance(doc.get("value"), dict) else None
                self.check(15, code == 1, f"`reliability verify-audit` exited {code} ({doc.get('message')}) with "
                                          f"entry {row[0]} {done} in the file")
                if how != "delete_last":
                    self.check(15, seq == report.first_broken_seq,
                               f"`reliability verify-audit` names entry {seq}, verify() names "
                               f"{report.first_broken_seq} ({doc.get('message')})")
        finally:
            with self.raw() as conn:
                conn.execute(f"INSERT OR REPLACE INTO reliability_audit ({columns}) VALUES "
                             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        after = self.absorb(self.db.audit.verify)
        self.check(15, after.ok, f"the audit log with its rows put back does not verify: {after.reason}")
        ran = self.run_command_line(["verify-audit"], 15, None)
        if ran is not None:
            self.check(15, ran[0] == 0, f"`reliability verify-audit` exited {ran[0]} ({ran[1].get('message')}) "
                                        f"with the audit log's rows put back")

    @precondition(swarm("audit"))
    @precondition(lambda self: has_audit(self) and not self.faults and bool(self.model.audit_ids)
                  and not self.fallback_ids())
    @rule(allowed=st.booleans(), limit=st.integers(1, 4), by_action=st.booleans())
    def read_the_audit_log_from_the_command_line(self, allowed: bool, limit: int, by_action: bool) -> None:
        """P15 at the operator's entry point: ``reliability audit`` shows the log to administrators only.

        An administrator gets the newest ``limit`` entries, newest first (with ``--action``, only that action's),
        exactly as the file holds them; anyone else is refused (exit 6) and shown nothing. Either way nothing is
        written (an inspection: checked by ``run_command_line``). No rule read the log through the command line
        before (``tests/machines/test_public_reach.py``): its authorization and its filters were judged by unit
        tests only."""
        with self.raw() as conn:
            stored = [(r[0], r[1]) for r in conn.execute(
                "SELECT entry_id, action FROM reliability_audit ORDER BY seq")] if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone() else []
        if not stored:
            return
        action = stored[-1][1] if by_action else None
        argv = ["audit", "--limit", str(limit), *(["--action", action] if action else [])]
        ran = self.run_command_line(argv, 15, None, admin=allowed)
        if ran is None:
            return
        code, doc = ran
        shown = doc.get("value") if isinstance(doc.get("value"), list) else []
        said = f"`reliability {' '.join(argv)}` ({'an administrator' if allowed else 'no administrator'})"
        if not allowed:
            self.check(15, code == 6 and not shown,
                       f"{said} exited {code} and showed {len(shown)} entries: the log is for administrators only")
            return
        expected = [i for i, a in reversed(stored) if action is None or a == action][:limit]
        got = [e.get("entry_id") for e in shown]
        self.check(15, code == 0 and got == expected,
                   lambda: f"{said} exited {code} and showed {got}, the file's newest are {expected} "
                           f"({doc.get('message')})")

    def fallback_ids(self) -> list[str]:
        ids = []
        path = self.db.audit.fallback_path
        for p in (path.with_name(path.name + ".reconciling"), path):
            if os.path.exists(p):
                with open(p, encoding="utf-8") as fh:
                    for line in fh:
                        if not line.strip() or not line.endswith("\n"):
                            continue  # (a crash's torn append, last and never ended: never acknowledged)
                        try:
                            ids.append(json.loads(line)["entry_id"])
                        except (ValueError, KeyError):  # (a torn fragment, ended by the append after it)
                            continue
        return ids

    @precondition(lambda self: has_audit(self))
    @invariant()
    def p15_audit_retry(self) -> None:
        """Every recorded entry is in the database or the fallback file, exactly once; healed, all reconcile."""
        if not self.faults and self.fallback_ids():
            out = self.call(None, self.absorb, self.db.audit.reconcile)
            self.check(15, out.ok, lambda: f"reconcile failed with the database healthy: {out.error!r}")
        stored: list[str] = []
        if any(f.startswith("disconnect_") and f != "disconnect_close" for f in self.faults):
            return  # the file is away: nothing to read
        try:
            with self.raw() as conn:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone():
                    stored = [r[0] for r in conn.execute("SELECT entry_id FROM reliability_audit ORDER BY seq")]
        except sqlite3.OperationalError:
            if self.faults:
                return  # an exclusive lock in a rollback journal mode keeps readers out too
            raise
        both = stored + self.fallback_ids()
        self.check(15, sorted(both) == sorted(self.model.audit_ids) and len(set(both)) == len(both),
                   lambda: f"audit entries lost or duplicated: recorded {len(self.model.audit_ids)}, database "
                           f"{len(stored)}, fallback {len(both) - len(stored)}")
        if not self.faults:
            self.check(15, stored == self.model.audit_ids, "entries are in the database out of order")
            # (A restore or recovery that rewinds the log re-anchors it: the chain verifies after one too.)
            report = self.absorb(self.db.audit.verify)
            self.check(15, report.ok, f"the audit chain does not verify: {report}")


class AuditMachine(AuditMixin):
    """Audit entries under lock, disk-full and file-moved faults, and rotations of the audit key."""

    core_groups = frozenset(("audit", "outage"))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_rename", "disconnect_delete")

    # (Here, not in AuditMixin: the machines that mix it in with admin commands would strand a queued admin write,
    # which carries an authorization under the audit key of its own, reliability/degraded/commands.py.)
    @precondition(swarm("audit"))
    @precondition(lambda self: has_audit(self) and not self.faults and bool(self.model.audit_ids)
                  and not self.fallback_ids() and bool(self.db.audit.key))
    @rule(forget=st.booleans(), pick=st.integers(0, 2**16))
    def rotate_the_audit_key(self, forget: bool, pick: int) -> None:
        """P15 across a key rotation: restarted with a new key and the old one listed as retired
        (``audit_previous_keys``), an honest log verifies (entries name their key by its id), new entries use the
        new key, and an old entry edited in the file is still reported broken, at its place; put back, it
        verifies. ``forget``: first restarted without the old key listed, the log must be *unverifiable* (not
        green, and not called tampered either: the entries under the old key name a key that is not configured),
        also at ``reliability verify-audit``, which exits 1 (its JSON says so too)."""
        from reliability.audit import key_id

        with self.raw() as conn:
            old_rows = conn.execute("SELECT seq, details FROM reliability_audit ORDER BY seq").fetchall()
        if not old_rows or not self.absorb(self.db.audit.verify).ok:
            return  # (an unverified log is the invariant's to judge)
        old = self.db.audit.key.decode("utf-8")
        earlier = [k for k in self.config.audit_previous_key_list if k != old]
        # (numbered: drawn bits alone may repeat, a shrunk example draws 0 each time, and a "new" key equal to the
        # old one is no rotation)
        new = f"rotated-{len(earlier) + 1}-{self.rng.getrandbits(256):064x}"
        if forget:
            self.config = self.config.replace(audit_hmac_key=new, audit_previous_keys=",".join(earlier))
            self.reopen()
            report = self.absorb(self.db.audit.verify)
            said = f"restarted with a new audit key and the old one ({key_id(old.encode())}) not listed"
            self.check(15, not report.ok and report.verdict == "unverifiable"
                       and key_id(old.encode()) in report.unknown_key_ids,
                       f"{said}: verify() says {report.verdict} ({report.reason}), not unverifiable naming that key")
            ran = self.run_command_line(["verify-audit"], 15, None)
            if ran is not None:
                value = ran[1].get("value") if isinstance(ran[1].get("value"), dict) else {}
                self.check(15, ran[0] == 1 and value.get("verdict") == "unverifiable",
                           f"{said}: `reliability verify-audit` exited {ran[0]} ({ran[1].get('message')}) with "
                           f"entries under that key in the file")
            self.judge_unverified_count(report, said, [new, *earlier])
            # The administrator accepts the log as it is (re-anchors it under the current key): the entries
            # under the key not configured still cannot be checked, so the log is still not green.
            out = self.call(None, self.absorb, self.db.audit.reanchor, "dbfault-admin", "accepted without the old key")
            self.check(15, out.ok, lambda: f"{said}: db.audit.reanchor() failed on a healthy database: {out.error!r}")
            if out.ok:
                self.model.audit_ids.append(out.value.entry_id)
                report = self.absorb(self.db.audit.verify)
                self.check(15, not report.ok and report.verdict == "unverifiable"
                           and key_id(old.encode()) in report.unknown_key_ids,
                           f"{said}, then the log re-anchored under the new key: verify() says {report.verdict} "
                           f"({report.reason}), not unverifiable naming that key")
                self.judge_unverified_count(report, f"{said}, then the log re-anchored", [new, *earlier])
        self.config = self.config.replace(audit_hmac_key=new, audit_previous_keys=",".join([old, *earlier]))
        self.reopen()
        report = self.absorb(self.db.audit.verify)
        self.check(15, report.ok, f"the audit key rotated (the old one listed in audit_previous_keys): the honest "
                                  f"log does not verify: {report.verdict}: {report.reason}")
        ran = self.run_command_line(["verify-audit"], 15, None)
        if ran is not None:
            self.check(15, ran[0] == 0, f"the audit key rotated (the old one retired): `reliability verify-audit` "
                                        f"exited {ran[0]} ({ran[1].get('message')})")
        self.record_entry(4)  # one entry under the new key: the chain now runs across the rotation
        with self.raw() as conn:
            newest = conn.execute("SELECT entry_id, key_id FROM reliability_audit ORDER BY seq DESC LIMIT 1").fetchone()
        self.check(15, tuple(newest) == (self.model.audit_ids[-1], key_id(new.encode())),
                   f"the entry recorded after the rotation is {tuple(newest)}, not under the new key "
                   f"{key_id(new.encode())}")
        seq, details = old_rows[pick % len(old_rows)]
        with self.raw() as conn:
            conn.execute("UPDATE reliability_audit SET details = ? WHERE seq = ?", (json.dumps({"edited": True}), seq))
        try:
            report = self.absorb(self.db.audit.verify)
            self.check(15, not report.ok and report.verdict == "broken" and report.first_broken_seq == seq,
                       f"entry {seq}, written under the retired key, edited in the file after the rotation: verify() "
                       f"says {report.verdict} at {report.first_broken_seq} ({report.reason})")
        finally:
            with self.raw() as conn:
                conn.execute("UPDATE reliability_audit SET details = ? WHERE seq = ?", (details, seq))
        after = self.absorb(self.db.audit.verify)
        self.check(15, after.ok, f"the audit log with entry {seq} put back does not verify after the rotation: "
                                 f"{after.reason}")

    def judge_unverified_count(self, report: Any, said: str, configured: list[str]) -> None:
        """P15 (``AuditLog.verify``): an entry under a key not configured is counted (``unverified``), and the
        first such entry is named: the count is the entries in the file whose key id names no configured key."""
        from reliability.audit import key_id

        known = {key_id(k.encode()) for k in configured if k}
        with self.raw() as conn:
            kids = [(seq, str(kid or "")) for seq, kid in
                    conn.execute("SELECT seq, key_id FROM reliability_audit ORDER BY seq").fetchall()]
        under = [seq for seq, kid in kids if kid and kid not in known]
        self.check(15, report.unverified == len(under)
                   and report.first_unverified_seq == (under[0] if under else None),
                   f"{said}: verify() counts {report.unverified} unverified entries (the first: "
                   f"{report.first_unverified_seq}), but {len(under)} entries in the file name a key not configured "
                   f"(the first: {under[0] if under else None})")

    @precondition(lambda self: has_audit(self) and not self.faults and not self.fallback_ids())
    @rule(param=st.integers(0, 5), waiting=st.integers(1, 2))
    def record_once_the_database_is_back(self, param: int, waiting: int) -> None:
        """P15, the order of the log across an outage: entries recorded while another connection holds the lock go
        to the fallback file; once it is released, the next entry is recorded straight away (no reconcile called
        first, as an application just carries on logging). It must be chained after the ones that waited: those
        are reconciled first, so the log holds every entry once, in the order they were recorded, and none is
        left waiting in the fallback file."""
        if not self.inject("locked", param):
            return
        try:
            before = len(self.model.audit_ids)
            for _ in range(waiting):
                self.record_entry(4)
            held = self.model.audit_ids[before:]
            waited = self.fallback_ids()
        finally:
            self.heal("locked")
        if not waited or waited != held:
            return  # (not every entry waits in the file: the invariant judges where they went)
        self.record_entry(4)
        with self.raw() as conn:
            stored = [r[0] for r in conn.execute("SELECT entry_id FROM reliability_audit ORDER BY seq")]
        left = self.fallback_ids()
        self.check(15, stored == self.model.audit_ids and not left, lambda: (
            f"{len(waited)} audit entr{'y' if len(waited) == 1 else 'ies'} waited in the fallback file during a lock; "
            f"the lock released, the next entry was recorded: the log holds {stored[before:]} after the entries "
            f"before the outage, {left} still wait in the fallback file; recorded in the order "
            f"{self.model.audit_ids[before:]} (the waiting ones are reconciled first, in order)"))

    @precondition(swarm("outage"))
    @precondition(lambda self: has_audit(self) and not self.faults and not self.fallback_ids()
                  and bool(self.db.audit.key))
    @rule(fields=st.permutations(FALLBACK_FIELDS), n=st.integers(1, len(FALLBACK_FIELDS)), param=st.integers(0, 5))
    def edit_the_fallback_file(self, fields: list[str], n: int, param: int) -> None:
        """P15 for entries waiting out an outage in the fallback file: each line carries a MAC over the whole
        entry, so a line whose entry someone edited in the file (any one field: its target, actor, action, details
        or time) is rejected when the database is back (kept in ``<fallback>.rejected`` and noted in the log as
        ``audit.fallback_rejected`` with the line), never chained as genuine; the unedited lines written beside it
        are chained as they were written. The edit is made through the file, as someone who can write it but has
        no key would. Each file then ends with a line torn by a crash mid-append (never acknowledged), and one more
        entry is recorded, the outage still on: it goes to the fallback file, after that file's torn fragment, and
        must be chained like the others, not glued onto the fragment and dropped with it (session 28; the fragment,
        no longer last, may be noted as unreadable). The torn end of the file set aside by a reconcile
        (``.reconciling``, which no append touches) stays last: only skipped."""
        if not self.inject("locked", param):
            return
        try:
            before = len(self.model.audit_ids)
            for _ in range(n + 1):  # (one more than edited: an honest line beside the edited ones)
                self.record_entry(4)
            ids = self.model.audit_ids[before:]
            path = self.db.audit.fallback_path
            # (a reconcile that met the outage left the entries it took in "<fallback>.reconciling": read first)
            files = [p for p in (path.with_name(path.name + ".reconciling"), path) if p.exists() and p.stat().st_size]
            records = {p: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
                       for p in files}
            if [r.get("entry_id") for p in files for r in records[p]] != ids:
                return  # (not every entry waits in the file: the invariant judges where they went)
            edited: dict[str, tuple[str, str]] = {}  # entry id -> (field, the edited line)
            for record, field in zip([r for p in files for r in records[p]], fields[:n], strict=False):
                value = record[field]
                if field == "ts":
                    record[field] = value + 1.0
                elif field == "details":
                    record[field] = dict(value, note=f"{value.get('note', '')} (edited)")
                else:
                    record[field] = f"{value}-edited"
                edited[record["entry_id"]] = (field, json.dumps(record, ensure_ascii=False))
            torn_of = {p: json.dumps(records[p][-1] | {"entry_id": f"torn-{records[p][-1]['entry_id']}"},
                                     ensure_ascii=False)[:60] for p in files}
            torn = torn_of[files[0]]  # (the end that stays last: the set-aside file's, or the one file's)
            appended_after = torn_of[files[-1]] if len(files) > 1 else None
            for p in files:
                # (synced, as the runtime syncs its lines: a power loss later must not bring the unedited lines back)
                with open(p, "w", encoding="utf-8") as fh:
                    fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[p]))
                    fh.write(torn_of[p])  # and a crash mid-append of one more entry (never acknowledged) tore the end
                    fh.flush()
                    os.fsync(fh.fileno())
            self.record_entry(4)  # (the process restarted after the crash; the database still locked)
            ids = self.model.audit_ids[before:]
        finally:
            self.heal("locked")
        out = self.call(None, self.absorb, self.db.audit.reconcile)
        self.check(15, out.ok, lambda: f"reconcile failed with the database healthy: {out.error!r}")
        if not out.ok:
            return
        with self.raw() as conn:
            rows = conn.execute("SELECT entry_id, action, details FROM reliability_audit ORDER BY seq").fetchall()
        stored = [r[0] for r in rows]
        for entry_id, (field, _line) in edited.items():
            self.check(15, entry_id not in stored, lambda entry_id=entry_id, field=field: (
                f"an audit entry waiting in the fallback file had its {field} edited in the file, and reconcile() "
                f"chained it as genuine (entry {entry_id}); it must be rejected (audit.fallback_rejected)"))
        noted = {json.loads(d).get("line") for _i, a, d in rows if a == "audit.fallback_rejected"}
        for entry_id, (field, line) in edited.items():
            self.check(15, line in noted, lambda entry_id=entry_id, field=field: (
                f"an audit entry waiting in the fallback file had its {field} edited in the file: reconcile() noted "
                f"no audit.fallback_rejected entry with its line (entry {entry_id})"))
        rejected = path.with_name(path.name + ".rejected")
        kept = set(rejected.read_text(encoding="utf-8").splitlines()) if rejected.exists() else set()
        self.check(15, all(line in kept for _f, line in edited.values()),
                   lambda: f"edited fallback lines are not all kept in {rejected.name}")
        # The torn last line is what a crash mid-append leaves (reconcile: "only a torn last line is expected"):
        # skipped, not reported as an edited or unreadable entry (no audit.fallback_rejected note, not set aside).
        self.check(15, torn not in noted and torn not in kept, lambda: (
            f"the fallback file ended with a line torn by a crash mid-append ({torn!r}): reconcile() "
            f"{'noted it as audit.fallback_rejected' if torn in noted else f'kept it in {rejected.name}'}, as if an "
            f"entry had been edited in the file; a torn last line was never acknowledged and is only skipped"))
        if appended_after is not None:
            self.check(15, ids[-1] in stored, lambda: (
                f"the fallback file ended with a line torn by a crash mid-append ({appended_after!r}); one more entry "
                f"was recorded after it during the outage (acknowledged as pending, entry {ids[-1]}), and reconcile() "
                f"did not chain it (the log holds {len(noted)} audit.fallback_rejected note(s)): glued onto the torn "
                f"fragment and read back with it as one unreadable line?"))
        # The model follows what the log now holds: the edited entries are gone, a rejection note each in their stead
        # (and one for the torn fragment an entry was appended after).
        honest = [i for i in ids if i not in edited]
        notes = [r[0] for r in rows if r[1] == "audit.fallback_rejected"
                 and json.loads(r[2]).get("line") in {line for _f, line in edited.values()} | {appended_after}]
        self.model.audit_ids = self.model.audit_ids[:before] + honest + notes

    # -- reading the log, with entries waiting in the fallback file ------------------------------
    @precondition(lambda self: has_audit(self) and not self.faults)
    @rule(stored_first=st.integers(0, 2), waiting=st.integers(0, 2), param=st.integers(0, 5),
          by=st.sampled_from(READ_FILTERS), pick=st.integers(0, 2**16), cli_limit=st.integers(1, 6))
    def read_the_log_with_entries_waiting(self, stored_first: int, waiting: int, param: int, by: str, pick: int,
                                          cli_limit: int) -> None:
        """P15, ``db.audit.entries(limit, actor=, action=, since=, include_pending=)`` against a model of the whole
        log: ``stored_first`` entries recorded now, then ``waiting`` recorded while another connection holds the
        lock (they wait in the fallback file), the lock released and nothing reconciled yet. For every limit from 0
        (refused: ValueError) to one past the number of entries, with the drawn filter (an actor, an action, a time
        bound that is inclusive, both actor and action, or ``include_pending=False``), the answer is the waiting
        entries newest first (marked ``pending``, no seq or hash), then the stored ones newest first, filtered, cut
        at ``limit``: never more than ``limit``, each entry once, every field as the files hold it. ``verify()``
        is ok meanwhile (waiting entries are not in the chain yet), and ``reliability audit`` (an administrator,
        the same filter) shows the same entries."""
        for _ in range(stored_first):
            self.record_entry(4)
        if waiting and self.inject("locked", param):
            try:
                for _ in range(waiting):
                    self.record_entry(4)
            finally:
                self.heal("locked")
        stored = self.stored_audit_rows()
        pending = self.fallback_records()
        everything = [*pending, *stored]
        self.opaque_ops = True
        if not everything:  # (a fresh database: no audit table yet, which is no error)
            none = self.call(None, self.absorb, self.db.audit.entries, 5)
            self.check(15, none.ok and none.value == [],
                       lambda: f"db.audit.entries(5) on a log with no entry answered "
                               f"{none.value if none.ok else none.error!r}, not []")
            return
        waits = self.call(None, self.absorb, self.db.audit.pending)
        self.check(15, waits.ok and [e.entry_id for e in waits.value] == [e["entry_id"] for e in pending],
                   lambda: f"db.audit.pending() answered "
                           f"{[e.entry_id for e in waits.value] if waits.ok else waits.error!r}, the fallback file "
                           f"holds {[e['entry_id'] for e in pending]} (oldest first)")
        # The log's files outside the database are private (README: mode 0600): the waiting entries, the anchor, the
        # generated key.
        audit = self.db.audit
        modes = {str(p): oct(os.lstat(p).st_mode & 0o777) for p in (audit.fallback_path, audit.anchor_path,
                                                                    self.db.config.audit_key_file)
                 if os.path.lexists(p)}
        self.check(15, all(m == oct(0o600) for m in modes.values()),
                   lambda: f"the audit log's files are not private (mode 0600): {modes}")
        chosen = everything[pick % len(everything)]
        filters: dict[str, Any] = {}
        if by in ("actor", "actor_action"):
            filters["actor"] = chosen["actor"]
        if by in ("action", "actor_action"):
            filters["action"] = chosen["action"]
        if by == "since":
            filters["since"] = chosen["ts"]
        if by == "unknown_actor":
            filters["actor"] = f"{chosen['actor']}-nobody"
        # (the whole log first, then the drawn filter: a page of the whole log is what a reader asks most)
        reads = [({}, True)] + ([(filters, by != "no_pending")] if by != "none" else [])
        for kwargs, include_pending in reads:
            self.judge_read(pending, stored, kwargs, include_pending)
        report = self.absorb(self.db.audit.verify)
        self.check(15, report.ok, lambda: f"with {len(pending)} entries waiting in the fallback file, verify() says "
                                          f"{report.verdict}: {report.reason}")
        argv = ["audit", "--limit", str(cli_limit)]
        for k, v in filters.items():
            argv += [f"--{k}", repr(v) if k == "since" else v]
        ran = self.run_command_line(argv, 15, None, admin=True)
        if ran is not None:
            code, doc = ran
            shown = [e.get("entry_id") for e in doc.get("value")] if isinstance(doc.get("value"), list) else None
            want = [e["entry_id"] for e in read_model(pending, stored, filters, True)[:cli_limit]]
            self.check(15, code == 0 and shown == want,
                       lambda: f"`reliability {' '.join(argv)}` (an administrator) exited {code} and showed {shown}, "
                               f"the file's newest are {want} ({len(stored)} in the database, {len(pending)} waiting "
                               f"in its fallback file, shown first) ({doc.get('message')})")

    def judge_read(self, pending: list[dict[str, Any]], stored: list[dict[str, Any]], filters: dict[str, Any],
                   include_pending: bool) -> None:
        """``db.audit.entries(limit, include_pending=include_pending, **filters)`` for every limit from 0 to
        one past the number of entries (up to 6; then the number of entries and one more), and the refused limits -1
        and True, against :func:`read_model`."""
        model = read_model(pending, stored, filters, include_pending)
        said = f"{len(pending)} entries waiting in the fallback file, {len(stored)} in the database, filter " \
               f"{filters or {}}{'' if include_pending else ', include_pending=False'}"

        def read_all() -> list[tuple[Any, Any]]:
            out: list[tuple[Any, Any]] = []
            total = len(pending) + len(stored)
            # (every small limit, where the waiting and the stored entries meet; then the whole log and one more)
            for limit in [-1, True, *sorted({*range(0, min(total, 6) + 2), total, total + 1})]:
                try:
                    out.append((limit, self.db.audit.entries(limit, include_pending=include_pending, **filters)))
                except ValueError as exc:
                    out.append((limit, exc))
            return out

        got = self.call(None, self.absorb, read_all)
        self.check(15, got.ok, lambda: f"db.audit.entries() failed with the database healthy ({said}): {got.error!r}")
        if not got.ok:
            return
        for limit, answer in got.value:
            if limit is True or limit < 1:
                self.check(15, isinstance(answer, ValueError),
                           lambda limit=limit, answer=answer: f"db.audit.entries(limit={limit!r}) answered {answer!r}, "
                                                              f"not ValueError (a limit is a positive whole number)")
                continue
            if isinstance(answer, ValueError):
                self.check(15, False, lambda limit=limit, answer=answer: f"db.audit.entries(limit={limit}) raised "
                                                                         f"{answer} ({said})")
                continue
            expected = model[:limit]
            ids = [e.entry_id for e in answer]
            self.check(15, ids == [e["entry_id"] for e in expected], lambda limit=limit, ids=ids, expected=expected: (
                f"db.audit.entries(limit={limit}) with {said} returned {len(ids)} entries {ids}, expected "
                f"{[e['entry_id'] for e in expected]} (waiting ones first, newest first, at most {limit})"))
            wrong = [(e.entry_id, k) for e, m in zip(answer, expected, strict=False) for k in ENTRY_FIELDS
                     if getattr(e, k) != m[k]]
            self.check(15, not wrong, lambda limit=limit, wrong=wrong: (
                f"db.audit.entries(limit={limit}) with {said}: fields differ from the files' {wrong[:3]}"))

    def stored_audit_rows(self) -> list[dict[str, Any]]:
        """The audit table as the file holds it, newest first, as entries' fields."""
        with self.raw() as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_audit'").fetchone():
                return []
            rows = conn.execute("SELECT seq, entry_id, ts, actor, action, target, details, hash, key_id "
                                "FROM reliability_audit ORDER BY seq DESC").fetchall()
        return [{"seq": r[0], "entry_id": r[1], "ts": r[2], "actor": r[3], "action": r[4], "target": r[5],
                 "details": json.loads(r[6]), "hash": r[7], "key_id": r[8], "pending": False} for r in rows]

    def fallback_records(self) -> list[dict[str, Any]]:
        """The entries waiting in the fallback file(s), oldest first, as entries' fields (not yet stored)."""
        path = self.db.audit.fallback_path
        out = []
        for p in (path.with_name(path.name + ".reconciling"), path):
            if os.path.exists(p):
                with open(p, encoding="utf-8") as fh:
                    for line in fh:
                        if line.strip():
                            d = json.loads(line)
                            out.append({**{k: d[k] for k in ("entry_id", "ts", "actor", "action", "target",
                                                              "details")},
                                        "seq": None, "hash": None, "key_id": None, "pending": True})
        return out

    # -- entries appended inside the application's own transactions ------------------------------
    @precondition(lambda self: has_audit(self) and not self.faults and not self.fallback_ids())
    @rule(form=st.sampled_from(TX_FORMS), inner=st.sampled_from(TX_FORMS), nested=st.booleans(),
          then=st.sampled_from(("write", "append", "restart")), n=st.integers(0, 12))
    def append_in_a_failed_transaction(self, form: str, inner: str, nested: bool, then: str, n: int) -> None:
        """P7/P15: ``db.audit.append(db.audit.new_entry(...))`` inside the application's transaction (README: an
        entry written atomically with other changes) with a row of kv, then the application's exception: raised in
        the transaction itself (all rolled back), or (``nested``) in a nested level of either form around the
        append, which the outer level catches and commits its kv row. Then the application goes on: a committed
        transaction with only a kv row (``write``), or one appending an entry (``append``), or a restart. The
        rolled-back entry is not in the log; the committed ones are, in order; and the log verifies: its anchor
        still names a head that is in the chain (a rollback must not leave the unwritten entry's head to be
        anchored at the next commit), and the next entry is stored, not kept aside as if the log were cut short."""
        if not self.absorb(self.db.audit.verify).ok:
            return  # (the invariant judges a log that does not verify)
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        row = (f"user-{n}", self.text())
        gone = self.db.audit.new_entry(self.pick("user_name"), "flag.set", self.pick("slug"),
                                       {"note": self.pick("sentence")})

        def enter(how: str, body: Any) -> None:
            if how == "run_in_transaction":
                self.db.run_in_transaction(body)
            else:
                with self.db.transaction():
                    body()

        def doomed() -> None:
            self.db.audit.append(gone)
            raise AppError("the application gave up after appending an audit entry")

        def outer() -> None:
            self.db.execute(sql, row)
            if not nested:
                doomed()
            try:
                enter(inner, doomed)
            except AppError:
                pass

        self.opaque_ops = True
        try:
            out = self.call(None, self.absorb, enter, form, outer)
        except AppError:
            out = None
            self.model.ledger.app_aborts += 1
        if out is not None and not out.ok:
            return  # (judged by call(): an error on a healthy runtime)
        if nested:
            self.model.kv[row[0]] = row[1]
        where = (f"a nested {inner} (caught by the outer {form}, which committed)" if nested
                 else f"{form} (rolled back)")
        if then == "restart":
            self.reopen()
        else:
            kept: list[Any] = []
            again: list[Any] = []

            def after() -> None:
                if then == "append":
                    entry = self.db.audit.new_entry("dbfault", "export", "after", {"n": n})
                    kept.append(self.db.audit.append(entry))
                    again.append(self.db.audit.append(entry))  # (idempotent by entry id: the stored one back)
                later = (f"user-{(n + 1) % 13}", self.text())
                self.db.execute(sql, later)
                kept.append(later)

            done = self.call(None, self.absorb, enter, form, after)
            self.check(15, done.ok, lambda: f"an audit entry appended in {where}; then a {form} with "
                                            f"{'an audit entry and ' if then == 'append' else ''}a kv row failed on "
                                            f"a healthy database: {done.error!r}")
            if not done.ok:
                return
            for item in kept:
                if isinstance(item, tuple):
                    self.model.kv[item[0]] = item[1]
                else:
                    self.model.audit_ids.append(item.entry_id)
            if again:
                first = next((r for r in self.stored_audit_rows() if r["entry_id"] == kept[0].entry_id), None)
                self.check(15, first is not None and all(getattr(e, k) == first[k] for e in (kept[0], again[0])
                                                         for k in ENTRY_FIELDS),
                           lambda: f"db.audit.append() returned {kept[0]} and, appended again, {again[0]}; the file "
                                   f"holds {first} (the stored entry, its seq, hash and key id, both times)")
        stored = [e["entry_id"] for e in reversed(self.stored_audit_rows())]
        self.check(15, gone.entry_id not in stored and stored == self.model.audit_ids,
                   lambda: f"an audit entry appended in {where}, then {then}: the log holds "
                           f"{'the rolled-back entry' if gone.entry_id in stored else stored[-3:]}, expected the "
                           f"committed entries {self.model.audit_ids[-3:]}")
        kv = self.stored_kv()
        self.check(6, kv.get(row[0]) == self.model.kv.get(row[0]),
                   lambda: f"an audit entry appended in {where}: kv holds {row[0]}={kv.get(row[0])!r}, expected "
                           f"{self.model.kv.get(row[0])!r}")
        report = self.absorb(self.db.audit.verify)
        self.check(15, report.ok, lambda: f"an audit entry appended in {where}, then {then}: verify() says "
                                          f"{report.verdict}: {report.reason}")
        # The next entry is stored at once (record_entry: one kept aside with no fault in force is a violation).
        self.record_entry(4)

    # -- a log cut short, and the administrator's re-anchoring ----------------------------------
    @precondition(lambda self: has_audit(self) and not self.faults and not self.fallback_ids()
                  and len(self.model.audit_ids) >= 1)
    @rule(cut=st.integers(1, 2), record=st.booleans())
    def reanchor_a_shortened_log(self, cut: int, record: bool) -> None:
        """P15 (README): entries deleted from the end of the log in the file (around the runtime) make it fail
        ``verify()`` ("shortened"); an entry recorded then is not chained onto the cut log but waits in the
        fallback file; ``db.audit.reanchor(actor, reason)`` (the administrator accepting the log as it is) appends
        one ``audit.reanchored`` entry naming the previous anchor, after which the log verifies, health names no
        audit problem, and the waiting entry is reconciled after it."""
        if not self.absorb(self.db.audit.verify).ok:
            return
        rows = self.stored_audit_rows()  # newest first
        cut = min(cut, len(rows))
        if cut < 1:
            return
        head = rows[0]["seq"]
        try:
            anchored = json.loads(self.db.audit.anchor_path.read_text(encoding="utf-8")).get("seq")
        except (OSError, ValueError, AttributeError):
            anchored = None
        if anchored != head:
            return  # (an anchor that lags, allowed, would still be in the cut log: not this rule's case)
        with self.raw() as conn:
            conn.executemany("DELETE FROM reliability_audit WHERE seq = ?", [(r["seq"],) for r in rows[:cut]])
        removed = [r["entry_id"] for r in rows[:cut]]
        self.model.audit_ids = [i for i in self.model.audit_ids if i not in removed]
        report = self.absorb(self.db.audit.verify)
        self.check(15, not report.ok, f"the audit log verifies with its last {cut} entries deleted in the file")
        self.opaque_ops = True
        if record:
            out = self.call(None, self.absorb, self.db.audit.record, "dbfault", "export", "during")
            self.check(15, out.ok and out.value.pending, lambda: (
                f"an entry recorded on an audit log cut short (its anchored head {head} deleted) was "
                f"{'stored in the database' if out.ok else f'refused: {out.error!r}'}: it must wait in the fallback "
                "file until the log is re-anchored"))
            if out.ok:
                waiting = out.value.entry_id
            else:
                return
            health = self.absorb(self.db.health)
            self.check(15, any("audit" in r for r in health.reasons),
                       lambda: f"an audit log cut short refuses entries, yet health names no audit problem: "
                               f"{health.reasons}")
        out = self.call(None, self.absorb, self.db.audit.reanchor, "dbfault-admin", "the cut was investigated")
        self.check(15, out.ok, lambda: f"db.audit.reanchor() failed on a healthy database: {out.error!r}")
        if not out.ok:
            return
        entry = out.value
        previous = entry.details.get("previous_anchor", {})
        self.check(15, entry.action == "audit.reanchored" and entry.actor == "dbfault-admin"
                   and previous.get("seq") == head and previous.get("state") == "ok",
                   lambda: f"db.audit.reanchor() appended {entry.action} by {entry.actor} naming the previous anchor "
                           f"{previous}, expected audit.reanchored by dbfault-admin naming entry {head} (ok)")
        self.model.audit_ids.append(entry.entry_id)
        if record:
            self.model.audit_ids.append(waiting)  # (the invariant reconciles it, after the re-anchoring entry)
        report = self.absorb(self.db.audit.verify)
        self.check(15, report.ok, lambda: f"the audit log re-anchored by the administrator does not verify: "
                                          f"{report.verdict}: {report.reason}")
        health = self.absorb(self.db.health)
        self.check(15, not any("audit log" in r for r in health.reasons),
                   lambda: f"the audit log was re-anchored, yet health still says {health.reasons}")

    @precondition(lambda self: has_audit(self) and not self.faults)
    @rule(what=st.sampled_from(tuple(INVALID_ENTRIES)))
    def record_an_invalid_entry(self, what: str) -> None:
        """P15: ``db.audit.record`` of an invalid entry (an empty or blank actor or action, names or a target
        longer than allowed, a target that is not text, details that are not a dict or not JSON) raises
        ``ValueError`` (the caller's mistake, not a database fault) and writes nothing: no row, no line in the
        fallback file."""
        args = INVALID_ENTRIES[what]
        before = ([e["entry_id"] for e in self.stored_audit_rows()], self.fallback_ids())
        self.opaque_ops = True
        try:
            entry = self.absorb(self.db.audit.record, *args)
            raised: BaseException | None = None
        except Exception as exc:  # judged below: only ValueError is the answer
            entry, raised = None, exc
        self.check(15, isinstance(raised, ValueError),
                   lambda: f"db.audit.record() of an entry with {what} answered "
                           f"{entry if raised is None else repr(raised)}, not ValueError")
        if entry is not None:
            self.model.audit_ids.append(entry.entry_id)  # (judged above; the log's invariant follows it)
        after = ([e["entry_id"] for e in self.stored_audit_rows()], self.fallback_ids())
        self.check(15, after == before or entry is not None,
                   lambda: f"db.audit.record() of an entry with {what} was refused, yet the log changed")
        self.record_every_invalid_entry()

    def record_every_invalid_entry(self) -> None:
        """P15 on every kind of invalid argument the validator refuses (:data:`INVALID_ENTRIES` and
        :data:`INVALID_DETAILS`), in turn: each ``db.audit.record`` raises ``ValueError`` saying the entry is
        invalid and naming the argument at fault (not an error of the driver or the JSON encoder met half-way
        through storing it), and afterwards the log is as it was: the same stored entries, the fallback file(s)
        untouched (no line, no file made), ``verify()`` saying what it said before."""
        audit = self.db.audit
        fallback = audit.fallback_path
        files = [p for p in (fallback, fallback.with_name(fallback.name + ".reconciling"))]

        def state() -> tuple[Any, ...]:
            return ([e["entry_id"] for e in self.stored_audit_rows()],
                    [p.read_bytes() if os.path.exists(p) else None for p in files])

        before, verdict = state(), self.absorb(audit.verify)
        wrong = []
        for what, args in (*INVALID_ENTRIES.items(), *INVALID_DETAILS.items()):
            field = next(f for f in ("actor", "action", "target", "details") if f in what)
            try:
                entry = self.absorb(audit.record, *args)
            except ValueError as exc:
                if not str(exc).startswith("invalid audit entry") or field not in str(exc):
                    wrong.append(f"{what}: {type(exc).__name__}({str(exc)[:120]!r})")
                continue
            except Exception as exc:  # the finding: any other answer
                wrong.append(f"{what}: {type(exc).__name__}({str(exc)[:120]!r})")
                continue
            self.model.audit_ids.append(entry.entry_id)  # (judged below; the log's invariant follows it)
            wrong.append(f"{what}: stored as {entry.entry_id}")
        self.check(15, not wrong, lambda: "db.audit.record() of invalid entries did not raise ValueError('invalid "
                                          f"audit entry: ...') naming the argument at fault: {wrong}")
        after = self.absorb(audit.verify)
        self.check(15, state() == before and (after.ok, after.verdict) == (verdict.ok, verdict.verdict),
                   lambda: f"db.audit.record() of invalid entries was refused, yet the log changed (verify() said "
                           f"{verdict.verdict}, now {after.verdict}: {after.reason})")
