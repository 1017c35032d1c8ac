"""I/O-level faults built on the shim VFS: ``io_error``, ``enospc``, ``short_read`` and ``power_loss``
(registered by :mod:`pytest_dbfault.faults.registry`).

Each installs the shim while active, so only connections opened *after* ``inject()`` see it.
Like every fault aimed at a bare path, it acts on the SQLite build ``$DBFAULT_SQLITE_MODULE`` names
(the stdlib's ``sqlite3`` when unset; e.g. ``pysqlite3.dbapi2`` when the application uses that): the
shim of that build is installed (:func:`~.shim.get_shim`), and connections of another build never
meet the fault. Where the shim cannot be registered, ``inject()`` raises
:class:`~.errors.VfsUnavailable` with the reason (see :func:`~.shim.vfs_available`)::

    with IoErrorFault(db, ops="sync"):
        conn = sqlite3.connect(db)
        conn.execute("INSERT ...")
        conn.commit()      # OperationalError: disk I/O error (1034/SQLITE_IOERR_FSYNC)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

from ..faults.base import Fault, FaultError
from ..faults.target import path_module, resolve_target
from .errors import VfsUnavailable, VfsUsageError
from .powerloss import MODES as POWER_MODES
from .powerloss import PowerLossRecorder
from .rules import ERRORS, KINDS, OPS, FailRule
from .shim import Shim, get_shim, vfs_available


def _check_path_target(name: str, path: Any) -> None:
    """A VFS fault names files: refuse a connection or manager with what to pass instead."""
    if path is None or isinstance(path, (str, os.PathLike)):
        return
    try:
        where = resolve_target(path).path
    except FaultError:
        where = None
    hint = f" ({where})" if where is not None else ""
    raise VfsUsageError(
        f"fault {name!r} acts on files through the VFS shim and reaches only connections opened after "
        f"inject(), so it takes the database path, not {type(path).__name__}; pass the database file{hint} "
        f"and reopen (a DatabaseManager: restart it) after injecting")


def _require_shim() -> Shim:
    """The shim of the build ``$DBFAULT_SQLITE_MODULE`` names, or :class:`VfsUnavailable` with why not."""
    module = path_module()
    ok, reason = vfs_available(module)
    if not ok:
        raise VfsUnavailable(reason if module.__name__ == "sqlite3" else f"{module.__name__}: {reason}")
    return get_shim(module)


class RuleFault(Fault):
    """A fault that is one :class:`FailRule` applied while active."""

    _ops: Any = ("read", "write", "truncate", "sync")
    _error = "io_error"
    param_choices = {"ops": OPS, "kinds": KINDS, "error": tuple(ERRORS)}
    param_bounds = {"nth": (1, None), "probability": (0, 1)}

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        ops: str | Iterable[str] | None = None,
        kinds: str | Iterable[str] | None = None,
        nth: int = 1,
        probability: float | None = None,
        seed: int | None = None,
        persistent: bool = False,
        error: str | None = None,
    ) -> None:
        _check_path_target(self.name, path)
        params: dict[str, Any] = {"path": None if path is None else os.fspath(path),
                                  "ops": ops or self._ops, "kinds": kinds, "nth": nth,
                                  "probability": probability, "seed": seed, "persistent": persistent,
                                  "error": error or self._error}
        super().__init__(**params)
        ops_set = [ops] if isinstance(ops, str) else list(ops or self._ops)
        # Built now so bad parameters fail at construction, naming the fault.
        try:
            self.rule = self._make_rule(ops_set, kinds, nth, probability, seed, persistent, error)
        except VfsUsageError as exc:
            raise VfsUsageError(f"{self.name}: {exc}") from None

    def _make_rule(self, ops: list[str], kinds: Any, nth: int, probability: float | None,
                   seed: int | None, persistent: bool, error: str | None) -> FailRule:
        return FailRule(ops=frozenset(ops), error=error or self._error, path=self.params["path"],
                        kinds=None if kinds is None else frozenset([kinds] if isinstance(kinds, str) else kinds),
                        nth=nth, probability=probability, seed=seed, persistent=persistent)

    @property
    def fired(self) -> int:
        """How many I/O calls this fault has failed so far."""
        return self.rule.failures

    def _inject(self) -> None:
        shim = self._shim = _require_shim()
        shim.install()
        shim.add_rule(self.rule)

    def _heal(self) -> None:
        shim = getattr(self, "_shim", None) or get_shim()  # the build it was injected into
        shim.remove_rule(self.rule)
        shim.uninstall()
        for injection in [i for i in shim.injections if i.rule is self.rule]:
            self.record("failed", op=injection.op, path=injection.path, kind=injection.kind,
                        code=injection.code, offset=injection.offset, amount=injection.amount)


class IoErrorFault(RuleFault):
    """Fail reads, writes, truncates or syncs with the operation's own SQLITE_IOERR_* code.

    :param path: a database; its journal and WAL match too. None: every file of every connection.
    :param ops: which of ``read write truncate sync size lock unlock check_lock`` fail.
    :param nth: fail the Nth matching call; or ``probability`` with ``seed``.
    :param persistent: keep failing every matching call after the first failure.
    :param error: ``io_error`` (default) or ``corrupt_fs``, ``read_only``, ``disk_full``.
    """

    name = "io_error"


class EnospcFault(RuleFault):
    """The file system is full: every write to every file (journals and WAL included) gets SQLITE_FULL.

    ``nth`` lets the first ``nth - 1`` matching writes through; ``persistent`` defaults to True
    (a full disk stays full). Give ``path`` to limit it to one database's files.
    """

    name = "enospc"
    _ops = ("write",)
    _error = "disk_full"
    #: ``**params`` are the keyword parameters every I/O rule fault takes.
    options_of = staticmethod(RuleFault.__init__)

    def __init__(self, path: str | os.PathLike[str] | None = None, *, persistent: bool = True,
                 **params: Any) -> None:
        super().__init__(path, persistent=persistent, **params)


class ShortReadFault(RuleFault):
    """Reads return only half the bytes asked for (the rest zero-filled), SQLITE_IOERR_SHORT_READ.

    SQLite treats a short read as reading past the end of the file, so the application sees
    what it makes of the zeroed page (usually SQLITE_CORRUPT), not an I/O error.
    """

    name = "short_read"
    _ops = ("read",)
    _error = "short_read"


class PowerLossFault(Fault):
    """Model a power cut: unsynced writes of ``path``'s files are lost (or torn) on copies.

    :param path: the database (its ``-journal`` / ``-wal`` are followed too).
    :param after_syncs: cut the power by itself just before sync number ``after_syncs + 1``;
        None: only when :meth:`cut` is called.
    :param dest: where the post-power-loss files go (default: a new temporary directory).
    :param mode: ``drop`` loses every unsynced write; ``torn`` keeps a seeded subset of sectors.

    Example::

        with PowerLossFault(db) as power:
            ...  # commits
            images = power.cut()
        sqlite3.connect(images[db])  # what survived
    """

    name = "power_loss"
    param_choices = {"mode": POWER_MODES}
    param_bounds = {"after_syncs": (0, None)}

    def __init__(self, path: str | os.PathLike[str], *, after_syncs: int | None = None,
                 dest: str | os.PathLike[str] | None = None, mode: str = "drop", seed: int = 0) -> None:
        _check_path_target(self.name, path)
        super().__init__(path=os.fspath(path), after_syncs=after_syncs,
                         dest=None if dest is None else os.fspath(dest), mode=mode, seed=seed)
        self.recorder = PowerLossRecorder(path)
        self.recorder._check_mode(mode)
        if after_syncs is not None and after_syncs < 0:
            raise VfsUsageError(f"power_loss: after_syncs={after_syncs} must be >= 0")

    @property
    def dest(self) -> str:
        """Directory the post-power-loss files are written to."""
        if self.params["dest"] is None:
            self.params["dest"] = tempfile.mkdtemp(prefix="dbfault-power-")
        return self.params["dest"]

    @property
    def images(self) -> dict[str, str] | None:
        """{original path: copy} once the power was cut, else None."""
        return self.recorder.images

    def cut(self, dest: str | os.PathLike[str] | None = None) -> dict[str, str]:
        """Cut the power now: write the surviving files to ``dest`` and return {original: copy}."""
        images = self.recorder.cut(dest or self.dest, mode=self.params["mode"], seed=self.params["seed"])
        self.recorder.images = images
        self.record("cut", files=sorted(images.values()))
        return images

    def _inject(self) -> None:
        self.recorder.shim = _require_shim()
        if self.params["after_syncs"] is not None:
            self.recorder.arm(self.params["after_syncs"], self.dest, mode=self.params["mode"],
                              seed=self.params["seed"])
        self.recorder.start()

    def _heal(self) -> None:
        if self.recorder.crashed:
            self.record("crashed", after_syncs=self.recorder.syncs, files=sorted((self.images or {}).values()))
        self.recorder.stop()
