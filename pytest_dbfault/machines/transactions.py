"""P6 transaction atomicity and P7 rollback: multi-leg writes struck by faults half way."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .workload import AppError, Workload

#: What a caller may try on the connection ``with db.transaction() as conn`` yields to end the transaction behind
#: the runtime's back (README: refused); each ends SQLite's transaction when it is let through.
_ENDINGS = ("commit", "rollback", "close", "executescript")
#: What interrupts a ``with db.transaction()`` block without being an ``Exception``: Ctrl-C in the middle of the
#: block (the interpreter's SIGINT handler raises ``KeyboardInterrupt``), ``sys.exit()`` in a worker whose framework
#: catches ``SystemExit`` and carries on.
_INTERRUPTS: dict[str, type[BaseException]] = {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit}
#: A parent and a child table whose foreign key is checked at COMMIT (``DEFERRABLE INITIALLY DEFERRED``): a child row
#: naming no parent makes the COMMIT itself fail, the one statement of a transaction that fails that way.
_FK_TABLES = ("CREATE TABLE IF NOT EXISTS fk_parent (id INTEGER PRIMARY KEY)",
              "CREATE TABLE IF NOT EXISTS fk_child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL "
              "REFERENCES fk_parent (id) DEFERRABLE INITIALLY DEFERRED)")


class TransactionMachine(Workload):
    """The workload's ``transfer`` rule does the work; faults also come between transactions."""

    core_groups = frozenset(("transfer", "nested"))
    fault_kinds = ("none", "locked", "disk_full", "disconnect_close")

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(endings=st.permutations(_ENDINGS), first=st.integers(0, 12), second=st.integers(13, 20),
          fails=st.booleans())
    def end_transaction_from_inside(self, endings: list[str], first: int, second: int, fails: bool) -> None:
        """P6: inside ``with db.transaction() as conn``, a write, then ``conn.commit()``, ``rollback()``,
        ``close()`` and ``executescript()`` (each one, in a drawn order), then a second write, then maybe the
        application's own exception.

        The runtime owns the transaction: each ending call must be refused (a ``misuse`` DatabaseError) and
        change nothing, so the block stays one unit: both writes when it ends normally, neither when it
        raises. An ending let through commits (or drops) the first write on its own, and the rest runs
        outside any transaction: the failed block leaves rows behind, or a committed block loses one."""
        from reliability import DatabaseError

        keys = {f"user-{first}": self.text(), f"user-{second}": self.text()}
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        refused: list[Any] = []
        tried: list[str] = []
        ran = [0]  # statements that went through the runtime (booked by hand below)

        def run() -> None:
            with self.db.transaction() as conn:
                rows = iter(keys.items())
                conn.execute(sql, next(rows))
                ran[0] += 1
                for ending in endings:
                    tried.append(ending)
                    try:
                        if ending == "executescript":
                            conn.executescript("SELECT 1;")
                        else:
                            getattr(conn, ending)()
                    except DatabaseError as err:
                        refused.append(err)
                    if len(refused) < len(tried):
                        # Let through: stop here (judged below), before a statement on a handle it may have
                        # closed fails with an error of its own that would be judged first.
                        raise AppError(f"conn.{ending}() was let through")
                conn.execute(sql, next(rows))
                ran[0] += 1
                if fails:
                    raise AppError("the application gave up after its second write")

        try:
            out = self.call("transaction", run)
        except AppError:
            out = None
            self.model.ledger.app_aborts += 1
        # The statements inside are booked by hand: each ran once through the runtime.
        self.model.ledger.ok["execute"] += ran[0]
        self.model.ledger.oplog[("execute", "ok")] += ran[0]
        committed = out is not None and out.ok
        if committed:
            self.model.kv.update(keys)
        wrong = [(t, str(e.kind)) for t, e in zip(tried, refused, strict=False) if str(e.kind) != "misuse"]
        self.check(6, len(refused) == len(endings) and not wrong,
                   lambda: (f"conn.{tried[-1]}() inside db.transaction() was let through" if len(refused) < len(tried)
                            else f"conn.{wrong[0][0]}() inside db.transaction() was refused as {wrong[0][1]}")
                           + " (expected a misuse error: the with-block owns the transaction)")
        if self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in keys),
                   lambda: f"a transaction with conn.{'/'.join(endings)}() tried inside it "
                           f"({'committed' if committed else 'failed'}) left { {k: stored.get(k) for k in keys} }, "
                           f"expected { {k: self.model.kv.get(k) for k in keys} } (all or nothing)")
        if not committed:
            self.check_rolled_back(None)

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), later=st.integers(0, 12), interrupt=st.sampled_from(sorted(_INTERRUPTS)),
          nested=st.booleans(), restart=st.booleans())
    def interrupted_transaction(self, first: int, later: int, interrupt: str, nested: bool, restart: bool) -> None:
        """P7: a ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) raised inside
        ``with db.transaction()`` (or inside a nested one) after a write, and caught by the application outside it.
        The block is over: its write must be rolled back, the write lock released (another connection can write),
        and the manager usable as before, so the application's next ``db.execute`` is an autocommit write
        acknowledged only once it is in the file: another connection reads it at once, and it is still there after
        a restart. A transaction left open by the interrupt swallows every later write into it, each acknowledged
        and lost at close."""
        key, value = f"user-{first}", self.text()
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        raised = _INTERRUPTS[interrupt]
        ran = [0]

        def run() -> None:
            with self.db.transaction():
                self.db.execute(sql, (key, value))
                ran[0] += 1
                if nested:
                    with self.db.transaction():
                        self.db.execute(sql, (f"user-{first + 13}", self.text()))
                        ran[0] += 1
                        raise raised(f"{interrupt} inside a nested db.transaction()")
                raise raised(f"{interrupt} inside db.transaction()")

        interrupted = False
        try:
            self.call("transaction", run)
        except (KeyboardInterrupt, SystemExit):
            interrupted = True
            self.model.ledger.app_aborts += 1
        # The statements inside are booked by hand: each ran once through the runtime.
        self.model.ledger.ok["execute"] += ran[0]
        self.model.ledger.oplog[("execute", "ok")] += ran[0]
        if not interrupted or self.writes_queued():
            return  # (a write inside failed first: the interrupt never came)
        when = f"{interrupt} inside {'a nested ' if nested else ''}db.transaction(), caught outside it"
        keys = [key, f"user-{first + 13}"] if nested else [key]
        stored = self.stored_kv()
        self.check(7, all(stored.get(k) == self.model.kv.get(k) for k in keys),
                   lambda: f"after {when}, the file holds { {k: stored.get(k) for k in keys} }: the block's "
                           f"writes were not rolled back (expected { {k: self.model.kv.get(k) for k in keys} })")
        with self.raw() as raw:
            # (half a second: a transaction the interrupt left open holds the lock for ever, while a write the
            # runtime's own thread makes meanwhile is over in milliseconds and must not read as a violation)
            raw.execute("PRAGMA busy_timeout = 500")
            try:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
                why = None
            except Exception as exc:
                why = str(exc)
        self.check(7, why is None, lambda: f"after {when}, the runtime still holds the write lock: another "
                                           f"connection's write fails with {why!r}")
        # The application carries on: its next write is an autocommit write, in the file once acknowledged.
        after_key = f"user-{later}"
        out = self.upsert(later)
        if not out.ok or self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(7, stored.get(after_key) == self.model.kv[after_key],
                   lambda: f"after {when}, db.execute() of {after_key} was acknowledged but another connection "
                           f"reads {stored.get(after_key)!r}: it went into a transaction the interrupt left open")
        if restart:
            self.reopen()
            stored = self.stored_kv()
            self.check(7, stored.get(after_key) == self.model.kv[after_key],
                       lambda: f"after {when}, db.execute() of {after_key} was acknowledged, yet after a restart "
                               f"the file holds {stored.get(after_key)!r}: the write was lost at close")

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), second=st.integers(13, 20),
          raises=st.sampled_from(("inside", "after", "none")))
    def with_conn_block(self, first: int, second: int, raises: str) -> None:
        """P6: ``with conn:`` (the sqlite3 idiom) on the connection ``with db.transaction() as conn`` yields: a
        write before it, one inside it, then maybe the application's own exception, raised inside the
        ``with conn:`` block or after it, still inside the transaction.

        The transaction is the runtime's: ``with conn:`` neither commits on its own nor swallows what is raised
        inside it. An exception raised there reaches the caller, and then neither write is in the file; one raised
        after the ``with conn:`` block undoes both too (its exit committed nothing); with none, both are in. An exit
        that returned True would swallow the exception and commit the half-done block as if it had succeeded."""
        keys = {f"user-{first}": self.text(), f"user-{second}": self.text()}
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        ran = [0]

        def run() -> None:
            with self.db.transaction() as conn:
                rows = iter(keys.items())
                conn.execute(sql, next(rows))
                ran[0] += 1
                with conn:
                    conn.execute(sql, next(rows))
                    ran[0] += 1
                    if raises == "inside":
                        raise AppError("the application gave up inside `with conn:`")
                if raises == "after":
                    raise AppError("the application gave up after its `with conn:` block")

        reached = False
        try:
            out = self.call("transaction", run)
        except AppError:
            out = None
            reached = True
            self.model.ledger.app_aborts += 1
        # The statements inside are booked by hand: each ran once through the runtime.
        self.model.ledger.ok["execute"] += ran[0]
        self.model.ledger.oplog[("execute", "ok")] += ran[0]
        if raises != "none" and ran[0] == 2:  # (both writes ran: the application's exception was raised)
            self.check(6, reached,
                       lambda: f"an exception raised {raises} `with conn:` inside db.transaction() did not reach the "
                               f"caller (the block {'committed' if out is not None and out.ok else 'failed'} "
                               "instead): a with-block on the yielded connection swallowed it")
        committed = out is not None and out.ok
        if committed:
            self.model.kv.update(keys)
        if self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in keys),
                   lambda: f"a transaction with a `with conn:` block (exception raised: {raises}; "
                           f"{'committed' if committed else 'failed'}) left { {k: stored.get(k) for k in keys} }, "
                           f"expected { {k: self.model.kv.get(k) for k in keys} } (all or nothing)")
        if not committed:
            self.check_rolled_back(None)

    #: the next fk_parent id the manual_commit rule inserts (ids start at 1: -1 names no parent)
    _fk_next = 1

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), later=st.integers(0, 12), parent=st.sampled_from((False, True, False)),
          restart=st.booleans())
    def manual_commit(self, first: int, later: int, parent: bool, restart: bool) -> None:
        """P6/P7: a transaction the application opens and ends itself through ``db.execute``: ``BEGIN``, a write to
        kv, a child row whose deferred foreign key names a parent (inserted in the same transaction) or none,
        ``COMMIT``. With no parent the COMMIT fails (constraint), as SQLite checks a deferred key there.

        A failed COMMIT leaves nothing: the kv write is not in the file, no transaction is left open (the runtime
        rolls it back, as it does a failed autocommit write), the write lock is free, and the application's next
        ``db.execute`` is an autocommit write in the file once acknowledged (another connection reads it at once,
        and it is still there after a restart). A transaction the failed COMMIT left open swallows every later
        write into it, each acknowledged and lost at close. A COMMIT that succeeds keeps both rows.

        Judged where the runtime runs that COMMIT itself (its redo journal open: the COMMIT goes through the
        journaled commit path, which rolls a failure back). With the journal off the runtime passes the COMMIT
        to SQLite as it is, and SQLite keeps the transaction open after a deferred key fails (so the application
        can fix the rows and COMMIT again): there the rule ends it with ``ROLLBACK`` as a careful application
        would, and judges the rest."""
        key, value = f"user-{first}", self.text()
        for ddl in _FK_TABLES:
            if not self.call("execute", self.db.execute, ddl).ok:
                return
        journaled = self.db.redo_journal is not None  # (read before: a failed COMMIT must not change it)
        if not self.call("execute", self.db.execute, "BEGIN").ok:
            return
        steps = [("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))]
        pid = -1
        if parent:
            pid, self._fk_next = self._fk_next, self._fk_next + 1
            steps.append(("INSERT INTO fk_parent (id) VALUES (?)", (pid,)))
        steps.append(("INSERT INTO fk_child (parent) VALUES (?)", (pid,)))
        steps.append(("COMMIT", ()))
        for sql, params in steps:
            out = self.call("execute", self.db.execute, sql, params)
            if not out.ok:
                break
        committed = out.ok
        if committed:
            self.model.kv[key] = value
        failed_commit = not committed and sql == "COMMIT"  # (not a step before it)
        when = (f"db.execute('COMMIT') of a transaction opened with db.execute('BEGIN') failed "
                f"({out.error.kind if out.error is not None else 'ok'}: a child row's deferred foreign key names no "
                "parent)")
        open_tx = self.db.connection.in_transaction
        if failed_commit and journaled:
            self.check(7, not open_tx and getattr(self.db.transactions, "depth", 0) == 0,
                       lambda: f"{when}, and the runtime left the transaction open (in_transaction={open_tx}): "
                               "every later write goes into it, acknowledged and never committed")
        # (A careful application ends what SQLite left open, after a failed step before COMMIT too.)
        if open_tx and not self.call("execute", self.db.execute, "ROLLBACK").ok:
            return
        if self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(6, stored.get(key) == self.model.kv.get(key),
                   lambda: f"a transaction opened with db.execute('BEGIN') and ended with db.execute('COMMIT') "
                           f"({'committed' if committed else 'failed'}) left {key}={stored.get(key)!r} in the file, "
                           f"expected {self.model.kv.get(key)!r}")
        if committed:
            return
        self.check_rolled_back(None)
        if not failed_commit:
            return
        # The application carries on: its next write is an autocommit write, in the file once acknowledged.
        after_key = f"user-{later}"
        if not self.upsert(later).ok or self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(7, stored.get(after_key) == self.model.kv[after_key],
                   lambda: f"after {when}, db.execute() of {after_key} was acknowledged but another connection "
                           f"reads {stored.get(after_key)!r}: it went into a transaction the failed COMMIT left open")
        if restart:
            self.reopen()
            stored = self.stored_kv()
            self.check(7, stored.get(after_key) == self.model.kv[after_key],
                       lambda: f"after {when}, db.execute() of {after_key} was acknowledged, yet after a restart "
                               f"the file holds {stored.get(after_key)!r}: the write was lost at close")
