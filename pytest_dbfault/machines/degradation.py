"""P14 command continuity: commands that need no database keep working; writes are queued, then replayed."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from ..faults.base import FaultError
from .base import swarm
from .workload import Workload

#: Outages a burst of commands (or audit entries) runs through.
OUTAGES = ("locked", "disk_full", "disconnect_rename", "disconnect_delete")


#: An actor the application's permission callback (``admin.register(db, permission=...)``) lets set flags, though it
#: is not in ``RELIABILITY_ADMIN_ACTORS``: both ways of being authorized must hold at every entry point.
DELEGATE = "delegate-3"


def application_permission(actor: str, command: str) -> bool:
    """The application's own check, consulted for actors not in the configured list: :data:`DELEGATE` may run
    ``flags.set`` and nothing else; nobody else may run anything."""
    return actor == DELEGATE and command == "flags.set"


def has_commands(self: Any) -> bool:
    return self.db is not None and getattr(self.db, "commands", None) is not None


def _deposit(db: Any, account: int, amount: int) -> int:
    """A write that is not idempotent by itself: applied twice, the balance shows it."""
    db.execute("CREATE TABLE IF NOT EXISTS balances (account INTEGER PRIMARY KEY, amount INTEGER NOT NULL)")
    return db.execute("INSERT INTO balances (account, amount) VALUES (?, ?) ON CONFLICT(account) DO UPDATE SET "
                      "amount = amount + excluded.amount", (account, amount)).rowcount


def _event(line: str) -> dict[str, Any] | None:
    """One line of the write queue file as the runtime reads it: a JSON record, or None (a blank or damaged line,
    which the runtime skips)."""
    try:
        event = json.loads(line) if line.strip() else None
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class DegradationMixin(Workload):
    """Registers three commands (no database, read, write) and runs them under faults."""

    def after_start(self) -> None:
        super().after_start()
        self.queue_acks: list[tuple[str, str]] = []
        #: acknowledged deposits per account, and how many deposits were sent (their idempotency keys)
        self.balances: dict[int, int] = {}
        self.deposits = 0
        if has_commands(self):
            self.opaque_ops = True
            self.register_commands()

    def after_reopen(self) -> None:
        super().after_reopen()
        if has_commands(self):
            self.register_commands()

    def register_commands(self) -> None:
        from reliability import admin
        from reliability.degraded import Needs

        commands = self.db.commands
        commands.recheck_interval = 0.0  # probe on every command: no wall-clock waits in the machine
        # As an application with audited writes does: a replay then reconciles the audit fallback first
        # (``audit_first``), the path where an outage's entries can be lost (issue #15).
        admin.register(self.db, permission=application_permission)
        commands.register("greet", Needs.NONE, lambda db, name: f"hello {name}")
        commands.register("lookup", Needs.READ,
                          lambda db, key: (db.fetch_one("SELECT v FROM kv WHERE k = ?", (key,)) or [None])[0])
        commands.register("deposit", Needs.WRITE, _deposit)
        commands.register("store", Needs.WRITE,
                          lambda db, key, value: db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)",
                                                            (key, value)).rowcount)

    @precondition(has_commands)
    @rule()
    def greet(self) -> None:
        """P14: a command that needs no database answers, whatever the database's state."""
        name = self.pick("first_name")
        result = self.db.commands.run("greet", name)
        self.check(14, result.status == "ok" and result.value == f"hello {name}",
                   f"'greet' answered {result.status!r} {result.value!r} ({result.message})")

    @precondition(swarm("commands"))
    @precondition(has_commands)
    @rule(n=st.integers(0, 12))
    def store(self, n: int) -> None:
        """P14: a write command either commits, or is queued durably with a clear message."""
        key, value = f"user-{n}", self.text()
        before = len(self.db.commands.queue)
        result = self.absorb(self.db.commands.run, "store", key, value)
        self.check(14, result.status in ("ok", "queued"),
                   f"'store' answered {result.status!r}: {result.message}")
        if result.status == "queued":
            self.check(14, bool(result.message) and len(self.db.commands.queue) >= before + 1
                       and self.queue_file_has(result.queue_key),
                       f"a queued write is not in the durable queue file (key {result.queue_key})")
        self.model.kv[key] = value  # acknowledged either way: it must be in the file once replayed

    @precondition(swarm("commands"))
    @precondition(has_commands)
    @rule(n=st.integers(0, 12))
    def lookup(self, n: int) -> None:
        key = f"user-{n}"
        result = self.absorb(self.db.commands.run, "lookup", key)
        self.check(14, result.status in ("ok", "unavailable", "error"),
                   f"'lookup' answered {result.status!r}: {result.message}")
        if result.status == "ok" and not len(self.db.commands.queue):
            self.check(14, result.value == self.model.kv.get(key),
                       f"'lookup' gave {result.value!r}, acknowledged {self.model.kv.get(key)!r}")

    @precondition(swarm("outage"))
    @precondition(lambda self: has_commands(self) and not self.faults)
    @rule(outage=st.sampled_from(OUTAGES), keys=st.lists(st.integers(0, 3), min_size=2, max_size=4),
          param=st.integers(0, 5))
    def commands_during_outage(self, outage: str, keys: list[int], param: int) -> None:
        """A targeted rare sequence: two to four write commands (often the same key) during one outage,
        then the heal. Each is acknowledged (ok or queued); the replay keeps their order (P14)."""
        if not self.inject(outage, param):
            return
        for n in keys:
            self.store(n)
        self.greet()
        self.heal(outage)

    #: Whether the admin and deposit rules run: the admin rules write audit entries (``flag.set``,
    #: ``admin.denied``) that the machines counting every audit entry (``AuditMixin``'s P15) did not record
    #: themselves, and the deposits keep a table of their own.
    admin_checks: ClassVar[bool] = False

    @precondition(swarm("commands"))
    @precondition(lambda self: has_commands(self) and self.admin_checks)
    # ``again``: an administrator corrects the value at once (a flag set twice: the second audit entry's
    # ``previous``, P15, which one default run in three met nowhere when it took two separate draws of one flag).
    @rule(allowed=st.booleans(), n=st.integers(0, 3), value=st.integers(0, 9),
          via=st.sampled_from(("api", "registry", "run_as")), again=st.booleans())
    def set_flag(self, allowed: bool, n: int, value: int, via: str, again: bool) -> None:
        """P14 under any fault: the admin command ``flags.set`` keeps its rules at every entry point (the
        ``admin`` API, the command registry with the actor as an argument, ``run_as``). An administrator's
        change is applied or queued; anyone else is denied, changes nothing, and the denial is audited. An actor is
        an administrator when it is in ``RELIABILITY_ADMIN_ACTORS`` or the application's permission callback says so
        (``n`` 3 of the allowed: :data:`DELEGATE`, whom only the callback allows; the others it refuses). ``n`` 3
        of the others gives an actor name longer than an actor may have (200 characters): refused as ``rejected``
        without storing the name anywhere (not even in the denial's audit entry)."""
        from reliability import admin
        from reliability.names import MAX_ACTOR

        admins = sorted(self.db.config.admin_actor_set)
        actor = (DELEGATE if n == 3 else admins[0]) if allowed and admins else f"mallory-{n}"
        invalid = not allowed and n == 3
        if invalid:
            actor = "m" * (MAX_ACTOR + 1)
        authorized = actor in self.db.config.admin_actor_set or application_permission(actor, "flags.set")
        name = f"flag-{n}"
        for v in ((value, (value + 1) % 10) if again and authorized else (value,)):
            if via == "api":
                result = self.absorb(admin.set_flag, self.db, name, v, actor)
            elif via == "registry":
                result = self.absorb(self.db.commands.run, "flags.set", name, v, actor)
            else:
                result = self.absorb(self.db.commands.run_as, actor, "flags.set", name, v)
            if authorized:
                self.check(14, result.status in ("ok", "queued"),
                           f"flags.set ({via}) by {actor!r}, an administrator, answered {result.status!r}: "
                           f"{result.message}")
                self.model.flags[name] = v
        who = f"an actor name of {len(actor)} characters" if invalid else repr(actor)
        if not authorized:
            self.check(14, result.status == ("rejected" if invalid else "denied"),
                       f"flags.set by {who}, who is no administrator, answered {result.status!r} through {via} "
                       f"({result.message[:200]})")
        # The public question (``admin.is_authorized``, what an application asks before its own admin action) is
        # an entry point too: it answers as the commands decide, and an invalid name is never an administrator.
        # (Asked after the commands answered: they are judged first.)
        asked = admin.is_authorized(self.db, actor, "flags.set")
        self.check(14, asked == authorized,
                   f"admin.is_authorized({who}, 'flags.set') answered {asked}, but the commands "
                   f"{'allow' if authorized else 'refuse'} it")
        # ... and an invalid name, asked on every call (no database involved: free), since the drawn one is invalid
        # one call in eight: the question never reaches the commands' own validation, so only it can show this.
        if not invalid:
            bad = "m" * (MAX_ACTOR + 1)
            self.check(14, not admin.is_authorized(self.db, bad, "flags.set"),
                       f"admin.is_authorized(an actor name of {len(bad)} characters, 'flags.set') answered True: "
                       "every command refuses that name")
        if authorized:
            return
        if invalid and not self.faults:  # (under a fault the log may not be readable: judged without one)
            stored = [e for e in self.absorb(self.db.audit.entries, 50) if e.actor == actor]
            self.check(14, not stored, f"flags.set by {who} was refused, yet the name is in the audit log "
                                       f"({[e.action for e in stored]})")
        elif not self.faults:
            denied = self.absorb(self.db.audit.entries, 20, actor=actor, action="admin.denied")
            self.check(14, any(e.target == name for e in denied),
                       f"the denial of flags.set {name!r} to {actor!r} ({via}) is not in the audit log")

    @precondition(swarm("commands"))
    @precondition(lambda self: has_commands(self) and self.admin_checks)
    @rule(allowed=st.sampled_from((True, False, True)), n=st.integers(0, 3), value=st.integers(0, 9),
          outage=st.sampled_from(("none", "locked", "disconnect_rename", "locked")), param=st.integers(0, 5),
          on_behalf=st.booleans(), then=st.sampled_from(("nothing", "direct", "restart", "again")))
    def flags_set_from_the_command_line(self, allowed: bool, n: int, value: int, outage: str, param: int,
                                        on_behalf: bool, then: str) -> None:
        """P14 at the operator's entry point, a second writer of the shared queue: ``reliability flags set`` run
        beside the running runtime (its own manager on the same file and ``.env``), during an outage or not.

        An administrator's change exits 0 (saved: in the file at once) or 5 (queued in the queue file the
        runtime shares); the runtime saves a queued one by itself once the database is back (its next command
        notices the other process's write), before a later change of the same flag, so the later one wins.
        Anyone else is refused (exit 6 when the command could look), changes nothing and, with no fault,
        the refusal is audited. Any other exit must have changed nothing either (checked by the invariant).
        An administrator and a lock are drawn twice as often as the rest (a targeted weight): the queued change
        beside a running runtime is the case this rule is for. ``then="again"``: the application runs a read
        command, and the operator changes the flag again, in an outage of its own: the second change meets a
        runtime that has read the queue file before (a runtime that notices only a file it has not seen yet
        misses it)."""
        name = f"flag-{n}"
        self.cli_set_flag(allowed, name, value, outage, param, on_behalf)
        if then == "again":
            self.lookup(n)
            self.cli_set_flag(allowed, name, value + 1, outage, param + 1, on_behalf)
        elif then == "direct":
            # The application's administrator changes the same flag right after: a change the command line
            # queued earlier must not land after this one and overwrite it.
            admins = sorted(self.db.config.admin_actor_set)
            if admins:
                from reliability import admin

                result = self.absorb(admin.set_flag, self.db, name, value + 10, admins[0])
                self.check(14, result.status in ("ok", "queued"),
                           f"after the command line's flags set of {name!r}: the application's flags.set "
                           f"answered {result.status!r}: {result.message}")
                self.model.flags[name] = value + 10
        elif then == "restart" and not self.faults:
            self.db.close()
            self.db = self.open_runtime(self.config)
            self.after_reopen()

    def cli_set_flag(self, allowed: bool, name: str, value: int, outage: str, param: int, on_behalf: bool) -> None:
        """One ``reliability flags set`` of :meth:`flags_set_from_the_command_line`, judged."""
        from reliability.cli import os_user

        # Under the faults already in force, or an outage of the rule's own (the runtime's fault reaches the
        # command line when it is the file's: a lock, a moved file; not a full disk of the runtime's connection).
        injected = outage != "none" and not self.faults and self.inject(outage, param)
        in_force = self.active_fault_names  # (what the command ran under: its checks are labelled with it)
        argv = ["flags", "set", "--type", "json", *(["--actor", "ops-admin"] if on_behalf else []), name, str(value)]
        try:
            ran = self.run_command_line(argv, 14, in_force, changes=True, admin=allowed)
        finally:
            if injected:
                self.heal(outage)
        if ran is None:
            return
        code, doc = ran
        said = f"`reliability {' '.join(argv)}` ({'an administrator' if allowed else 'no administrator'}, " \
               f"{', '.join(in_force) or 'no fault'}) exited {code}: {doc.get('message')}"
        if allowed:
            self.check(14, code in (0, 5) or bool(in_force), said, faults=in_force)
            if code in (0, 5):
                self.model.flags[name] = value
            if code == 0:
                stored = self.stored_flags().get(name)
                self.check(14, stored == value, f"{said}, but the file holds {stored!r}", faults=in_force)
        else:
            self.check(14, code not in (0, 5) and (code == 6 or bool(in_force)), said, faults=in_force)
            if not in_force:
                denied = self.absorb(self.db.audit.entries, 20, actor=os_user(), action="admin.denied")
                self.check(14, any(e.target == name for e in denied), f"{said}, and the refusal is not audited")

    @precondition(swarm("commands"))
    @precondition(lambda self: has_commands(self) and self.admin_checks and not self.faults
                  and not len(self.db.commands.queue))
    @rule(n=st.integers(0, 3), value=st.integers(0, 9), edit=st.sampled_from(("value", "actor", "name")),
          param=st.integers(0, 5))
    def tamper_with_a_queued_flag(self, n: int, value: int, edit: str, param: int) -> None:
        """P14: an administrator's ``flags.set`` queued during a lock, then edited in the queue file while the
        runtime is stopped (its value, its actor, or the flag it names) by someone without the key: the next
        runtime refuses it on replay, sets it aside, and applies nothing of it. A line of the file is damaged too (a
        record cut off, at a drawn place): the restart skips it, and its ERROR record names the file and that line's
        number (counted from 1, every line of the file counted), so the operator can find it."""
        from reliability import admin

        admins = sorted(self.db.config.admin_actor_set)
        if not admins or not self.inject("locked", param):
            return
        name = f"flag-{n}"
        try:
            result = self.absorb(admin.set_flag, self.db, name, value, admins[0])
        finally:
            self.heal("locked")
        if result.status == "ok":  # (the lock did not reach this write)
            self.model.flags[name] = value
        if result.status != "queued" or result.queue_key is None:
            return
        key = result.queue_key
        self.db.close()
        path = self.db.commands.queue.path
        lines = path.read_text(encoding="utf-8").splitlines()
        target = name
        for i, line in enumerate(lines):
            event = _event(line)
            if event is not None and event.get("op") == "put" and event.get("key") == key:
                args = event["args"]  # flags.set's (name, value, actor)
                if edit == "value":
                    args[1] = value + 100
                elif edit == "actor":
                    args[2] = "mallory-queue"
                else:
                    args[0] = target = f"flag-{n}-edited"
                lines[i] = json.dumps(event, ensure_ascii=False)
        # And a line of the file damaged beside it (a record cut off mid-way, its newline kept), at a drawn place.
        garbled = param % (len(lines) + 1)
        lines.insert(garbled, '{"op": "put", "key": "' + key[: 4 + param])
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        logs0 = len(self.logs.records)
        self.db = self.open_runtime(self.config)
        self.after_reopen()
        said = [r.getMessage() for r in self.logs.records[logs0:] if r.levelno >= 40 and " is unreadable" in
                r.getMessage()]
        # P14 for the operator who repairs the file: the restart reads it from the top, and says which line it skips.
        self.check(14, len(said) == 1 and f"{path} line {garbled + 1} is unreadable" in said[0], lambda: (
            f"line {garbled + 1} of the write queue file {path} ({len(lines)} lines) is no JSON; the restart that read "
            f"it logged {said} (one ERROR record must name that file and line)"))
        self.settle()
        flags = self.stored_flags()
        self.check(14, flags.get(target) == self.model.flags.get(target), lambda: (
            f"a queued flags.set edited in the queue file ({edit}) was replayed: {target!r} is "
            f"{flags.get(target)!r}, acknowledged {self.model.flags.get(target)!r}"))
        self.check(14, key in self.db.commands.queue.failed,
                   f"a queued flags.set edited in the queue file ({edit}) was not set aside on replay")
        # And a line damaged the same way appended later, by another process, while this runtime runs (it has read
        # the file so far): its catch-up reads only what was appended, and names that line by its number in the file.
        queue = self.db.commands.queue
        queue.refresh()
        if not path.exists() or not path.stat().st_size:
            return
        size = path.stat().st_size
        with open(path, "a", encoding="utf-8") as fh:
            fh.write('{"op": "put", "key": "' + key[: 4 + param] + "\n")
        number = len(path.read_bytes().splitlines())
        logs0 = len(self.logs.records)
        queue.refresh()
        said = [r.getMessage() for r in self.logs.records[logs0:] if r.levelno >= 40 and " is unreadable" in
                r.getMessage()]
        self.check(14, len(said) == 1 and f"{path} line {number} is unreadable" in said[0], lambda: (
            f"line {number} of the write queue file {path}, damaged, was appended by another process while the "
            f"runtime ran; its catch-up (WriteQueue.refresh) logged {said} (one ERROR record must name that file and "
            f"line)"))
        # (That line taken out again, as the other process's operator would: a later restart of this rule must meet
        # only the line it damages itself. The runtime reads the shortened file anew.)
        with open(path, "r+b") as fh:
            fh.truncate(size)
        queue.refresh()

    @precondition(swarm("commands"))
    @precondition(lambda self: has_commands(self) and self.admin_checks)
    @rule(account=st.integers(0, 2), amount=st.integers(1, 9), sends=st.integers(1, 3),
          outage=st.sampled_from(("none", *OUTAGES)), param=st.integers(0, 5))
    def deposit(self, account: int, amount: int, sends: int, outage: str, param: int) -> None:
        """P14: a write sent with an idempotency key, and sent again by a client that did not hear the answer
        (within an outage, or once across its heal), takes effect exactly once: directly, from the queue, or
        answered "already saved"."""
        self.deposits += 1
        key = f"deposit-{self.deposits}"
        injected = outage != "none" and not self.faults and self.inject(outage, param)
        statuses = []
        for i in range(sends):
            if injected and i == sends - 1 and sends > 1:
                self.heal(outage)  # the last send after the heal: the queued one replays first
                injected = False
            result = self.absorb(self.db.commands.run, "deposit", account, amount, idempotency_key=key)
            statuses.append(result.status)
            self.check(14, result.status in ("ok", "queued"),
                       f"'deposit' with key {key} (send {i + 1} of {sends}) answered {result.status!r}: "
                       f"{result.message}")
        if injected:
            self.heal(outage)
        if any(s in ("ok", "queued") for s in statuses):
            self.balances[account] = self.balances.get(account, 0) + amount

    def stored_balances(self) -> dict[int, int]:
        """The balances in the database file, read around the runtime."""
        with self.raw() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'balances'").fetchone() is None:
                return {}
            return dict(conn.execute("SELECT account, amount FROM balances").fetchall())

    def stored_flags(self) -> dict[str, Any]:
        """The flags in the database file, read around the runtime."""
        with self.raw() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reliability_flags'").fetchone() is None:
                return {}
            return {k: json.loads(v) for k, v in conn.execute("SELECT name, value FROM reliability_flags")}

    def queue_file_has(self, key: str | None) -> bool:
        path = self.db.commands.queue.path
        try:
            with open(path, encoding="utf-8") as fh:
                return key is not None and key in fh.read()
        except OSError:
            return False

    def waiting_in_queue_file(self) -> list[str]:
        """The commands of the writes the queue file holds that are neither done nor set aside, read from the
        file around the runtime (what every process sharing it would replay)."""
        try:
            with open(self.db.commands.queue.path, encoding="utf-8") as fh:
                events = [event for event in map(_event, fh) if event is not None]
        except FileNotFoundError:
            return []
        waiting = {e["key"]: e["command"] for e in events if e.get("op") == "put"}
        for e in events:
            if e.get("op") in ("done", "failed"):
                waiting.pop(e.get("key"), None)
        return list(waiting.values())

    def settle(self) -> None:
        super().settle()
        # As the application's next command does: ``degraded`` also notices writes another process (the
        # command line) queued in the shared file since the runtime last looked.
        if has_commands(self) and self.db.commands.degraded:
            self.absorb(self.db.commands.recover, force=True)

    @precondition(lambda self: has_commands(self) and not self.faults)
    @invariant()
    def p14_command_continuity(self) -> None:
        """With the faults healed, the backlog replays and every acknowledged write is in the file."""
        self.settle()
        pending = len(self.db.commands.queue)
        self.check(14, pending == 0, f"{pending} queued write(s) not replayed after the faults healed")
        waiting = self.waiting_in_queue_file()
        self.check(14, not waiting, lambda: f"{len(waiting)} queued write(s) still wait in the queue file after the "
                                            f"faults healed, unseen by the runtime: {waiting}")
        stored = self.stored_kv()
        self.check(14, stored == self.model.kv, lambda: f"after replay the file differs from acknowledged writes: "
                                                        f"{set(stored.items()) ^ set(self.model.kv.items())}")
        if self.admin_checks:
            balances = self.stored_balances()
            self.check(14, balances == self.balances,
                       lambda: f"after replay the balances in the file are {balances}, acknowledged "
                               f"{self.balances} (a write sent again with its idempotency key applied twice, "
                               "or one lost)")
            flags = self.stored_flags()
            self.check(14, flags == self.model.flags,
                       lambda: f"after replay the flags in the file are {flags}, acknowledged {self.model.flags} "
                               "(a change no administrator made, or one lost)")
            self.check_flag_history()

    def check_flag_history(self) -> None:
        """P15: the audit log tells each flag's history, read through ``admin.audit`` (the administrators' entry
        point, filtered to ``flag.set``): oldest first, every entry's ``previous`` is the value the entry before it
        set (None for the first), its actor is an administrator, and the last value is the acknowledged one. Read
        ``since`` the time of one of those entries, the log gives exactly the entries at or after that time (README
        ``reliability audit --since``: "at or after"), the entry itself included."""
        from reliability import admin
        from reliability.cli import os_user

        admins = sorted(self.db.config.admin_actor_set)
        if not admins or not self.model.flags:
            return
        read = self.absorb(admin.audit, self.db, 10_000, action="flag.set", caller=admins[0])
        self.check(15, read.status == "ok", lambda: f"an administrator's audit read answered {read.status!r}: "
                                                    f"{read.message}")
        if read.status != "ok":
            return
        history: dict[str, Any] = {}
        # (The command line's actor is the OS user, an administrator in its .env; the permission callback's one.)
        allowed = {*admins, os_user(), DELEGATE}
        for entry in reversed(read.value):
            details = entry.details or {}
            before = history.get(entry.target)
            self.check(15, entry.action == "flag.set",
                       f"audit(action='flag.set') returned an entry of action {entry.action!r}")
            self.check(15, details.get("previous") == before,
                       f"the audit entry of flag {entry.target!r} set to {details.get('value')!r} says the previous "
                       f"value was {details.get('previous')!r}; the entry before it set {before!r}")
            self.check(15, entry.actor in allowed,
                       f"flag {entry.target!r} was set by {entry.actor!r} (audited), who is no administrator")
            history[entry.target] = details.get("value")
        self.check(15, all(history.get(name) == value for name, value in self.model.flags.items()),
                   lambda: f"the audit log's flag.set entries end at {history}, the acknowledged flags are "
                           f"{self.model.flags}")
        if read.value:
            since = read.value[len(read.value) // 2].ts
            later = self.absorb(admin.audit, self.db, 10_000, action="flag.set", since=since, caller=admins[0])
            expected = [e.entry_id for e in read.value if e.ts >= since]
            got = [e.entry_id for e in later.value or []] if later.status == "ok" else None
            self.check(15, got is None or got == expected, lambda: (
                f"admin.audit(action='flag.set', since={since!r}) gave {len(got or [])} entries, not the "
                f"{len(expected)} at or after that time (the entry of that time included)"))


class DegradationMachine(DegradationMixin):
    """Commands under lock, disk-full and file-moved faults."""

    core_groups = frozenset(("commands", "outage"))
    admin_checks = True
    settings_overrides: ClassVar[dict[str, Any]] = {"admin_actors": "ops-admin"}
    fault_kinds = ("none", "locked", "disk_full", "disconnect_rename", "disconnect_delete")

    def make_config(self, **overrides: Any) -> Any:
        """The machine's settings, the write queue two folders deep that do not exist yet: the queue makes its own
        folders (0700) at its first queued write (the ninth mutant sample: with ``parents=False`` the first write
        queued in an outage failed, and every machine used a queue beside the database)."""
        import os

        return super().make_config(**{"write_queue_path": os.path.join(self.dir, "queued", "writes", "queue.jsonl"),
                                      **overrides})

    @precondition(lambda self: has_commands(self) and not self.faults)
    @rule(outage=st.sampled_from(OUTAGES), first=st.integers(0, 12), then=st.integers(0, 12),
          param=st.integers(0, 5), interval=st.sampled_from((0.0, 0.005)))
    def served_once_the_outage_is_over(self, outage: str, first: int, then: int, param: int,
                                       interval: float) -> None:
        """P14 after an outage: a write command queued during it, the fault healed, the recheck interval passed;
        the next write command is served (answered ``ok``, not queued) and the backlog is replayed before it
        (the queue is empty). The application does nothing but send commands: the recheck is what ends the
        degraded mode, so a recheck that never fires again leaves every later write queued behind the backlog
        (the invariant's forced replay alone would hide it). The interval is 0 (probe at every command) or
        5 ms, waited out for real (the registry reads the monotonic clock, not the machine's fake one)."""
        import time

        commands = self.db.commands
        self.operator_flag_under(outage, first, then, param)
        if not self.inject(outage, param):
            return
        try:
            self.store(first)
        finally:
            self.heal(outage)
        commands.recheck_interval = interval
        try:
            if interval:
                time.sleep(interval * 1.5)
            key, value = f"user-{then}", self.text()
            result = self.absorb(commands.run, "store", key, value)
        finally:
            commands.recheck_interval = 0.0  # (the machine's setting: see register_commands)
        if result.status in ("ok", "queued"):
            self.model.kv[key] = value
        pending = len(commands.queue)
        self.check(14, result.status == "ok" and pending == 0,
                   f"after the {outage} healed and the recheck interval ({interval} s) passed, a write command "
                   f"answered {result.status!r} ({result.message}) with {pending} write(s) still queued: the "
                   "backlog must be replayed and the command served")

    def operator_flag_under(self, outage: str, n: int, value: int, param: int) -> None:
        """Under a lock (the outage the command line meets too: a moved file or a full disk of the runtime's own does
        not queue its change), an administrator's ``reliability flags set`` first (in each rule of this machine that
        queues writes during a lock, moved file or deleted file), judged as
        :meth:`flags_set_from_the_command_line` judges it: exit 5 when the change is only queued, 0 only when the
        file holds it; the runtime saves a queued change with the backlog. Since session 28: that rule alone is drawn
        about five times a default run, a locked administrator's change in a third of them, and some runs drew none
        (planted bug ``p14_cli_queued_exits_0`` missed)."""
        if outage == "locked":
            self.cli_set_flag(True, f"flag-{n % 4}", value % 10, outage, param, False)

    @precondition(lambda self: has_commands(self) and not self.faults)
    # (Not disk_full: its headroom often takes one small write, which is then saved, not queued: nothing to judge.)
    @rule(outage=st.sampled_from(("locked", "disconnect_rename", "disconnect_delete")), n=st.integers(0, 12),
          param=st.integers(0, 5), interval=st.sampled_from((0.0, 0.005)))
    def read_once_the_outage_is_over(self, outage: str, n: int, param: int, interval: float) -> None:
        """P14 after an outage, seen by a reader: a write command queued during it, the fault healed, the recheck
        interval passed; a read command of the same row answers the acknowledged value. The user was told the
        change "will be saved automatically when the database is available again": once it is, a command that
        reads (served, not ``unavailable``) must not answer the value the change replaced, so the backlog replays
        before the read, as it does before a write. The interval is 0 (probe at every command) or 5 ms, waited
        out for real (the registry reads the monotonic clock)."""
        import time

        commands = self.db.commands
        self.operator_flag_under(outage, n, param, param)
        if not self.inject(outage, param):
            return
        try:
            self.store(n)  # (checks it is acknowledged: ok, or queued durably)
        finally:
            self.heal(outage)
        key = f"user-{n}"
        want = self.model.kv.get(key)
        commands.recheck_interval = interval
        try:
            if interval:
                time.sleep(interval * 1.5)
            result = self.absorb(commands.run, "lookup", key)
        finally:
            commands.recheck_interval = 0.0  # (the machine's setting: see register_commands)
        pending = len(commands.queue)
        self.check(14, result.status == "ok" and result.value == want, lambda: (
            f"after the {outage} healed and the recheck interval ({interval} s) passed, a read command of {key!r} "
            f"answered {result.status!r} {result.value!r} ({result.message}) with {pending} write(s) still queued; "
            f"the write acknowledged during the outage is {want!r}"))

    #: How the later write of :meth:`the_later_write_wins` is made: a write command, or a direct write through
    #: each entry point the README says replays the backlog first.
    LATER_BY = st.sampled_from(("execute", "transaction", "run_in_transaction", "command"))
    #: What replays whatever still waits after it: the next write command, a read command, ``replay()``,
    #: ``recover(force=True)``, a restart (then a read command), or nothing more than the invariant's settle.
    REPLAYED_BY = st.sampled_from(("command", "read", "replay", "recover", "restart", "nothing"))

    #: The burst of :meth:`the_later_write_wins`: after its first write (of ``user-n``), up to two more, each of
    #: ``user-n`` (False) or ``user-(n+1)`` (True).
    BURST = st.lists(st.booleans(), min_size=0, max_size=2)
    #: Whether the later write is made while the outage still holds (a third of the time).
    DURING = st.sampled_from((False, False, True))

    @precondition(lambda self: has_commands(self) and not self.faults)
    @rule(n=st.integers(0, 12), burst=BURST, later=LATER_BY, replayed=REPLAYED_BY, param=st.integers(0, 5),
          during=DURING)
    def the_later_write_wins_over_one_queued_during_a_lock(self, n: int, burst: list[bool], later: str,
                                                           replayed: str, param: int, during: bool) -> None:
        """See :meth:`the_later_write_wins`, during a lock (another connection's write or exclusive lock)."""
        self.the_later_write_wins("locked", n, burst, later, replayed, param, during)

    @precondition(lambda self: has_commands(self) and not self.faults)
    @rule(outage=st.sampled_from(("disconnect_rename", "disconnect_delete", "disk_full")), n=st.integers(0, 12),
          burst=BURST, later=LATER_BY, replayed=REPLAYED_BY, param=st.integers(0, 5), during=DURING)
    def the_later_write_wins_over_one_queued_while_unavailable(self, outage: str, n: int, burst: list[bool],
                                                               later: str, replayed: str, param: int,
                                                               during: bool) -> None:
        """See :meth:`the_later_write_wins`, while the file is moved away, deleted, or the disk is full."""
        self.the_later_write_wins(outage, n, burst, later, replayed, param, during)

    def the_later_write_wins(self, outage: str, n: int, burst: list[bool], later: str, replayed: str,
                             param: int, during: bool) -> None:
        """P14: writes land in the order their callers were answered. One to three write commands during an outage
        (of ``user-n``, some of ``user-(n+1)``), each acknowledged (``ok``, or ``queued``: "will be saved
        automatically"); the outage healed, a later write of ``user-n``: a write command, or a direct write
        (``db.execute``, ``db.transaction()``, ``db.run_in_transaction``: the README promises a direct write first
        replays the backlog, so "a later write never lands before an earlier accepted one"); then whatever
        replays what still waits (the next write command, a read command, ``replay()``, ``recover(force=True)``,
        a restart). With ``during``, the later write is made before the heal: a direct write then either replays
        the backlog first or fails with the fault (the README: it "fails with the fault when the backlog cannot be
        saved yet"); either way it must not land before the writes queued ahead of it. The model is the sequence of
        answers: per key, the value of the last write answered ``ok`` or ``queued`` (a direct write that returned);
        the file must hold it, nothing left pending."""
        commands = self.db.commands
        keys = [f"user-{n}", f"user-{(n + 1) % 13}"]
        if not self.inject(outage, param):
            return
        in_force = self.active_fault_names
        answers: list[str] = []
        try:
            for other in [False, *burst]:
                key, value = keys[1] if other else keys[0], self.text()
                result = self.absorb(commands.run, "store", key, value)
                answers.append(f"store {key!r}: {result.status}")
                if result.status in ("ok", "queued"):
                    self.model.kv[key] = value
            if during:
                self.later_write(later, keys[0], answers)
                answers.append("(that one during the outage)")
        finally:
            self.heal(outage)
        if not during:
            self.later_write(later, keys[0], answers)
        if replayed == "command":
            then, new = f"user-{(n + 5) % 13}", self.text()
            if self.absorb(commands.run, "store", then, new).status in ("ok", "queued"):
                self.model.kv[then] = new
        elif replayed == "read":
            self.absorb(commands.run, "lookup", keys[1])
        elif replayed == "replay":
            self.absorb(commands.replay)
        elif replayed == "recover":
            self.absorb(commands.recover, force=True)
        elif replayed == "restart":
            self.db.close()
            self.db = self.open_runtime(self.config)
            self.after_reopen()
            self.absorb(self.db.commands.run, "lookup", keys[1])
        self.settle()
        stored = self.stored_kv()
        pending = len(self.db.commands.queue)
        want = {k: self.model.kv.get(k) for k in keys}
        got = {k: stored.get(k) for k in keys}
        self.check(14, got == want and pending == 0, lambda: (
            f"during {outage}: {'; '.join(answers)}; replayed by {replayed}: the file holds {got}, the last "
            f"acknowledged writes are {want} ({pending} write(s) still pending): a write answered later must "
            "land later"), faults=in_force)

    #: The form of :meth:`a_transaction_replays_the_backlog_first` (``db.transaction()`` twice as often: the form
    #: a default run met once in three runs when drawn as one of four ways to write later).
    TX_FORMS = st.sampled_from(("transaction", "run_in_transaction", "transaction"))

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    @rule(outage=st.sampled_from(("locked", "disconnect_rename", "disconnect_delete")), n=st.integers(0, 12),
          writes=st.integers(1, 2), form=TX_FORMS, raises=st.booleans(), param=st.integers(0, 5))
    def a_transaction_replays_the_backlog_first(self, outage: str, n: int, writes: int, form: str, raises: bool,
                                                param: int) -> None:
        """P14 (README: "a direct write (``db.execute``, ``db.transaction()``, ``db.run_in_transaction``) first
        replays that backlog in order"): one or two write commands queued during an outage, the fault healed, then
        the application opens a transaction (``form``) and, first thing inside it, reads the rows those writes
        change, then writes another row, then maybe raises its own exception. The backlog is replayed before the
        transaction begins: inside it nothing is left queued and the rows read are the values acknowledged as
        queued; and it is committed on its own, so the application's exception rolls back only its own write, not
        the replayed ones (nothing queued again either)."""
        from .workload import AppError

        commands = self.db.commands
        self.operator_flag_under(outage, n, writes, param)
        if not self.inject(outage, param):
            return
        try:
            for i in range(writes):
                self.store((n + i) % 13)  # (acknowledged: ok, or queued durably; the model has it either way)
        finally:
            self.heal(outage)
        queued = len(commands.queue)
        if not queued:
            return  # (the outage did not reach the writes: nothing waits)
        keys = sorted({f"user-{(n + i) % 13}" for i in range(writes)})
        own, value = f"user-{(n + 7) % 13}", self.text()
        seen: list[tuple[int, dict[str, Any]]] = []

        def body() -> None:
            seen.append((len(commands.queue),
                         {k: (self.db.fetch_one("SELECT v FROM kv WHERE k = ?", (k,)) or [None])[0] for k in keys}))
            self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (own, value))
            if raises:
                raise AppError("the application gave up inside its transaction")

        def run() -> None:
            if form == "run_in_transaction":
                self.db.run_in_transaction(body)
            else:
                with self.db.transaction():
                    body()

        from reliability.errors import DatabaseError

        try:
            self.absorb(run)
        except (AppError, DatabaseError):
            pass  # (a database error here, with no fault in force, is judged by the file below)
        else:
            self.model.kv[own] = value
        want = {k: self.model.kv.get(k) for k in keys}
        story = (f"{queued} write(s) queued during {outage} ({', '.join(keys)}), the fault healed, then "
                 f"db.{form}() {'raising' if raises else 'ending well'}")
        if seen:
            self.check(14, seen[0] == (0, want), lambda: (
                f"{story}: inside it {seen[0][0]} write(s) were still queued and the rows read {seen[0][1]}, "
                f"expected none queued and {want} (the backlog is replayed before the transaction begins)"))
        stored = self.stored_kv()
        got = {k: stored.get(k) for k in [*keys, own]}
        expect = {k: self.model.kv.get(k) for k in [*keys, own]}
        pending = len(commands.queue)
        self.check(14, got == expect and pending == 0, lambda: (
            f"{story}: the file holds {got}, expected {expect}, {pending} write(s) queued (the replayed writes are "
            "committed before the transaction, and stay whatever becomes of it)"))

    def later_write(self, later: str, key: str, answers: list[str]) -> None:
        """One write of ``key`` for :meth:`the_later_write_wins`, through ``later``; booked in the model when
        acknowledged (a command answered ``ok``/``queued``, a direct write that returned)."""
        from reliability.errors import DatabaseError

        commands, value = self.db.commands, self.text()
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        acked = False
        try:
            if later == "command":
                acked = self.absorb(commands.run, "store", key, value).status in ("ok", "queued")
            elif later == "execute":
                self.absorb(self.db.execute, sql, (key, value))
                acked = True
            elif later == "transaction":
                def tx() -> None:
                    with self.db.transaction() as conn:
                        conn.execute(sql, (key, value))
                self.absorb(tx)
                acked = True
            else:
                self.absorb(self.db.run_in_transaction, lambda: self.db.execute(sql, (key, value)))
                acked = True
        except DatabaseError as err:
            answers.append(f"the later {later} of {key!r} failed: {err.kind}")
        if acked:
            self.model.kv[key] = value
            answers.append(f"then {later} of {key!r}: ok")

    @precondition(lambda self: has_commands(self) and not self.faults)
    @rule(n=st.integers(0, 12), read=st.booleans())
    def write_to_a_read_only_database(self, n: int, read: bool) -> None:
        """P14 when the database turns read-only under the running runtime: ``PRAGMA query_only`` set on its own
        connection (a maintenance window, a tool sharing the handle): a real SQLITE_READONLY on every write.

        The database cannot take writes right now; nothing is wrong with the caller's input. A write command is
        acknowledged (queued durably: the queue file holds it), never answered as an error; a read command is
        still served (reads need no write access); once the database is writable again, the application's next
        write command replays the backlog first and is served (answered ``ok``, nothing left queued, the file holds
        the write acknowledged while the database was read-only)."""
        from ..faults.registry import make_fault
        from ..stats import STATS

        commands = self.db.commands
        try:
            fault = make_fault("disconnect", self.db, mode="readonly", readonly_via="query_only", counted_in=STATS)
            fault.inject()
        except (FaultError, sqlite3.Error, self.sqlite_module().Error):
            return  # (no connection to set it on right now)
        self.faults["disconnect"] = fault
        self.fault_history.append("disconnect")
        key, value = f"user-{n}", self.text()
        try:
            before = len(commands.queue)
            result = self.absorb(commands.run, "store", key, value)
            said = (f"a write command meeting a read-only database (PRAGMA query_only on the runtime's connection) "
                    f"answered {result.status!r} (fault {result.fault!r}): {result.message}")
            self.check(14, result.status in ("ok", "queued"),
                       f"{said}; a database that cannot take writes right now is no mistake of the caller: the "
                       "write must be queued and saved once the database is writable")
            if result.status in ("ok", "queued"):
                self.model.kv[key] = value
            if result.status == "queued":
                self.check(14, len(commands.queue) >= before + 1 and self.queue_file_has(result.queue_key),
                           f"{said}, but the queue file does not hold it (key {result.queue_key})")
            if read:
                got = self.absorb(commands.run, "lookup", key)
                self.check(14, got.status == "ok",
                           f"a read command while the database is read-only answered {got.status!r} "
                           f"({got.message}): reads need no write access")
        finally:
            self.heal("disconnect")
        # Writable again: the application's next write command replays the backlog first, then is served.
        want = self.model.kv.get(key)
        then, new = f"user-{(n + 1) % 13}", self.text()
        nxt = self.absorb(commands.run, "store", then, new)
        if nxt.status in ("ok", "queued"):
            self.model.kv[then] = new
        pending, stored = len(commands.queue), self.stored_kv().get(key)
        self.check(14, nxt.status == "ok" and pending == 0 and stored == want, lambda: (
            f"the database writable again after being read-only, the next write command answered {nxt.status!r} "
            f"({nxt.message}) with {pending} write(s) still queued, and the file holds {stored!r} for {key!r}, "
            f"acknowledged {want!r} while it was read-only: the queued write must be replayed and the command served"))

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    @rule(n=st.integers(0, 12), between=st.sampled_from(("absent", "same_file", "new_file")),
          writes=st.integers(1, 2))
    def a_link_planted_at_the_queue_path_is_reported_each_time(self, n: int, between: str, writes: int) -> None:
        """P17 (detailed technical logging) for the write queue file: a link planted at its path (refused, never
        followed) makes it unreadable; the runtime looks before each direct write and logs one ERROR record per
        episode: not one per write, and not only the first episode. Two episodes with the same error, the path
        readable between (no file there, the file the queue had read put back, or another file), give two
        records; the direct writes go on meanwhile (a queue that cannot be read is no reason to fail them)."""
        import os
        from pathlib import Path

        from reliability.errors import DatabaseError

        path = Path(self.db.commands.queue.path)
        aside, secret = Path(self.dir) / "queue.aside", Path(self.dir) / "not-a-queue.txt"
        secret.write_text("not a queue\n")
        # (Its folders: the queue makes them at its first queued write, which may not have happened yet; whoever plants
        # the link needs them too.)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        kept = path.exists() and not path.is_symlink()
        if between != "absent" and not kept:
            path.write_text("")
        self.db.commands.queue.refresh()  # (the queue has read what is there now)
        sql, answers = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", []
        logs0 = len(self.logs.records)

        def write(key: str) -> None:
            value = self.text()
            try:
                self.db.execute(sql, (key, value))
            except DatabaseError as err:
                answers.append(f"a direct write of {key!r} failed: {err.kind}")
            else:
                self.model.kv[key] = value

        try:
            for episode in range(2):
                if path.exists():
                    os.replace(path, aside)
                path.symlink_to(secret)
                for i in range(writes):
                    write(f"user-{(n + episode + i) % 13}")
                path.unlink()
                if between == "same_file":
                    os.replace(aside, path)
                elif between == "new_file":  # (made before the old one goes: another file, not its inode reused)
                    path.write_text("")
                    aside.unlink(missing_ok=True)
                write(f"user-{(n + episode + writes) % 13}")  # (readable again: the runtime looks)
        finally:
            if path.is_symlink():
                path.unlink()
            if aside.exists():
                os.replace(aside, path)
            self.db.commands.queue.refresh()
        said = [r.getMessage() for r in self.logs.records[logs0:]
                if r.levelno >= 40 and f"write queue {path} cannot be read" in r.getMessage()]
        self.check(17, len(said) == 2, lambda: (
            f"a link was planted at the write queue path {path} twice ({writes} direct write(s) each time), the "
            f"path readable between ({between}); the runtime logged {len(said)} ERROR record(s) saying it cannot be "
            f"read: {said} (one per episode: two)"))
        self.check(14, not answers, lambda: f"a link planted at the write queue path failed direct writes: {answers}")
        self.check(17, secret.read_text() == "not a queue\n", f"the file a link at {path} points to was written")

    @precondition(lambda self: has_commands(self) and not self.faults
                  and str(getattr(self.config, "journal_mode", "WAL")).upper() != "WAL")
    @rule(n=st.integers(0, 12), queued_first=st.booleans(), then=st.sampled_from(("write", "read", "none")))
    def a_read_refused_degrades_the_registry(self, n: int, queued_first: bool, then: str) -> None:
        """P14 for what a user sees after a read command answers ``unavailable``: another process holds an
        exclusive lock (a rollback-journal database: readers are kept out too; in WAL they read on); ``queued_first``:
        a write command was queued during the lock before the read. The read answers ``unavailable`` (its value
        None, a message, the fault kind, ``pending`` the writes waiting), and from then on, while the lock holds, the
        registry says it is degraded, the same way everywhere: ``db.commands.degraded`` is true, ``db.commands.fault``
        is the kind the read answered, ``health()`` names it (``extra['degraded_by']``) and its status is not
        healthy; a command that needs no database still answers; a write command (``then``) is acknowledged as
        queued, naming a fault, its ``pending`` the queue's length, the queue file holding it. After the lock is
        released, the next read command is served (the acknowledged value) and the degradation is over:
        ``degraded`` false, ``fault`` None, ``health()`` names no fault."""
        commands = self.db.commands
        if not self.inject("locked", 1):  # (odd param: an exclusive lock)
            return
        key = f"user-{n}"
        try:
            if queued_first:
                self.store(n)
            before = len(commands.queue)
            result = self.absorb(commands.run, "lookup", key)
            if result.status != "unavailable":
                return  # (served: nothing kept the read out, e.g. the lock came and went; judged elsewhere)
            said = f"a read command under an exclusive lock ({before} write(s) queued) answered unavailable"
            self.check(14, result.value is None and bool(result.message) and bool(result.fault)
                       and result.pending == before,
                       lambda: f"{said} with value {result.value!r}, message {result.message!r}, fault "
                               f"{result.fault!r}, pending {result.pending} (the queue holds {before})",
                       faults=["locked"])
            health = self.absorb(self.db.health)
            view = {"degraded": commands.degraded, "fault": None if commands.fault is None else str(commands.fault),
                    "degraded_by": health.extra.get("degraded_by"), "healthy": str(health.status) == "healthy"}
            want = {"degraded": True, "fault": result.fault, "degraded_by": result.fault, "healthy": False}
            self.check(14, view == want,
                       lambda: f"{said} ({result.fault}); then the public surface says {view}, expected {want}",
                       faults=["locked"])
            self.greet()
            if then == "write":
                value = self.text()
                wrote = self.absorb(commands.run, "store", key, value)
                if wrote.status in ("ok", "queued"):
                    self.model.kv[key] = value
                # (The fault it names is the one the read named: the registry's, not a generic "unavailable".)
                self.check(14, wrote.status == "queued" and wrote.fault == result.fault
                           and wrote.pending == len(commands.queue)
                           == before + 1 and self.queue_file_has(wrote.queue_key),
                           lambda: f"{said}; a write command next, the lock still held, answered {wrote.status!r} "
                                   f"(fault {wrote.fault!r}, pending {wrote.pending}, queue {len(commands.queue)}, "
                                   f"before {before}): it must be queued durably",
                           faults=["locked"])
            elif then == "read":
                again = self.absorb(commands.run, "lookup", key)
                self.check(14, again.status == "unavailable" and again.fault == result.fault and commands.degraded,
                           lambda: f"{said} ({result.fault}); a second read, the lock still held, answered "
                                   f"{again.status!r} (fault {again.fault!r}), degraded={commands.degraded}",
                           faults=["locked"])
        finally:
            self.heal("locked")
        want_value = self.model.kv.get(key)
        got = self.absorb(commands.run, "lookup", key)
        health = self.absorb(self.db.health)
        view = {"status": got.status, "value": got.value, "degraded": commands.degraded, "fault": commands.fault,
                "degraded_by": health.extra.get("degraded_by")}
        want = {"status": "ok", "value": want_value, "degraded": False, "fault": None, "degraded_by": None}
        self.check(14, view == want,
                   lambda: f"the lock released after a read command answered unavailable, the next read of {key!r} "
                           f"and the registry say {view}, expected {want}")

    #: Drawn three times as often as one rule (a targeted weight: it acts only in a rollback-journal mode; one entry,
    #: then two, met a planted defect in one default run of two).
    a_read_refused_degrades_the_registry_again = a_read_refused_degrades_the_registry
    a_read_refused_degrades_the_registry_thrice = a_read_refused_degrades_the_registry

    def open_other_runtime(self) -> Any:
        """Another manager on the same file and queue file, as another process of the application runs one (a worker
        of an older release, a tool): the same settings, its retry sleeps skipped (its waits are not the runtime's)."""
        from .base import default_runtime_factory

        factory = type(self).runtime_factory or default_runtime_factory()
        other = factory(self.config)
        policy = getattr(other, "policy", None)
        if policy is not None:
            policy.sleep = lambda _seconds: None
        return other

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    @rule(n=st.integers(0, 12), param=st.integers(0, 5))
    def write_of_a_command_not_registered_here(self, n: int, param: int) -> None:
        """P14 with a queue file shared by two programs: another one, whose command ``legacy`` this runtime does
        not register, queues a write during a lock; then this runtime queues one of its own during the same lock.

        The lock healed, this runtime's next write command replays its own queued write (the file holds the
        acknowledged value): a write it cannot run waits in the queue for a runtime that can, neither applied,
        nor set aside as refused, nor holding this runtime's own writes back. The other program then replays it
        (its write is saved once: a change acknowledged as queued is not lost by the wait). (That a write command
        is served at once while only such a write waits, not queued behind it, is tests/test_queue_foreign_writes.py's:
        here the next command may meet its own backlog before the recheck interval has passed.)"""
        def legacy(db: Any, note: int) -> int:
            db.execute("CREATE TABLE IF NOT EXISTS legacy_notes (note INTEGER NOT NULL)")
            return db.execute("INSERT INTO legacy_notes (note) VALUES (?)", (note,)).rowcount

        from reliability.degraded import Needs

        commands = self.db.commands
        self.legacy_sent = token = getattr(self, "legacy_sent", 0) + 1
        other = self.open_other_runtime()
        try:
            other.commands.register("legacy", Needs.WRITE, legacy)
            if not self.inject("locked", param):
                return
            key, value = f"user-{n}", self.text()
            try:
                theirs = other.commands.run("legacy", token)
                ours = self.absorb(commands.run, "store", key, value)
            finally:
                self.heal("locked")
            if ours.status in ("ok", "queued"):
                self.model.kv[key] = value
            # The lock healed, the application's next write command (another row) replays the backlog first.
            want = self.model.kv.get(key)
            then, new = f"user-{(n + 1) % 13}", self.text()
            nxt = self.absorb(commands.run, "store", then, new)
            if nxt.status in ("ok", "queued"):
                self.model.kv[then] = new
            stored = self.stored_kv().get(key)
            self.check(14, stored == want, lambda: (
                f"another program queued a write of its command 'legacy' ({theirs.status}), this runtime (which has "
                f"no 'legacy') queued its own write of {key!r} ({ours.status}) during the same lock; the lock healed "
                f"and its next write command ran ({nxt.status}: {nxt.message}), yet the file holds {stored!r} for "
                f"{key!r}, acknowledged {want!r}: this runtime's own queued write must not wait behind one it "
                "cannot run"))
            if theirs.status != "queued":
                return
            notes = self.legacy_notes()
            self.check(14, token not in notes and theirs.queue_key not in commands.queue.failed,
                       lambda: f"a queued write of 'legacy', a command this runtime does not register, was "
                               f"{'applied' if token in notes else 'set aside as refused'} by it instead of waiting "
                               f"for a runtime that has the command")
            report = other.commands.replay()
            notes = self.legacy_notes()
            self.check(14, notes.count(token) == 1, lambda: (
                f"the program that registers 'legacy' replayed the queue ({report.to_dict()}): its queued write "
                f"(note {token}) is in the file {notes.count(token)} time(s), not once"))
        finally:
            other.close()

    def legacy_notes(self) -> list[int]:
        with self.raw() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'legacy_notes'").fetchone() is None:
                return []
            return [r[0] for r in conn.execute("SELECT note FROM legacy_notes")]

    # -- queued writes the database refuses at replay, and the registry itself ---------------------------------------
    def register_commands(self) -> None:
        super().register_commands()
        from reliability.degraded import Needs

        def claim(db: Any, name: str | None) -> int:
            """Claim a unique name (refused by the database when it is taken, or missing)."""
            db.execute("CREATE TABLE IF NOT EXISTS claims (name TEXT UNIQUE NOT NULL)")
            return db.execute("INSERT INTO claims (name) VALUES (?)", (name,)).rowcount

        self.db.commands.register("claim", Needs.WRITE, claim)
        if not hasattr(self, "claims"):
            self.claims: set[str] = set()
            self.claimed = 0

    def stored_claims(self) -> set[str]:
        with self.raw() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'claims'").fetchone() is None:
                return set()
            return {r[0] for r in conn.execute("SELECT name FROM claims")}

    def fresh_claim(self) -> str:
        self.claimed += 1
        return f"claim-{self.claimed}-{self.pick('word')}"

    #: What one write command of a burst claims: a fresh name (the database takes it), a name claimed before the
    #: outage (UNIQUE), the name of the last fresh one of the same burst (UNIQUE, once that one is applied), none
    #: (NOT NULL).
    CLAIMS = st.lists(st.sampled_from(("new", "taken", "again", "null")), min_size=1, max_size=3)
    #: How the backlog is replayed once the outage is over: ``replay()``, or the application's next write command.
    #: (A read command replaying it first is ``read_once_the_outage_is_over``'s.)
    REPLAY_BY = st.sampled_from(("replay", "command"))

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    @rule(plan=CLAIMS, param=st.integers(0, 5), via=REPLAY_BY)
    def refused_writes_queued_during_a_lock(self, plan: list[str], param: int, via: str) -> None:
        """See :meth:`refused_writes_are_set_aside`, during a lock (another connection's write or exclusive lock)."""
        self.refused_writes_are_set_aside("locked", plan, param, via)

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    @rule(outage=st.sampled_from(("disconnect_rename", "disconnect_delete", "disk_full")), plan=CLAIMS,
          param=st.integers(0, 5), via=REPLAY_BY)
    def refused_writes_queued_while_unavailable(self, outage: str, plan: list[str], param: int, via: str) -> None:
        """See :meth:`refused_writes_are_set_aside`, while the file is moved away, deleted, or the disk is full."""
        self.refused_writes_are_set_aside(outage, plan, param, via)

    def refused_writes_are_set_aside(self, outage: str, plan: list[str], param: int, via: str) -> None:
        """P14: write commands sent during one outage, a drawn mix of some the database will take and some it will
        refuse (a name already claimed, one claimed earlier in the same burst, a missing name: a UNIQUE or NOT
        NULL violation), then one it takes. Each is acknowledged (``ok`` or ``queued``) or, run at once and
        refused by the database, answered ``error`` with a fault that is the caller's mistake (never a busy or
        unavailable database). After the heal the backlog replays (``replay()``, or the application's next write
        command): in order, every write the database takes is applied, every one it refuses is set aside
        (reported, recorded in the queue file) and does not stop the ones after it; nothing is left pending."""
        from reliability.degraded.places import queue_summary
        from reliability.errors import KIND_INFO, ErrorKind, RecoveryAction

        commands = self.db.commands
        if not self.claims:  # something already claimed, for "taken"
            first = self.fresh_claim()
            got = self.absorb(commands.run, "claim", first)
            if got.status != "ok":
                return
            self.claims.add(first)
        names: list[str | None] = []
        last_new: str | None = None
        for step in plan:
            if step == "taken":
                names.append(sorted(self.claims)[self.claimed % len(self.claims)])
            elif step == "null":
                names.append(None)
            elif step == "again" and last_new is not None:
                names.append(last_new)
            else:
                last_new = self.fresh_claim()
                names.append(last_new)
        names.append(self.fresh_claim())  # (the last one is taken: whatever was refused before it must not stop it)
        # The model: in order, a name is taken when it is missing or claimed already.
        have = set(self.claims)
        takes: list[bool] = []
        for name in names:
            takes.append(name is not None and name not in have)
            if takes[-1]:
                have.add(name)
        if not self.inject(outage, param):
            return
        in_force = self.active_fault_names
        queued: dict[str, tuple[str | None, bool]] = {}
        try:
            for name, ok in zip(names, takes, strict=True):
                result = self.absorb(commands.run, "claim", name)
                fate = "the database takes it" if ok else "the database refuses it"
                said = (f"'claim' of {name!r} during {outage} ({fate}) answered {result.status!r} "
                        f"(fault {result.fault!r}): {result.message}")
                if result.status == "error":
                    kind = ErrorKind(result.fault) if result.fault in ErrorKind._value2member_map_ else None
                    self.check(14, not ok and kind is not None and KIND_INFO[kind].action is RecoveryAction.RAISE,
                               f"{said}; a write the database cannot take right now must be queued, and 'error' is "
                               "only for a write the database refuses", faults=in_force)
                else:
                    self.check(14, result.status in ("ok", "queued"), said, faults=in_force)
                if result.status == "ok":
                    self.check(14, ok, f"{said}, yet it violates a constraint", faults=in_force)
                if result.status == "queued":
                    # A queued answer names the fault the registry is degraded by (what the user is told is wrong:
                    # "locked" asks them to wait, "unavailable" that the database is gone), never another kind.
                    # (Not degraded, it was queued behind writes still waiting: the database is then "unavailable".)
                    registry = "unavailable" if commands.fault is None else str(commands.fault)
                    self.check(14, result.fault == registry,
                               f"{said}; the registry is degraded by {registry!r}, so the answer must name that fault",
                               faults=in_force)
                if result.status == "queued" and result.queue_key is not None:
                    queued[result.queue_key] = (name, ok)
                    self.judge_queue_numbering(result.queue_key, said, in_force)
                    n = len(queued)  # (the queue was empty: each queued answer counts the ones before it too)
                    waiting = f"({n} change{'s' if n != 1 else ''} waiting)"
                    self.check(14, result.pending == n and waiting in result.message,
                               f"{said}; write number {n} queued in this outage (the queue was empty before it) "
                               f"says pending {result.pending}, and its message must say {waiting!r}",
                               faults=in_force)
                if result.status in ("ok", "queued") and ok and name is not None:
                    self.claims.add(name)
        finally:
            self.heal(outage)
        report = None
        if via == "replay":
            report = self.absorb(commands.replay)
        else:
            after = self.fresh_claim()
            nxt = self.absorb(commands.run, "claim", after)
            self.check(14, nxt.status == "ok", f"after the {outage} healed, the next write command answered "
                       f"{nxt.status!r}: {nxt.message}")
            if nxt.status in ("ok", "queued"):
                self.claims.add(after)
        refused = {k for k, (_, ok) in queued.items() if not ok}
        failed = set(commands.queue.failed)
        pending = len(commands.queue)
        story = lambda: (f"{len(queued)} write command(s) queued during {outage} "  # noqa: E731
                         f"({', '.join(f'{n!r}: ' + ('taken' if ok else 'refused') for n, ok in queued.values())}), "
                         f"replayed by {via}")
        self.check(14, pending == 0, lambda: f"{story()}: {pending} write(s) still pending after the replay (a write "
                                             "the database refuses is set aside; the ones after it are applied)")
        self.check(14, refused <= failed and not (set(queued) - refused) & failed, lambda: (
            f"{story()}: set aside {sorted(k for k in queued if k in failed)}, the refused ones are {sorted(refused)}"))
        if report is not None:
            reported = {k for k, _ in report.failures}
            # Every write the replay met is counted once: applied, already applied (skipped) or set aside.
            self.check(14, reported == refused and report.failed == len(refused) and report.remaining == 0
                       and report.applied == len(queued) - len(refused)
                       and report.applied + report.skipped + report.failed == len(queued), lambda: (
                           f"{story()}: the replay reported {report.to_dict()}; {len(queued) - len(refused)} applied "
                           f"and the refused {sorted(refused)} set aside were expected"))
        stored = self.stored_claims()
        self.check(14, stored == self.claims, lambda: (
            f"{story()}: the file's claims differ from the model: missing {sorted(self.claims - stored)}, "
            f"unexpected {sorted(stored - self.claims)}"))
        health = self.db.health()
        said_failed = f"{len(failed)} queued write(s) were refused on replay"
        self.check(14, health.extra.get("write_queue", {}).get("failed") == len(failed)
                   and health.extra.get("write_queue", {}).get("pending") == 0
                   and (said_failed in health.reasons) == bool(failed), lambda: (
                       f"{story()}: {len(failed)} write(s) set aside in all, none pending; health says "
                       f"{health.extra.get('write_queue')} with reasons {list(health.reasons)}"))
        summary = queue_summary(commands.queue.path, 0)
        self.check(14, summary["pending"] == 0 and summary["failed"] >= len(refused), lambda: (
            f"{story()}: the queue file says {summary} (pending must be 0, the {len(refused)} refused recorded)"))

    @precondition(has_commands)
    @rule(n=st.integers(0, 2), needs=st.sampled_from(("none", "read", "write")), doc=st.booleans(),
          unknown=st.sampled_from(("nope", "claims", "greet ", "Store", "flags")))
    def the_registry_lists_its_commands(self, n: int, needs: str, doc: bool, unknown: str) -> None:
        """P14: the command registry says what it holds. A command registered with the ``command`` decorator is
        there under its name (``names()``, ``get``, ``in``), with the needs given and its help (the given one, or
        the first line of its docstring); the decorator hands the function back unchanged. Every name in
        ``names()`` (sorted) is one ``get`` returns, a command of that name; admin commands say so (``admin``). A
        name not registered gives None and a ``rejected`` answer that names it and the known commands."""
        from reliability.degraded import Needs

        commands = self.db.commands
        name = f"echo-{n}"

        def echo(db: Any, word: str = "") -> str:
            """Echo a word.

            (a second line the help leaves out)"""
            return f"echo {word}"

        if not doc:
            echo.__doc__ = None
        decorate = commands.command(name, needs, help="" if doc else f"help of {name}")
        back = decorate(echo)
        cmd = commands.get(name)
        self.check(14, back is echo, f"the command decorator returned {back!r}, not the function it was given")
        self.check(14, cmd is not None and cmd.name == name and cmd.fn is echo and name in commands
                   and name in commands.names(),
                   f"a command registered with the decorator as {name!r} is not found: get gave {cmd!r}, "
                   f"names() {commands.names()}")
        if cmd is not None:
            want_help = "Echo a word." if doc else f"help of {name}"
            self.check(14, cmd.needs is Needs(needs) and str(cmd.needs) == needs and f"{cmd.needs}" == needs
                       and cmd.help == want_help and not cmd.admin,
                       f"the command {name!r} registered with needs {needs!r} reads needs {cmd.needs!r} "
                       f"(str {str(cmd.needs)!r}), help {cmd.help!r} (want {want_help!r}), admin {cmd.admin}")
        listed = commands.names()
        self.check(14, listed == sorted(listed) and len(set(listed)) == len(listed)
                   and {"greet", "lookup", "store", "deposit", "claim", "flags.set"} <= set(listed),
                   f"names() gave {listed}")
        for each in listed:
            got = commands.get(each)
            self.check(14, got is not None and got.name == each and each in commands,
                       f"names() lists {each!r}, get gave {got!r}")
        admin_cmd = commands.get("flags.set")
        self.check(14, admin_cmd is not None and admin_cmd.admin and admin_cmd.actor_param is not None,
                   f"the admin command flags.set reads {admin_cmd!r} (admin must be True)")
        self.check(14, commands.get("greet") is not None and not commands.get("greet").admin,
                   "the command 'greet' says it is an admin command")
        self.check(14, commands.get(unknown) is None and unknown not in commands,
                   f"get({unknown!r}) gave {commands.get(unknown)!r} for a name never registered")
        result = commands.run(unknown)
        self.check(14, result.status == "rejected" and not result.ok and repr(unknown) in result.message
                   and "greet" in result.message and result.to_dict()["status"] == "rejected",
                   f"running the unknown command {unknown!r} answered {result.status!r}: {result.message}")
        if needs == "none":
            word = self.pick("word")
            got = commands.run(name, word)
            self.check(14, got.status == "ok" and got.ok and got.value == f"echo {word}"
                       and got.to_dict() == {"status": "ok", "message": got.message, "value": f"echo {word}",
                                             "queue_key": None, "fault": None, "pending": got.pending},
                       f"the command {name!r} (needs none) answered {got.to_dict()}")

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    @rule(n=st.integers(0, 12), writes=st.integers(1, 3), param=st.integers(0, 5))
    def a_queue_left_behind_is_named(self, n: int, writes: int, param: int) -> None:
        """P14 across a restart that moves the write queue (``write_queue_path`` changed while writes wait in the
        old file): the new runtime does not read the old file, so its health names it: how many writes wait
        (one "waits", several "wait"), where, and which setting moved; with the setting put back, they replay
        (the invariant: every acknowledged write is in the file)."""
        from pathlib import Path

        from reliability.degraded.places import queue_summary

        if not self.inject("locked", param):
            return
        try:
            for i in range(writes):
                self.store((n + i) % 13)  # (acknowledged: ok, or queued durably; the model has it either way)
        finally:
            self.heal("locked")
        original = self.config
        old = str(Path(original.write_queue_file).absolute())
        waiting = queue_summary(Path(old), 0)["pending"]
        if not waiting:
            return
        self.db.close()
        new = old + f".moved-{n}.jsonl"
        self.db = self.open_runtime(original.replace(write_queue_path=new))
        try:
            self.after_reopen()
            report = self.db.health()
            plural = f"{waiting} queued writes wait" if waiting != 1 else "1 queued write waits"
            named = [r for r in report.reasons if repr(old) in r]
            self.check(14, len(named) == 1 and plural in named[0] and "write_queue_path" in named[0]
                       and repr(str(Path(new).absolute())) in named[0], lambda: (
                           f"{waiting} queued write(s) wait in {old!r}; restarted with write_queue_path {new!r}, "
                           f"the health reasons are {list(report.reasons)} (one must say {plural!r} in {old!r}, and "
                           "that write_queue_path moved)"))
            left = [(p.setting, p.path, p.waiting) for p in getattr(self.db, "places_left", [])]
            self.check(14, ("write_queue_path", old, waiting) in left,
                       lambda: f"restarted with the write queue moved away from {old!r} ({waiting} waiting there), "
                               f"places_left is {left}")
        finally:
            self.db.close()
            self.db = self.open_runtime(original)
            self.after_reopen()
            Path(new).unlink(missing_ok=True)

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue))
    # (Not disk_full: its headroom often takes a small write, which is then saved: the queue is not what is judged.)
    @rule(limit=st.integers(0, 3), extra=st.integers(1, 2), n=st.integers(0, 12),
          outage=st.sampled_from(("locked", "disconnect_rename", "disconnect_delete")), param=st.integers(0, 5))
    def a_full_write_queue_refuses(self, limit: int, extra: int, n: int, outage: str, param: int) -> None:
        """P14 at the queue's bound (README: ``write_queue_max``, "a full queue refuses with a clear error"). The
        runtime restarted with a small drawn ``write_queue_max`` (0: none may wait); during one outage, that many
        write commands and one or two more. While fewer than the bound wait, a write is acknowledged (``ok`` or
        ``queued``); once the bound is reached, each further one is answered ``rejected`` (not acknowledged), with
        the outage's fault and a message saying the change was NOT saved, ``pending`` the bound, and nothing is added:
        the queue holds as many as before, the queue file no new write. health() reports the backlog at its bound.
        After the heal the queued writes replay (the invariant: every acknowledged write is in the file, and none of
        the rejected ones)."""
        from reliability.errors import ErrorKind

        original = self.config
        self.db.close()
        self.db = self.open_runtime(original.replace(write_queue_max=limit))
        try:
            self.after_reopen()
            commands = self.db.commands
            if not self.inject(outage, param):
                return
            in_force = self.active_fault_names
            answers: list[str] = []
            try:
                for i in range(limit + extra):
                    key, value = f"user-{(n + i) % 13}", self.text()
                    before, puts = len(commands.queue), self.puts_in_queue_file()
                    result = self.absorb(commands.run, "store", key, value)
                    answers.append(f"{key}: {result.status}")
                    said = (f"write_queue_max={limit}, during {outage}: {'; '.join(answers)}; the last one, sent "
                            f"with {before} write(s) waiting, answered {result.status!r} (fault {result.fault!r}, "
                            f"pending {result.pending}): {result.message}")
                    if result.status in ("ok", "queued"):
                        self.model.kv[key] = value
                    if before < limit or result.status == "ok":
                        self.check(14, result.status in ("ok", "queued"), said, faults=in_force)
                        continue
                    after, puts_after = len(commands.queue), self.puts_in_queue_file()
                    self.check(14, result.status == "rejected" and not result.ok and result.queue_key is None
                               and result.fault in ErrorKind._value2member_map_ and "NOT saved" in result.message
                               and result.pending == limit,
                               f"{said}; the queue is full: the write must be rejected (not saved), with the "
                               f"outage's fault, pending {limit}", faults=in_force)
                    self.check(14, after == before and puts_after == puts,
                               f"{said}; the queue was full, yet it holds {after} write(s) (was {before}) and its "
                               f"file {puts_after} queued write(s) (was {puts}): a rejected write must leave nothing "
                               "queued", faults=in_force)
                health = self.db.health().extra.get("write_queue", {})
                waiting = len(commands.queue)
                self.check(14, health.get("max") == limit and health.get("pending") == waiting <= limit, lambda: (
                    f"write_queue_max={limit}, during {outage}: {'; '.join(answers)}; {waiting} write(s) wait, "
                    f"health's write_queue says {health}"), faults=in_force)
            finally:
                self.heal(outage)
        finally:
            self.db.close()
            self.db = self.open_runtime(original)
            self.after_reopen()

    def judge_queue_numbering(self, newest: str, said: str, faults: list[str]) -> None:
        """P14: the write queue is a FIFO numbered in the order it accepted the writes (``QueuedWrite.seq``, the
        ``seq`` of each ``put`` record in the queue file, which every process sharing the file orders by): the
        write just acknowledged as queued (key ``newest``) is the last of ``db.commands.queue.pending()``, whose
        numbers rise strictly, oldest first; the file's ``put`` records rise strictly in the order they were
        appended and give each waiting write the number ``pending()`` gives it. Two writes under one number leave
        their order to whoever reads the file next."""
        entries = self.db.commands.queue.pending()
        seqs = [(e.key, e.seq) for e in entries]
        in_file = self.put_seqs_in_queue_file()
        numbers = dict(in_file)
        rising = all(a[1] < b[1] for a, b in zip(seqs, seqs[1:], strict=False))
        file_rising = all(a[1] < b[1] for a, b in zip(in_file, in_file[1:], strict=False))
        self.check(14, bool(entries) and entries[-1].key == newest and rising and file_rising
                   and all(numbers.get(k) == n for k, n in seqs), lambda: (
                       f"{said}; the queue now lists (key, seq) oldest first {seqs}, its file's put records "
                       f"{in_file}: the write just queued must come last, and the numbers rise strictly in the order "
                       "the writes were accepted, the same in the file"), faults=faults)

    def put_seqs_in_queue_file(self) -> list[tuple[str, int]]:
        """(key, seq) of every ``put`` record in the queue file, in file order (a line that is no JSON skipped)."""
        out = []
        try:
            with open(self.db.commands.queue.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and event.get("op") == "put":
                        out.append((str(event.get("key")), event.get("seq")))
        except FileNotFoundError:
            pass
        return out

    def puts_in_queue_file(self) -> int:
        """How many writes the queue file records as queued (its ``put`` lines, done or not)."""
        try:
            with open(self.db.commands.queue.path, encoding="utf-8") as fh:
                return sum(1 for line in fh if '"op": "put"' in line)
        except FileNotFoundError:
            return 0

    @precondition(lambda self: has_commands(self) and not self.faults and not len(self.db.commands.queue)
                  and not self.absorb(self.db.audit.pending))
    @rule(n=st.integers(0, 12), entries=st.integers(1, 3), param=st.integers(0, 5))
    def audit_entries_left_behind_are_named(self, n: int, entries: int, param: int) -> None:
        """P15 across a restart that moves the audit fallback (README: "A restart with a new ... audit_fallback_path
        reads only the new file ... what still waits in an old file is never dropped in silence: ``health()`` stays
        degraded, naming how many writes or entries wait where and which setting moved"). Audit entries recorded
        during a lock wait in the fallback file (``pending``); restarted with ``audit_fallback_path`` moved, the new
        runtime's health names the old file once: how many entries wait (one "waits", several "wait"), where, and the
        setting with its new value; ``places_left`` lists it; the old file is left as it was. With the setting put
        back, the entries are reconciled into the log."""
        from pathlib import Path

        if not self.inject("locked", param):
            return
        try:
            recorded = [self.absorb(self.db.audit.record, "ops-admin", "note.left", f"note-{n}-{i}")
                        for i in range(entries)]
        finally:
            self.heal("locked")
        original = self.config
        old = str(Path(original.audit_fallback_file).absolute())

        def old_place() -> list[bytes]:
            """The old fallback file and the working copy a reconcile renames it to (README: what is there waits)."""
            out = []
            for path in (Path(old), Path(old + ".reconciling")):
                try:
                    out.append(path.read_bytes())
                except FileNotFoundError:
                    out.append(b"")
            return out

        before = old_place()
        waiting = sum(1 for data in before for line in data.splitlines() if line.strip())
        pending = sum(1 for e in recorded if e.pending)
        self.check(15, waiting == pending, lambda: (
            f"{entries} audit entries recorded during a lock, {pending} of them answered pending (in the fallback "
            f"file), yet the fallback file {old!r} (and its .reconciling copy) holds {waiting}"), faults=["locked"])
        if not waiting:
            return
        self.db.close()
        new = old + f".moved-{n}.jsonl"
        self.db = self.open_runtime(original.replace(audit_fallback_path=new))
        try:
            self.after_reopen()
            report = self.db.health()
            plural = f"{waiting} audit entries wait" if waiting != 1 else "1 audit entry waits"
            named = [r for r in report.reasons if repr(old) in r]
            self.check(15, len(named) == 1 and plural in named[0] and "audit_fallback_path" in named[0]
                       and repr(str(Path(new).absolute())) in named[0] and not report.healthy, lambda: (
                           f"{waiting} audit entr{'y waits' if waiting == 1 else 'ies wait'} in {old!r}; restarted "
                           f"with audit_fallback_path {new!r}, health is {str(report.status)!r} with the reasons "
                           f"{list(report.reasons)} (one must say {plural!r} in {old!r}, and that audit_fallback_path "
                           "moved)"))
            left = [(p.setting, p.path, p.waiting) for p in getattr(self.db, "places_left", [])]
            self.check(15, ("audit_fallback_path", old, waiting) in left,
                       lambda: f"restarted with the audit fallback moved away from {old!r} ({waiting} waiting "
                               f"there), places_left is {left}")
            after = old_place()
            self.check(15, after == before, lambda: (
                f"restarted with audit_fallback_path moved away from {old!r}: the old file (or its .reconciling copy) "
                f"changed ({[len(b) for b in before]} -> {[len(a) for a in after]} bytes); the runtime only reads an "
                "old place"))
        finally:
            self.db.close()
            self.db = self.open_runtime(original)
            self.after_reopen()
            Path(new).unlink(missing_ok=True)
        self.absorb(self.db.audit.reconcile)
        ids = {e.entry_id for e in recorded}
        stored = {e.entry_id for e in self.absorb(self.db.audit.entries, 10_000, action="note.left")}
        still = self.absorb(self.db.audit.pending)
        self.check(15, ids <= stored and not still, lambda: (
            f"with audit_fallback_path set back, {len(ids - stored)} of the {len(ids)} entries that waited in {old!r} "
            f"are not in the audit log after reconcile ({len(still)} still pending)"))
