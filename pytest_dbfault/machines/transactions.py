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
#: The two ways to run a transaction, each nestable in the other.
_FORMS = ("transaction", "run_in_transaction")
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
        counts = self.transaction_counts()
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
        self.judge_counted(counts, False, when)
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
    @rule(first=st.integers(0, 12), second=st.integers(13, 20), carry_on=st.booleans())
    def connection_lost_inside_and_caught(self, first: int, second: int, carry_on: bool) -> None:
        """P6/P7: inside ``with db.transaction()``, a write, then the connection is lost (the handle closed under the
        runtime: the disconnect fault's close mode); the application catches the next statement's error, maybe
        writes once more (``carry_on``), and leaves the block normally. The transaction went with the handle: the
        block fails with a DatabaseError (P2, judged by the call), none of its writes is in the file (a statement
        after the loss never runs on a connection opened meanwhile outside the transaction: it would be saved on
        its own while the block fails), nothing is left open, and the next call works.

        ``first`` 1, 4, 7 or 10: SQLite itself ends the transaction instead of the lost handle (the second statement
        writes the first key again with the conflict clause ``OR ROLLBACK``: it fails and SQLite rolls the whole
        transaction back, as it does on a full disk inside it). The same holds: the handle is fine, so a statement
        after it would be saved on its own at once (README: a transaction is all or nothing)."""
        from reliability import DatabaseError

        by_sqlite = first % 3 == 1
        lost = "SQLite rolled back inside it" if by_sqlite else "whose connection was lost inside it"
        keys = [f"user-{first}", f"user-{second}", f"user-{(first + 1) % 13}"]
        values = {k: self.text() for k in keys}
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        inner: list[Any] = []

        def run() -> None:
            with self.db.transaction():
                out = self.call("execute", self.db.execute, sql, (keys[0], values[keys[0]]))
                if not out.ok:
                    raise out.error
                if by_sqlite:  # (keys[0] again: a conflict, and ROLLBACK is what it asks of SQLite)
                    conflict = "INSERT OR ROLLBACK INTO kv (k, v) VALUES (?, ?)"
                    inner.append(self.call("execute", self.db.execute, conflict, (keys[0], values[keys[1]])))
                else:
                    self.inject("disconnect_close", 0)
                    inner.append(self.call("execute", self.db.execute, sql, (keys[1], values[keys[1]])))
                    self.heal("disconnect_close")
                if carry_on:
                    inner.append(self.call("execute", self.db.execute, sql, (keys[2], values[keys[2]]), faults=after))

        after = ["sqlite_rollback"] if by_sqlite else None  # (what the calls after SQLite's rollback fail with)
        out = self.call("transaction", run, faults=after)
        self.heal("disconnect_close")  # (when the block ended before its heal)
        acknowledged = [k for k, o in zip(keys[1:], inner, strict=False) if o.ok]
        self.check(6, not out.ok and isinstance(out.error, DatabaseError), lambda: (
            f"a transaction {lost} (the error caught by the application) "
            + ("committed" if out.ok else f"failed with {out.error!r}")))
        if out.ok:  # (judged above; the model follows what the file says)
            self.model.kv.update({k: values[k] for k in [keys[0], *acknowledged]})
        if self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in keys), lambda: (
            f"a transaction {lost} failed, yet the file holds "
            f"{ {k: stored.get(k) for k in keys} } (expected { {k: self.model.kv.get(k) for k in keys} }; "
            f"acknowledged inside it after the loss: {acknowledged}): not all or nothing"))
        for k in keys:  # the model follows the file, so one violation is reported once
            if stored.get(k) is not None:
                self.model.kv[k] = stored[k]
        self.check_rolled_back(None)

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), second=st.integers(13, 20), inside=st.booleans(), after=st.booleans())
    def with_conn_block(self, first: int, second: int, inside: bool, after: bool) -> None:
        """P6: ``with conn:`` (the sqlite3 idiom) on the connection ``with db.transaction() as conn`` yields: a write
        before the block, one inside it, then maybe the application's own exception, raised inside the
        ``with conn:`` block or after it, still inside the same ``db.transaction()``; see :meth:`judge_with_conn`."""
        self.judge_with_conn(first, second, inside, after, nested=False)

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), second=st.integers(13, 20), inside=st.booleans(), after=st.booleans())
    def with_conn_in_nested_transaction(self, first: int, second: int, inside: bool, after: bool) -> None:
        """P6: the same as :meth:`with_conn_block` in a nested ``db.transaction()`` (a savepoint, released or rolled
        back rather than committed) whose exception the application catches in the outer block, which then
        commits; see :meth:`judge_with_conn`."""
        self.judge_with_conn(first, second, inside, after, nested=True)

    def judge_with_conn(self, first: int, second: int, inside: bool, after: bool, nested: bool) -> None:
        """``with conn:`` on the connection ``with db.transaction() as conn`` yields, in the outermost transaction
        or (``nested``) in a nested one whose exception the application catches in the outer block: a write
        before the block, one inside it, then maybe the application's own exception, raised inside the
        ``with conn:`` block (``inside``) or after it (``after``), still inside the same ``db.transaction()``.

        The transaction is the runtime's: ``with conn:`` neither commits on its own nor swallows what is raised
        inside it. An exception raised there reaches the caller (outermost: the rule; nested: the application's
        handler in the outer block), and then neither write of that transaction is in the file; one raised after
        the ``with conn:`` block undoes both too (its exit committed nothing); with none, both are in. An exit that
        returned True would swallow the exception and commit the half-done block as if it had succeeded."""
        keys = {f"user-{first}": self.text(), f"user-{second}": self.text()}
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        raises = "inside" if inside else "after" if after else "none"
        ran = [0]
        handled: list[AppError] = []
        live: list[object] = []

        def block() -> None:
            with self.db.transaction() as conn:
                rows = iter(keys.items())
                conn.execute(sql, next(rows))
                ran[0] += 1
                try:  # every attribute the runtime does not take over is the live connection's (TransactionConnection)
                    live.append(conn.in_transaction)
                except Exception as exc:  # noqa: BLE001 (judged below, whatever it is)
                    live.append(exc)
                with conn:
                    conn.execute(sql, next(rows))
                    ran[0] += 1
                    if inside:
                        raise AppError("the application gave up inside `with conn:`")
                if after and not inside:  # (drawn with inside: only the exception raised inside)
                    raise AppError("the application gave up after its `with conn:` block")

        def run() -> None:
            if not nested:
                block()
                return
            with self.db.transaction():  # the outer block: nothing of its own, it catches the inner failure
                try:
                    block()
                except AppError as exc:
                    handled.append(exc)

        reached = False
        counts = self.transaction_counts()
        try:
            out = self.call("transaction", run)
        except AppError:
            out = None
            reached = True
            self.model.ledger.app_aborts += 1
        # The statements inside are booked by hand: each ran once through the runtime.
        self.model.ledger.ok["execute"] += ran[0]
        self.model.ledger.oplog[("execute", "ok")] += ran[0]
        where = "a nested db.transaction() (caught in the outer block)" if nested else "db.transaction()"
        self.check(6, not ran[0] or live[:1] == [True], lambda: (
            f"inside {where}, after a write, conn.in_transaction on the connection it yields answered {live[:1]}: "
            "every attribute the runtime does not take over must be the live connection's (True there)"))
        if out is None or out.ok:
            self.judge_counted(counts, out is not None, f"a `with conn:` block in {where} (exception raised: {raises})")
        if raises != "none" and ran[0] == 2:  # (both writes ran: the application's exception was raised)
            self.check(6, bool(handled) if nested else reached,
                       lambda: f"an exception raised {raises} `with conn:` inside {where} did not reach the "
                               f"{'handler' if nested else 'caller'}: a with-block on the yielded connection "
                               "swallowed it, and the block went on as if it had succeeded")
        committed = out is not None and out.ok and not (nested and handled)
        if committed:
            self.model.kv.update(keys)
        if self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in keys),
                   lambda: f"a transaction with a `with conn:` block in {where} (exception raised: {raises}; "
                           f"{'committed' if committed else 'failed'}) left { {k: stored.get(k) for k in keys} }, "
                           f"expected { {k: self.model.kv.get(k) for k in keys} } (all or nothing)")
        if out is None or not out.ok:
            self.check_rolled_back(None)

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), later=st.integers(0, 12), begin=st.sampled_from(("BEGIN", "BEGIN IMMEDIATE")),
          end=st.sampled_from(("COMMIT", "END")), retry=st.booleans(), restart=st.booleans())
    def manual_commit(self, first: int, later: int, begin: str, end: str, retry: bool, restart: bool) -> None:
        """P6/P7: a transaction the application opens and ends itself through ``db.execute``: ``BEGIN``, a write to
        kv, a child row whose deferred foreign key names no parent, ``COMMIT`` (or ``END``), which fails
        (constraint: SQLite checks a deferred key at COMMIT). Then the application's next write: an autocommit
        ``db.execute``, or the same transaction again with the parent row (its COMMIT succeeds). Judged by
        :meth:`judge_failed_manual_commit`."""
        key, value = f"user-{first}", self.text()
        if not self.fk_tables():
            return
        pid = self.new_parent_id()
        self.judge_failed_manual_commit(
            "a child row's deferred foreign key names no parent", begin, end, key, value,
            [("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value)),
             ("INSERT INTO fk_child (parent) VALUES (?)", (-1,))],  # (parent ids start at 1)
            [("INSERT INTO fk_parent (id) VALUES (?)", (pid,)), ("INSERT INTO fk_child (parent) VALUES (?)", (pid,))],
            later, retry, restart)

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(first=st.integers(0, 12), later=st.integers(0, 12), retry=st.booleans(), restart=st.booleans())
    def manual_commit_after_delete(self, first: int, later: int, retry: bool, restart: bool) -> None:
        """P6/P7: a parent row with a child (committed), then a transaction the application opens and ends itself
        through ``db.execute``: ``BEGIN``, an update of kv, a ``DELETE`` of the parent while its child still names
        it (a deferred foreign key: allowed until COMMIT), ``COMMIT``, which fails (constraint). Then the
        application's next write: an autocommit ``db.execute``, or the same transaction again deleting the child
        first (its COMMIT succeeds). Judged by :meth:`judge_failed_manual_commit`."""
        key, value = f"user-{first}", self.text()
        if not self.fk_tables():
            return
        pid = self.new_parent_id()
        for sql in ("INSERT INTO fk_parent (id) VALUES (?)", "INSERT INTO fk_child (parent) VALUES (?)"):
            if not self.call("execute", self.db.execute, sql, (pid,)).ok:
                return
        self.judge_failed_manual_commit(
            "a parent row still named by a child's deferred foreign key was deleted", "BEGIN", "COMMIT", key, value,
            [("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value)),
             ("DELETE FROM fk_parent WHERE id = ?", (pid,))],
            [("DELETE FROM fk_child WHERE parent = ?", (pid,)), ("DELETE FROM fk_parent WHERE id = ?", (pid,))],
            later, retry, restart)

    def fk_tables(self) -> bool:
        """Make the parent and child tables of the manual-commit rules (True when they are there)."""
        return all(self.call("execute", self.db.execute, ddl).ok for ddl in _FK_TABLES)

    #: the next fk_parent id (ids start at 1: -1 names no parent)
    _fk_next = 1

    def new_parent_id(self) -> int:
        pid, self._fk_next = self._fk_next, self._fk_next + 1
        return pid

    def judge_failed_manual_commit(self, cause: str, begin: str, end: str, key: str, value: str,
                                   steps: list[tuple[str, tuple[Any, ...]]], fix: list[tuple[str, tuple[Any, ...]]],
                                   later: int, retry: bool, restart: bool) -> None:
        """Run ``begin``, ``steps`` (the first writes ``key`` = ``value``) and ``end`` through ``db.execute``: the
        COMMIT fails for ``cause``. Then the application's next write: the autocommit upsert of ``user-<later>``,
        or (``retry``) the same transaction with a new value of ``key`` and the ``fix`` statements.

        A failed COMMIT leaves nothing: the kv write is not in the file, no transaction is left open (the runtime
        rolls it back, as it does a failed autocommit write), the write lock is free, and the next write is in the
        file once acknowledged (another connection reads it at once, and it is still there after a restart). A
        transaction the failed COMMIT left open swallows every later write into it, each acknowledged and lost at
        close.

        "No transaction left open" holds with the redo journal on or off: SQLite itself keeps the transaction open
        after a deferred key fails at COMMIT (so that the rows can be fixed and COMMIT run again), and the runtime
        rolls it back in both of its commit paths. (With the journal off it did not, until this rule found it.)"""
        committed, failed_commit, error = self._manual_transaction(begin, steps, end)
        if committed:  # (foreign keys off: nothing to judge here)
            self.model.kv[key] = value
        when = (f"db.execute({end!r}) of a transaction opened with db.execute({begin!r}) failed ({error}: {cause})")
        open_tx = self.db.connection.in_transaction
        if failed_commit:
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
                   lambda: f"a transaction opened with db.execute({begin!r}) and ended with db.execute({end!r}) "
                           f"({'committed' if committed else 'failed'}) left {key}={stored.get(key)!r} in the file, "
                           f"expected {self.model.kv.get(key)!r}")
        if not failed_commit:
            return
        self.check_rolled_back(None)
        # The application carries on: its next write is in the file once acknowledged.
        if retry:
            after_key, after_value = key, self.text()
            acked, _failed, _error = self._manual_transaction(
                begin, [("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (after_key, after_value)), *fix], end)
            if acked:
                self.model.kv[after_key] = after_value
            elif self.db.connection.in_transaction:  # (judged by the calls: end it to judge the rest)
                self.call("execute", self.db.execute, "ROLLBACK")
            how = "the same transaction retried with its rows fixed"
        else:
            after_key = f"user-{later}"
            acked = self.upsert(later).ok
            how = f"db.execute() of {after_key}"
        if not acked or self.writes_queued():
            return
        stored = self.stored_kv()
        self.check(7, stored.get(after_key) == self.model.kv[after_key],
                   lambda: f"after {when}, {how} was acknowledged but another connection reads "
                           f"{after_key}={stored.get(after_key)!r}: it went into a transaction the failed COMMIT "
                           "left open")
        if restart:
            self.reopen()
            stored = self.stored_kv()
            self.check(7, stored.get(after_key) == self.model.kv[after_key],
                       lambda: f"after {when}, {how} was acknowledged, yet after a restart the file holds "
                               f"{after_key}={stored.get(after_key)!r}: the write was lost at close")

    def transaction_counts(self) -> tuple[int, int, int] | None:
        """``db.transactions``' counts of outermost transactions (commits, rollbacks) and the retry sleeps so far;
        None for a runtime without those counters."""
        manager = getattr(self.db, "transactions", None)
        commits, rollbacks = getattr(manager, "commits", None), getattr(manager, "rollbacks", None)
        if not isinstance(commits, int) or not isinstance(rollbacks, int):
            return None
        return commits, rollbacks, len(self.time.sleeps)

    def judge_counted(self, before: tuple[int, int, int] | None, committed: bool, what: str) -> None:
        """P7: ``db.transactions`` counts each outermost transaction once, as what became of it: ``commits`` one
        more when it committed, ``rollbacks`` one more when it was rolled back (the application's exception, an
        interrupt), the other count unchanged; savepoints (nested levels) count in neither. Not judged when a retry
        ran meanwhile (each rolled-back attempt counts too)."""
        after = self.transaction_counts()
        if before is None or after is None or after[2] != before[2]:
            return
        got = (after[0] - before[0], after[1] - before[1])
        want = (1, 0) if committed else (0, 1)
        self.check(7, got == want, lambda: f"{what} ({'committed' if committed else 'rolled back'}): "
                                           f"db.transactions counted {got[0]} commit(s) and {got[1]} rollback(s), "
                                           f"expected {want[0]} and {want[1]} (one outermost transaction)")

    def write_lock_taken(self) -> str | None:
        """None when another connection cannot take the write lock now (``BEGIN IMMEDIATE`` without waiting fails as
        locked/busy); else what happened instead."""
        try:
            with self.raw() as raw:
                raw.execute("PRAGMA busy_timeout = 0")
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
        except Exception as exc:
            return None if "locked" in str(exc) or "busy" in str(exc).lower() else f"failed with {exc}"
        return "succeeded"

    def _manual_transaction(self, begin: str, steps: list[tuple[str, tuple[Any, ...]]],
                            end: str) -> tuple[bool, bool, str | None]:
        """``begin``, each step and ``end`` through ``db.execute``, each a checked call (stopping at the first
        failure): (committed, the COMMIT itself failed, the failed call's error kind)."""
        for sql, params in [(begin, ()), *steps, (end, ())]:
            out = self.call("execute", self.db.execute, sql, params)
            if not out.ok:
                return False, sql == end, str(out.error.kind)
        return True, False, None

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(levels=st.lists(st.tuples(st.sampled_from(_FORMS), st.integers(0, 20), st.booleans()), min_size=2,
                          max_size=3),
          outer_fails=st.booleans())
    def nested_forms(self, levels: list[tuple[str, int, bool]], outer_fails: bool) -> None:
        """P6/P7, every nesting of the two transaction forms: ``db.transaction()`` and ``db.run_in_transaction(fn)``
        inside one another, two or three levels deep (the outermost one is drawn too). Each level writes a key
        (keys may repeat across levels), runs the next level inside ``try/except`` (the application catches the
        inner failure and goes on), then maybe raises its own exception. Judged against a model of savepoints: a
        level that raises undoes its own write and everything inside it, and nothing else; the outermost one that
        raises leaves nothing. Inside each level ``db.transactions.depth`` is that level's depth; after the call
        it is 0 with no transaction open. See :meth:`judge_nesting`."""
        self.judge_nesting(levels, outer_fails)

    @precondition(lambda self: self.db is not None and not self.faults)
    @rule(form=st.sampled_from(_FORMS), first=st.integers(0, 12), second=st.integers(0, 20),
          inner=st.sampled_from(_FORMS), inner_fails=st.booleans(), outer_fails=st.booleans())
    def nested_once(self, form: str, first: int, second: int, inner: str, inner_fails: bool,
                    outer_fails: bool) -> None:
        """P6/P7: one level of nesting of either form in either form (the commonest shape, drawn on its own so
        it comes often): see :meth:`nested_forms`."""
        self.judge_nesting([(form, first, outer_fails), (inner, second, inner_fails)], outer_fails)

    def judge_nesting(self, levels: list[tuple[str, int, bool]], outer_fails: bool) -> None:
        """Run ``levels`` (form, key number, raises) nested outermost first; the outermost raises when
        ``outer_fails`` (its own flag is ignored); judge the file against the savepoint model."""
        levels = [(levels[0][0], levels[0][1], outer_fails), *levels[1:]]
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        writes = [(f"user-{n}", self.text()) for _f, n, _x in levels]
        ran = [0]
        depths: list[tuple[int, int]] = []  # (expected, seen) at each level
        caught: list[int] = []  # levels whose failure the enclosing level caught
        locked: list[str | None] = []  # at the outermost level before its first statement: another writer's fate

        returned: list[tuple[int, Any]] = []  # (level, what its form gave back) of the inner levels that ended well

        def level(i: int, *, token: str = "") -> str:
            depths.append((i + 1, getattr(getattr(self.db, "transactions", None), "depth", i + 1)))
            if i == 0:
                locked.append(self.write_lock_taken())
            self.db.execute(sql, writes[i])
            ran[0] += 1
            if i + 1 < len(levels):
                try:
                    returned.append((i + 1, enter(i + 1)))
                except AppError:
                    caught.append(i + 1)
            if levels[i][2]:
                raise AppError(f"level {i} gave up")
            return token

        def enter(i: int) -> str:
            if levels[i][0] == "run_in_transaction":
                # (the arguments passed on: positional and keyword, as the README's fn(*args, **kwargs))
                return self.db.run_in_transaction(level, i, token=f"level-{i}")
            with self.db.transaction():
                return level(i, token=f"level-{i}")

        counts = self.transaction_counts()
        try:
            out = self.call("transaction", enter, 0)
        except AppError:
            out = None
            self.model.ledger.app_aborts += 1
        self.model.ledger.ok["execute"] += ran[0]
        self.model.ledger.oplog[("execute", "ok")] += ran[0]
        shape = " > ".join(f"{f}({'raises' if x else 'ok'})" for f, _n, x in levels)
        if out is not None and not out.ok:
            return  # (a database error on a healthy runtime is judged by call())
        self.judge_counted(counts, out is not None, f"nested {shape}")

        def model(i: int, state: dict[str, str]) -> dict[str, str] | None:
            """The state after level ``i`` ran on ``state``; None when it raised (its work undone)."""
            after = dict(state)
            after[writes[i][0]] = writes[i][1]
            if i + 1 < len(levels):
                inner = model(i + 1, after)
                if inner is not None:
                    after = inner
            return None if levels[i][2] else after

        expected = model(0, dict(self.model.kv))
        if out is not None:
            returned.append((0, out.value))
        given = [(i, v) for i, v in returned if v != f"level-{i}"]
        self.check(6, not given, lambda: f"nested {shape}: the levels that ended well gave back {given}, not what "
                                         f"their block returned (level-<n>)")
        self.check(6, not locked or locked[0] is None,
                   lambda: f"{levels[0][0]} (outermost) holds no write lock before its first statement: another "
                           f"connection's BEGIN IMMEDIATE {locked[0]} (BEGIN IMMEDIATE takes it at the start)")
        self.check(6, sorted(caught) == [i for i in range(1, len(levels)) if levels[i][2]],
                   lambda: f"nested {shape}: the enclosing levels caught the failures of levels {caught}")
        if expected is not None:
            self.model.kv = expected
        if self.writes_queued():
            return
        keys = sorted({k for k, _v in writes})
        stored = self.stored_kv()
        self.check(6, all(stored.get(k) == self.model.kv.get(k) for k in keys),
                   lambda: f"nested {shape} ({'committed' if expected is not None else 'rolled back'}): the file "
                           f"holds { {k: stored.get(k) for k in keys} }, expected "
                           f"{ {k: self.model.kv.get(k) for k in keys} } (a failed level undoes its own writes and "
                           f"the levels inside it, nothing else)")
        wrong = [(e, s) for e, s in depths if e != s]
        self.check(7, not wrong, lambda: f"nested {shape}: db.transactions.depth inside the levels was "
                                         f"{[s for _e, s in depths]}, expected {[e for e, _s in depths]}")
        depth = getattr(getattr(self.db, "transactions", None), "depth", 0)
        open_tx = self.db.connection.in_transaction
        self.check(7, depth == 0 and not open_tx,
                   lambda: f"after nested {shape}: depth={depth}, in_transaction={open_tx}")
        if expected is None:
            self.check_rolled_back(None)
