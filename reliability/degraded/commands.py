"""Graceful degradation: commands keep working while the database is unavailable; writes are queued.

Example::

    db.commands.register("ping", Needs.NONE, lambda db: "pong")
    db.commands.register("count", Needs.READ, lambda db: db.fetch_one("SELECT count(*) FROM t")[0])
    db.commands.register("add", Needs.WRITE, lambda db, x: db.execute("INSERT INTO t VALUES (?)", (x,)))

    result = db.commands.run("add", 42)
    result.status     # "ok", or "queued" while the disk is full / the file is locked, read-only, gone
    result.message    # what to tell the user

A write command runs in one transaction. When it fails because the database is
unavailable it goes to the :class:`~reliability.degraded.queue.WriteQueue`: a JSON-lines file
appended and fsynced *before* the caller hears "queued". When health returns, queued writes are
replayed in order, each in a transaction that also records its idempotency key in
``reliability_applied_writes`` — so a replay interrupted by a crash resumes without
running any write twice.

The registry works with :class:`CommandParts` (the statements commands are given, a transaction
runner, the audit log, the runtime's lock), never the runtime itself. A direct write while writes
wait here goes one way: the executor asks the registry (its :class:`~reliability.executor.Backlog`)
whether anything must be replayed first, and the replay runs its transactions through
``parts.transact``, which never asks that question again, so it cannot re-enter itself.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import KIND_INFO, DatabaseError, ErrorKind, RecoveryAction
from ..names import printable, validate_actor
from ..observers import Observer
from ..ports import Statements  # (a structural type: what command functions are given)
from .damage import DamageGate
from .queue import QueuedWrite, QueueFullError, ReplayReport, WriteQueue

log = logging.getLogger("reliability.degraded")

APPLIED_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS reliability_applied_writes ("
    "key TEXT PRIMARY KEY, command TEXT NOT NULL, applied_at REAL NOT NULL)"
)


class Needs(str, enum.Enum):
    """What a command needs from the database."""

    NONE = "none"
    READ = "read"
    WRITE = "write"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Command:
    """A registered command: ``fn(db, *args, **kwargs)`` and what it needs from the database.

    ``actor_param`` is set for an admin command: it names the parameter of ``fn`` that carries
    who runs it, and :meth:`CommandRegistry.run` refuses the command unless that actor is
    authorized (``RELIABILITY_ADMIN_ACTORS`` or the permission callback).
    """

    name: str
    needs: Needs
    fn: Callable[..., Any]
    help: str = ""
    actor_param: str | None = None
    #: ``validate(*args, **kwargs) -> message | None``: input checked before anything else, at every entry point.
    validate: Callable[..., str | None] | None = None

    @property
    def admin(self) -> bool:
        """True when running the command needs an authorized actor."""
        return self.actor_param is not None


@dataclass(frozen=True)
class CommandResult:
    """The outcome of :meth:`CommandRegistry.run`.

    ``status`` is ``ok``, ``queued`` (accepted, saved later), ``unavailable`` (a read could not
    be served), ``rejected`` (not accepted: unknown command, bad input, queue full, refused)
    or ``error`` (the database refused it, e.g. a constraint).
    """

    status: str
    message: str
    value: Any = None
    queue_key: str | None = None
    fault: str | None = None
    pending: int = 0

    @property
    def ok(self) -> bool:
        """True when the command ran now."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"status": self.status, "message": self.message, "value": self.value,
                "queue_key": self.queue_key, "fault": self.fault, "pending": self.pending}


class AuditLog(Protocol):
    """What the commands use of the audit log (:class:`~reliability.audit.AuditLogger`)."""

    @property
    def key(self) -> bytes:
        """The HMAC key: queued admin writes carry their authorization MAC'ed with it."""

    def record(self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None) -> Any:
        """Store one entry (a refused admin command is recorded)."""

    def try_reconcile(self, transact: Callable[..., Any] | None = None) -> int | None:
        """Move the fallback entries into the database through ``transact`` (before a replay)."""


@dataclass(frozen=True)
class CommandParts:
    """What a :class:`CommandRegistry` works with, built by the runtime (never the runtime itself).

    :param app: given to every command function as its first argument; direct writes and reads
        run through it (``db`` in the examples: the runtime's statements).
    :param transact: ``transact(fn, *args)`` runs ``fn`` in a transaction, rerun on transient
        errors, *without* replaying the backlog first: the replay's own call, so it cannot re-enter.
    :param audit: the audit log.
    :param lock: the runtime's lock: a replay holds it from its first write to its last, so no
        other call of the runtime lands in the middle of the backlog (and a thread that holds it
        already replays the backlog itself instead of waiting for itself).
    :param gate: says whether the database may take writes (:class:`~reliability.degraded.damage.DamageGate`:
        not while it was seen damaged); a command's write is queued and a replay waits while it refuses.
    """

    app: Statements
    transact: Callable[..., Any]
    audit: AuditLog
    lock: threading.RLock
    gate: DamageGate


class CommandRegistry(Observer):
    """Commands of an application, run with graceful degradation on one database.

    It is also the executor's :class:`~reliability.executor.Backlog` (queued writes replay before a
    direct one) and an observer of errors (one that makes the database unavailable degrades it):
    the runtime wires both when it builds it.

    :param parts: what it works with (:class:`CommandParts`).
    :param queue: the durable write queue (``db.queue``).
    :param recheck_interval: seconds between attempts to replay the backlog while degraded.
    """

    def __init__(self, parts: CommandParts, queue: WriteQueue, *, recheck_interval: float = 1.0) -> None:
        self.parts = parts
        self.app = parts.app
        self.queue = queue
        self.recheck_interval = recheck_interval
        #: The fault that made the database unavailable, None while healthy.
        self.fault: ErrorKind | None = None
        #: Application-supplied permission check for admin commands: ``fn(actor, command) -> bool``.
        self.permission: Callable[[str, str], bool] | None = None
        #: True from the first write queued by this registry, or the first write of a command registered here
        #: that another process queued in the shared file (see :meth:`waiting`), until a replay leaves nothing
        #: it can apply: while it is, a direct write replays the backlog first (a queue left by an earlier run
        #: waits until its commands are registered and a command or ``replay()`` asks for it).
        self._backlogged = False
        #: Queued admin writes the last replay left waiting because they were accepted under another audit key.
        self._other_keys = 0
        #: Their queue keys already logged: a replay runs again at every recheck while they wait, the error once.
        self._other_keys_logged: set[str] = set()
        #: Reconcile the audit fallback before a replay, so entries written during the outage precede
        #: those the replayed writes add (the admin commands turn it on: their writes are audited).
        self.audit_first = False
        self._commands: dict[str, Command] = {}
        self._last_probe = float("-inf")

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, needs: Needs | str, fn: Callable[..., Any], help: str = "", *,
                 actor_param: str | None = None, validate: Callable[..., str | None] | None = None) -> Command:
        """Register ``fn(db, *args, **kwargs)`` as command ``name`` (replacing an earlier one of that name).

        :param actor_param: makes it an admin command: the name of ``fn``'s parameter that carries
            who runs it. Every call, whatever the entry point, is then refused unless that actor is
            authorized; a refusal changes nothing and is audited.
        :param validate: ``validate(*args, **kwargs)`` returns what is wrong with the input (or None);
            a message makes :meth:`run` answer ``rejected`` before authorizing or touching the database.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a command name must be a non-empty string, got {name!r}")
        if actor_param is not None and actor_param not in inspect.signature(fn).parameters:
            raise ValueError(f"admin command {name!r}: {getattr(fn, '__name__', fn)!r} has no parameter "
                             f"{actor_param!r} to carry the actor")
        cmd = Command(name, Needs(needs), fn, help, actor_param, validate)
        self._commands[name] = cmd
        return cmd

    def command(self, name: str, needs: Needs | str, help: str = "", *, actor_param: str | None = None,
                validate: Callable[..., str | None] | None = None) -> Callable[[Callable[..., Any]], Any]:
        """Decorator form of :meth:`register`."""
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, needs, fn, help or (fn.__doc__ or "").strip().split("\n")[0],
                          actor_param=actor_param, validate=validate)
            return fn
        return decorate

    # -- authorization -------------------------------------------------------------------------
    def is_authorized(self, actor: str, command: str) -> bool:
        """True when ``actor`` may run admin ``command`` (``RELIABILITY_ADMIN_ACTORS``, then the callback)."""
        if validate_actor(actor) is not None:
            return False
        if actor in self.app.config.admin_actor_set:
            return True
        callback = self.permission
        if callback is None:
            return False
        try:
            return bool(callback(actor, command))
        except Exception:  # dbfault: no fault (the application's check failed: refuse, never allow)
            log.exception("the permission callback failed for command %s; refusing", printable(command))
            return False

    def authorize(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CommandResult | None:
        """None when ``cmd`` may run with these arguments; else the ``rejected``/``denied`` result.

        A denial is audited (``admin.denied``) with the actor and the command; an actor name that is
        not valid (too long, empty, not text, invalid Unicode) is refused without storing it.
        """
        if cmd.actor_param is None:
            return None
        try:
            bound = inspect.signature(cmd.fn).bind(self.app, *args, **kwargs)
        except TypeError as exc:  # dbfault: no fault (the caller passed arguments the command does not take)
            return CommandResult("rejected", f"Command {cmd.name!r} was called with the wrong arguments: {exc}.")
        bound.apply_defaults()
        actor = bound.arguments.get(cmd.actor_param)
        if actor is None or (isinstance(actor, str) and not actor.strip()):
            actor = "(anonymous)"
        else:
            problem = validate_actor(actor)
            if problem is not None:
                return CommandResult("rejected", f"{problem} Nothing was changed.")
            if self.is_authorized(actor, cmd.name):
                return None
        target = bound.arguments.get("name")
        self.parts.audit.record(actor, "admin.denied", target if isinstance(target, str) else "",
                             {"command": cmd.name})
        hint = "" if self.app.config.admin_actor_set or self.permission else \
            " No administrators are configured (RELIABILITY_ADMIN_ACTORS)."
        return CommandResult("denied", f"{actor} is not allowed to run {cmd.name!r}; nothing was changed.{hint}")

    def _auth_mac(self, key: str, command: str, args: list[Any], kwargs: dict[str, Any], actor: str,
                  audit_key: bytes | None = None) -> str:
        message = json.dumps([key, command, args, kwargs, actor], sort_keys=True, ensure_ascii=False)
        return hmac.new(self.parts.audit.key if audit_key is None else audit_key, message.encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def _key_id(self, audit_key: bytes | None = None) -> str:
        """Names the audit key without revealing it (an HMAC of a fixed text): a queued admin write carries it, so
        one accepted under another key is told apart from one edited in the file."""
        key = self.parts.audit.key if audit_key is None else audit_key
        return hmac.new(key, b"reliability queued-write key id", hashlib.sha256).hexdigest()[:16]

    def _keys_by_id(self) -> dict[str, bytes]:
        """The audit keys a queued admin write may have been accepted under, by their queued-write id: the current
        key and the retired ones (``audit_previous_keys``). After a rotation, writes queued under the old key are
        still replayed (they waited forever, named in health as accepted under another key)."""
        ring = getattr(self.parts.audit, "keyring", None)
        keys = list(ring().values()) if callable(ring) else [self.parts.audit.key]
        return {self._key_id(k): k for k in reversed(keys)} | {self._key_id(): self.parts.audit.key}

    def _other_key(self, cmd: Command, entry: QueuedWrite) -> str | None:
        """The key id of a queued admin write accepted under an audit key this runtime does not hold, else None."""
        key_id = (entry.auth or {}).get("key_id")
        if cmd.actor_param is None or not isinstance(key_id, str) or key_id in self._keys_by_id():
            return None
        return key_id

    def _replay_authorized(self, cmd: Command, entry: QueuedWrite) -> str | None:
        """None when a queued admin write carries the authorization decided when it was accepted."""
        if cmd.actor_param is None:
            return None
        auth = entry.auth or {}
        actor, mac = auth.get("actor"), auth.get("mac")
        if not isinstance(actor, str) or not isinstance(mac, str):
            return "it carries no authorization record (it was not accepted by this runtime)"
        key_id = auth.get("key_id")
        audit_key = self._keys_by_id().get(key_id) if isinstance(key_id, str) else None
        expected = self._auth_mac(entry.key, entry.command, entry.args, entry.kwargs, actor, audit_key)
        if not hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "surrogatepass")):
            return "its authorization record does not match its content (the queue file was edited)"
        return None

    def get(self, name: str) -> Command | None:
        """The command called ``name``, if registered."""
        return self._commands.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def names(self) -> list[str]:
        """Registered command names, sorted."""
        return sorted(self._commands)

    # -- running -------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while a fault is known or writes are waiting (this runtime's, or another process's it can
        apply: see :meth:`waiting`)."""
        return self.waiting() or self.fault is not None or self._own_waiting() > 0

    def _waits_elsewhere(self, entry: QueuedWrite) -> bool:
        """A queued write this runtime leaves for another one (see :meth:`_replay_locked`): a command not
        registered here, queued by another process or an earlier run, or an admin write accepted under an
        audit key this runtime does not hold."""
        cmd = self._commands.get(entry.command)
        if cmd is None:
            return entry.origin != self.queue.origin
        return self._other_key(cmd, entry) is not None

    def _own_waiting(self) -> int:
        """How many queued writes this runtime can apply itself. Those it leaves for another runtime do not
        count: this runtime's writes do not wait behind them (a new write command would otherwise be queued and
        its caller told the database is unavailable while it is fine, for as long as the other one waits)."""
        if not len(self.queue):
            return 0
        return sum(1 for e in self.queue.pending() if not self._waits_elsewhere(e))

    def run(self, name: str, /, *args: Any, idempotency_key: str | None = None, **kwargs: Any) -> CommandResult:
        """Run command ``name``; never raises for database faults (see :class:`CommandResult`).

        An admin command (registered with ``actor_param``) runs only for an authorized actor,
        taken from its own arguments; see :meth:`run_as` to pass the actor separately.
        """
        cmd = self._commands.get(name)
        if cmd is None:
            known = ", ".join(self.names()) or "none"
            return CommandResult("rejected", f"Unknown command {printable(name)!r}. Known commands: {known}.")
        if cmd.validate is not None:
            try:
                problem = cmd.validate(*args, **kwargs)
            except TypeError as exc:  # dbfault: no fault (arguments the command does not take)
                problem = f"Command {name!r} was called with the wrong arguments: {exc}."
            if problem:
                return CommandResult("rejected", problem)
        refused = self.authorize(cmd, args, kwargs)
        if refused is not None:
            return refused
        if cmd.needs is Needs.NONE:
            return CommandResult("ok", "", cmd.fn(self.app, *args, **kwargs), pending=len(self.queue))
        if self.degraded:
            self.recover()
        if cmd.needs is Needs.READ:
            return self._read(cmd, args, kwargs)
        return self._write(cmd, args, kwargs, idempotency_key)

    def run_as(self, actor: str, name: str, /, *args: Any, idempotency_key: str | None = None,
               **kwargs: Any) -> CommandResult:
        """Run command ``name`` as ``actor``: the one way for a front end (the CLI) to say who calls.

        For an admin command ``actor`` fills the command's actor parameter (giving another actor
        there too is refused) and is authorized as in :meth:`run`; other commands ignore it.
        """
        cmd = self._commands.get(name)
        if cmd is not None and cmd.actor_param is not None:
            given = kwargs.get(cmd.actor_param, actor)
            if given != actor:
                return CommandResult("rejected", f"Command {name!r} was given two actors ({printable(actor)} and "
                                     f"{printable(given)}); nothing was changed.")
            kwargs[cmd.actor_param] = actor
        return self.run(name, *args, idempotency_key=idempotency_key, **kwargs)

    def _read(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CommandResult:
        try:
            value = cmd.fn(self.app, *args, **kwargs)
        except DatabaseError as err:
            if err.action is RecoveryAction.RAISE:
                return CommandResult("error", err.user_message, fault=str(err.kind), pending=len(self.queue))
            self._degrade(err.kind)
            return CommandResult("unavailable", err.user_message, fault=str(err.kind), pending=len(self.queue))
        return CommandResult("ok", "", value, pending=len(self.queue))

    def _write(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None) -> CommandResult:
        refused = self.parts.gate.refusal()
        if refused is not None:
            # A file seen damaged takes writes into its intact tables, which a recovery that restores a
            # backup then drops: the write waits in the queue (durable) until the file is known sound.
            log.warning("command %s queued, not written: %s", cmd.name, refused)
            self._degrade(ErrorKind.CORRUPT)
        elif self._own_waiting() == 0:
            try:
                if key is None:
                    value = self.app.run_in_transaction(cmd.fn, self.app, *args, **kwargs)
                else:
                    entry = QueuedWrite(key, 0, cmd.name, list(args), dict(kwargs), time.time())
                    applied, value = self.app.run_in_transaction(self._apply, cmd, entry)
                    if not applied:
                        return CommandResult("ok", "This change was already saved.", queue_key=key)
                return CommandResult("ok", "", value)
            except DatabaseError as err:
                if err.action is RecoveryAction.RAISE:
                    return CommandResult("error", err.user_message, fault=str(err.kind))
                self._degrade(err.kind)
        # Writes already waiting go first: a new one must not overtake them.
        return self._enqueue(cmd, args, kwargs, key)

    def _enqueue(self, cmd: Command, args: tuple[Any, ...], kwargs: dict[str, Any], key: str | None) -> CommandResult:
        fault = self.fault or ErrorKind.UNAVAILABLE
        auth = None
        if cmd.actor_param is not None:
            # Authorized just now (run() checked): keep that decision with the write, MAC'ed with the
            # audit key so replay neither re-decides it nor trusts an entry added to the file by hand.
            key = key or uuid.uuid4().hex
            bound = inspect.signature(cmd.fn).bind(self.app, *args, **kwargs)
            bound.apply_defaults()
            actor = str(bound.arguments[cmd.actor_param])
            auth = {"actor": actor, "mac": self._auth_mac(key, cmd.name, list(args), dict(kwargs), actor),
                    "key_id": self._key_id()}
        try:
            entry = self.queue.put(cmd.name, args, kwargs, key, auth)
        except QueueFullError as exc:
            log.error("%s", exc)
            return CommandResult("rejected", "The database is unavailable and too many changes are already "
                                 "waiting, so this change was NOT saved. Please try again later.",
                                 fault=str(fault), pending=len(self.queue))
        except ValueError as exc:
            return CommandResult("rejected", str(exc), fault=str(fault), pending=len(self.queue))
        n = len(self.queue)
        self._backlogged = True
        return CommandResult(
            "queued",
            f"{KIND_INFO[fault].user_message} Your change was accepted and will be saved automatically "
            f"when the database is available again ({n} change{'s' if n != 1 else ''} waiting).",
            queue_key=entry.key, fault=str(fault), pending=n)

    # -- degradation and recovery --------------------------------------------------------------
    def failed(self, op: str, sql: str | None, err: DatabaseError, seconds: float, attempts: int) -> None:
        """An error reached a caller: one that says the database is not usable degrades it (observer)."""
        if err.action is not RecoveryAction.RAISE:
            self._degrade(err.kind)

    def _degrade(self, kind: ErrorKind) -> None:
        if self.fault is None:
            log.warning("database unavailable (%s): serving what does not need it, queueing writes", kind)
        self.fault = kind
        self._last_probe = time.monotonic()

    # -- the executor's backlog port --------------------------------------------------------------
    def waiting(self) -> bool:
        """True while writes queued here wait, or writes of commands registered here that another process
        (the ``reliability`` command line, another worker) queued in the shared file since this runtime last
        looked: a direct write must replay them first. Without the second half, a change the command line
        acknowledged as queued ("will be saved automatically") waited until this runtime itself degraded or
        restarted, and a later direct change of the same row was then overwritten by it."""
        if self.queue.refresh_if_changed() and any(e.command in self._commands for e in self.queue.pending()):
            self._backlogged = True
            # New work, not a database known to be down: the recheck interval (which spares a failing
            # database) does not make it wait, so the next command replays it instead of queueing behind it.
            self._last_probe = float("-inf")
        return self._backlogged

    def replay_first(self) -> None:
        """Before a direct write (``db.execute`` …) while writes wait here: replay them first, so
        an earlier queued write cannot land after, and overwrite, a later direct one.

        :raises DatabaseError: when the backlog cannot be saved now (the direct write must fail too).
        """
        report = self.replay()
        if report.error is not None and len(self.queue):
            # The backlog could not be saved (its retries are spent): the direct write may not
            # overtake it, so it fails now with the same fault instead of retrying all over again.
            kind = self.fault or ErrorKind.UNAVAILABLE
            raise DatabaseError(kind, f"{len(self.queue)} queued write(s) must be saved first and the database "
                                      f"is still unavailable ({report.error})")

    def recover(self, *, force: bool = False) -> ReplayReport | None:
        """Replay the backlog if the recheck interval has passed (or ``force``); None when not tried."""
        now = time.monotonic()
        if not force and now - self._last_probe < self.recheck_interval:
            return None
        self._last_probe = now
        return self.replay()

    def replay(self) -> ReplayReport:
        """Apply the queued writes in order, exactly once each; stop at the first unavailability.

        With ``audit_first``, audit entries written to the fallback file during the outage go in first
        (outside the runtime's lock, in the audit log's own lock order), so they precede those the
        replayed writes add; when they cannot, the replay waits too (the database is still
        unavailable: a replay would spend a second retry series on the same fault, and could not keep
        that order). Nor, with or without ``audit_first``, while ``parts.gate`` refuses (the file was seen
        damaged and no recovery or clean integrity check has cleared it): its intact tables would take the
        writes, and a recovery that restores a backup would drop them with the file, so they stay in the
        queue (and the audit entries in the fallback) until it is sound.
        Each write runs through ``parts.transact``: a replay never starts another. Writes other processes
        queued in the same file (other workers, the ``reliability`` command line) are read first and
        replayed too; each is still applied once (``reliability_applied_writes``).
        """
        self.queue.refresh()
        damaged = self.parts.gate.refusal() if len(self.queue) else None
        if damaged is not None:
            log.warning("write queue not replayed: %s", damaged)
            self._degrade(ErrorKind.CORRUPT)
            return ReplayReport(0, 0, 0, len(self.queue), str(ErrorKind.CORRUPT))
        if len(self.queue) and self.audit_first and self.parts.audit.try_reconcile(self.parts.transact) is None:
            kind = self.fault or ErrorKind.UNAVAILABLE
            log.info("write queue not replayed: the audit fallback could not be saved first (%s)", kind)
            return ReplayReport(0, 0, 0, len(self.queue), str(kind))
        with self.parts.lock:
            return self._replay_locked()

    def _replay_locked(self) -> ReplayReport:
        applied = skipped = failed = 0
        failures: list[tuple[str, str]] = []
        error: str | None = None
        elsewhere = other_keys = 0
        for entry in self.queue.pending():
            cmd = self._commands.get(entry.command)
            if self._waits_elsewhere(entry):
                # Queued by another process (the command line's admin commands, another program on the file)
                # or an earlier run, for a command not registered here: it waits for a runtime that has it, and
                # does not hold this runtime's own writes hostage (they would wait behind it, and direct writes
                # and write commands with them).
                elsewhere += 1
                if cmd is None:
                    continue
                # An admin write whose authority cannot be checked with this key, and no proof of an edit either:
                # the command line (or another program) was run with another audit key. It waits, named in health,
                # for a runtime with that key (set aside it would drop a change acknowledged as queued).
                other_key = self._other_key(cmd, entry)
                if entry.key not in self._other_keys_logged:
                    self._other_keys_logged.add(entry.key)
                    log.error("queued write %s (%s by %s) was accepted under another audit key (id %s; this "
                              "runtime's is %s): it waits for a runtime with that key. Give the command line and the "
                              "application the same RELIABILITY_AUDIT_HMAC_KEY or audit key file "
                              "(RELIABILITY_AUDIT_KEY_PATH)", entry.key, entry.command,
                              printable(str((entry.auth or {}).get("actor"))), other_key, self._key_id())
                other_keys += 1
                continue
            if cmd is None:
                error = f"command {entry.command!r} is not registered; replay stops until it is"
                log.error("queued write %s: %s", entry.key, error)
                break
            unauthorized = self._replay_authorized(cmd, entry)
            if unauthorized is not None:
                reason = f"admin command {entry.command!r} not replayed: {unauthorized}"
                log.error("queued write %s refused, set aside: %s", entry.key, reason)
                self.queue.mark_failed(entry.key, reason)
                failures.append((entry.key, reason))
                failed += 1
                continue
            try:
                done, _ = self.parts.transact(self._apply, cmd, entry)
            except DatabaseError as err:
                if err.action is RecoveryAction.RAISE:
                    reason = f"{err.kind}: {err.detail}"
                    log.error("queued write %s (%s) refused by the database, set aside: %s",
                              entry.key, entry.command, reason)
                    self.queue.mark_failed(entry.key, reason)
                    failures.append((entry.key, reason))
                    failed += 1
                    continue
                self._degrade(err.kind)
                error = str(err.kind)
                break
            self.queue.mark_done(entry.key)
            applied += done
            skipped += not done
        if error is None and len(self.queue) == elsewhere:
            self._backlogged = False
            self.fault = None
            if not elsewhere:
                self.queue.compact()
            if applied or skipped:
                log.info("write queue replayed: %d applied, %d already applied, %d failed",
                         applied, skipped, failed)
            if elsewhere:
                log.info("write queue: %d write(s) of commands not registered here wait for a runtime that has "
                         "them (queued by another process or an earlier run)", elsewhere)
        self._other_keys = other_keys
        return ReplayReport(applied, skipped, failed, len(self.queue), error, failures)

    def _apply(self, cmd: Command, entry: QueuedWrite) -> tuple[bool, Any]:
        db = self.app
        db.execute(APPLIED_TABLE_SQL)
        if db.fetch_one("SELECT 1 FROM reliability_applied_writes WHERE key = ?", (entry.key,)) is not None:
            return False, None
        value = cmd.fn(db, *entry.args, **entry.kwargs)
        db.execute("INSERT INTO reliability_applied_writes (key, command, applied_at) VALUES (?, ?, ?)",
                   (entry.key, entry.command, time.time()))
        return True, value

    def health_extra(self) -> tuple[dict[str, Any], list[str]]:
        """Health fields (the backlog) and reasons to report degraded."""
        n = len(self.queue)
        reasons = []
        own = self._own_waiting()
        if own:
            reasons.append(f"{own} write(s) queued while the database was unavailable")
        if n - own:
            reasons.append(f"{n - own} queued write(s) wait for another runtime (commands not registered here, or "
                           "admin writes accepted under another audit key)")
        if self._other_keys and n:
            reasons.append(f"{self._other_keys} queued admin write(s) were accepted under another audit key and wait "
                           "for a runtime with it (the command line and the application must share "
                           "RELIABILITY_AUDIT_HMAC_KEY or RELIABILITY_AUDIT_KEY_PATH)")
        if self.queue.failed:
            reasons.append(f"{len(self.queue.failed)} queued write(s) were refused on replay")
        extra = {"write_queue": {"pending": n, "failed": len(self.queue.failed), "path": str(self.queue.path),
                                 "max": self.queue.max_entries},
                 "degraded_by": str(self.fault) if self.fault else None}
        return extra, reasons

