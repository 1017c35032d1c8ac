"""A process running the runtime, SIGKILLed at a point its parent picks (the machines' kill -9 restart rule).

:func:`work` runs in a child process that :func:`pytest_dbfault.machines.restart.fork_and_kill` starts
(a fork of its single-threaded fork server, or of the calling process for a runtime factory that cannot be
pickled: :func:`~pytest_dbfault.machines.restart.worker_starter`) and watches through
:func:`pytest_dbfault.faults.crash.watch_child`:
it starts a :class:`~reliability.DatabaseManager` on the database and makes the writes it is given,
each ``(form, [(key, value, replace), ...])`` with ``form`` one of ``execute`` (one write),
``run_in_transaction`` or ``transaction`` (several writes, all or nothing). ``replace`` false makes
a plain ``INSERT``, which fails on a key already there: a failed write the parent must never find.

Signal points (the protocol of :mod:`pytest_dbfault.faults.crash`: a label line on one pipe, then
block until the parent answers on the other, so a kill lands exactly there):

* ``io`` before every ``write``/``pwrite``/``fsync``/``fdatasync``/``ftruncate``/``replace``/``rename``
  the runtime makes from Python (its redo journal, write queue, audit files, backups), and before
  every SQL statement SQLite starts on the runtime's connections (``BEGIN``, the writes, ``COMMIT``);
* ``ok:<i>`` when operation ``i`` returned (its acknowledgement), ``fail:<i>:<kind>`` when it raised.

After the last operation the child ends with ``os._exit(0)``: no ``close()``, nothing flushed by
Python, exactly like a kill after the last acknowledgement. Forked rather than started afresh: a new
interpreter importing the runtime costs about a second on a loaded machine, a fork milliseconds.
The hooks replace functions of the ``os`` module, which is harmless in the child (its own copy).
"""

from __future__ import annotations

import os
from typing import Any

#: How the worker writes: one statement, the retried transaction, the context-manager transaction.
FORMS = ("execute", "run_in_transaction", "transaction")


class _Points:
    """The child's end of the point protocol (its pipe writes bypass the hooked ``os.write``)."""

    def __init__(self, points_fd: int, ack_fd: int) -> None:
        self.points_fd, self.ack_fd = points_fd, ack_fd
        self.write, self.read = os.write, os.read
        self.armed = False

    def __call__(self, label: str) -> None:
        if self.armed:
            self.write(self.points_fd, label.encode() + b"\n")
            self.read(self.ack_fd, 1)


def _hook_io(point: _Points) -> None:
    """A point before each file write, flush and rename made from Python."""
    for name in ("write", "pwrite", "fsync", "fdatasync", "ftruncate", "replace", "rename"):
        real = getattr(os, name, None)
        if real is None:
            continue

        def hooked(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            point("io")
            return _real(*args, **kwargs)

        setattr(os, name, hooked)


def _hook_statements(point: _Points) -> None:
    """A point before each SQL statement on the runtime's connections (SQLite's own I/O is in C)."""
    from reliability import connection

    real_connect = connection.ConnectionManager._connect

    def connect(self: Any) -> Any:
        conn = real_connect(self)
        conn.set_trace_callback(lambda sql: point("io"))
        return conn

    connection.ConnectionManager._connect = connect  # type: ignore[method-assign]


def work(factory: Any, config: Any, ops: list[tuple[str, list[tuple[str, str, bool]]]], points_fd: int,
         ack_fd: int) -> None:
    """The child's body: start ``factory(config)`` (the runtime under test), make ``ops``, signal each point;
    never returns."""
    from reliability import DatabaseError

    point = _Points(points_fd, ack_fd)
    try:
        _hook_statements(point)
        db = factory(config)
        _hook_io(point)
        point.armed = True  # a kill during startup is another test; from here on every point counts

        def write(key: str, value: str, replace: bool) -> None:
            verb = "INSERT OR REPLACE" if replace else "INSERT"
            db.execute(f"{verb} INTO kv (k, v) VALUES (?, ?)", (key, value))

        for i, (form, writes) in enumerate(ops):
            try:
                if form == "execute":
                    write(*writes[0])
                elif form == "run_in_transaction":
                    db.run_in_transaction(lambda ws=writes: [write(*w) for w in ws])
                else:
                    with db.transaction():
                        for w in writes:
                            write(*w)
            except DatabaseError as err:
                point(f"fail:{i}:{err.kind}")
                continue
            point(f"ok:{i}")
    except BaseException as exc:  # the parent reports it: the child has no test runner of its own
        import traceback

        traceback.print_exc()
        os._exit(3 if not isinstance(exc, SystemExit) else 4)
    os._exit(0)  # no close(): the process just ends, as after a kill
