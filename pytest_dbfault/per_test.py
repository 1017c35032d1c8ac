"""What the ``dbfault``, ``reliable_db`` and ``fault_db_path`` fixtures hand to a test.

:class:`FaultFactory` makes registered faults by name, seeded from the run's seed, and
heals every one of them when the test ends even if the test forgot. It works without
pytest too::

    factory = FaultFactory(tmp_path, seed=42)
    lock = factory.locked(factory.new_db(), mode="write")  # injected now
    ...
    factory.close()  # heals whatever is still active
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .faults.base import Fault, FaultError, FaultEvent, subscribe, unsubscribe
from .faults.registry import fault_names, get_fault_class, make_fault, unknown_name_message, variant_names
from .stats import STATS, Stats

#: ``on_inject`` callbacks receive the fault and the name it was made under.
InjectCallback = Callable[[Fault, str], None]


def seeded_rng(seed: int, nodeid: str) -> random.Random:
    """The random generator of one test: depends on the run seed and the test id only.

    So a test draws the same values whatever ran before it, in any order, on any xdist worker.
    """
    return random.Random(f"dbfault:{seed}:{nodeid}")


class FaultFactory:
    """Makes faults for one test, seeded, and heals them all at :meth:`close`.

    Example (inside a test, through the ``dbfault`` fixture)::

        def test_writes_wait_for_a_lock(dbfault, reliable_db):
            with dbfault.locked(reliable_db.path, mode="write", duration=0.02):
                reliable_db.execute("CREATE TABLE t (x)")  # retried until the lock goes

    :param tmp_path: the test's own directory; :meth:`new_db` and :meth:`sweep` work under it.
    :param seed: the seed of this test (the run seed, or the marker's ``seed=``).
    :param rng: the test's random generator (default: ``random.Random(seed)``). Faults that take
        a ``seed`` parameter and are not given one get ``rng.getrandbits(32)``, so every fault
        derives from the run seed.
    :param kind: the fault kind a ``@pytest.mark.dbfault`` test is running for, if any.
    :param on_inject: callbacks ``fn(fault, name)`` run after each successful injection (re-injections
        included) of a fault made here, told by the fault lifecycle (:class:`~.faults.base.FaultEvent`).
    :param stats: where injections are counted (default: the process-wide ``STATS``).

    Any registered fault (or variant) name is also a method: ``dbfault.disk_full(conn)`` is
    ``dbfault.make("disk_full", conn)``.
    """

    def __init__(
        self,
        tmp_path: str | Path,
        seed: int,
        rng: random.Random | None = None,
        *,
        kind: str | None = None,
        on_inject: Iterable[InjectCallback] = (),
        stats: Stats | None = None,
    ) -> None:
        self.tmp_path = Path(tmp_path)
        self.seed = seed
        self.rng = rng if rng is not None else random.Random(seed)
        self.kind = kind
        self.on_inject: list[InjectCallback] = list(on_inject)
        self.stats = STATS if stats is None else stats
        #: Every fault made, in order (healed ones included).
        self.made: list[Fault] = []
        #: Names of the faults injected, in order of injection (a re-injection appears again).
        self.injected: list[str] = []
        self._handed_out: set[Path] = set()
        self._sweeps = 0
        self._mine: set[int] = set()  # ids of the faults in ``made`` (kept alive by it)
        subscribe(self._on_fault)

    # -- making faults ---------------------------------------------------------------------
    def make(self, name: str, *target: Any, **params: Any) -> Fault:
        """Make the fault registered as ``name`` and inject it now; returns the active fault.

        Use it bare (healed at the end of the test) or as a context manager (healed at the
        end of the block)::

            dbfault.make("disk_full", conn)
            with dbfault.make("locked", db_path, mode="write"):
                ...
        """
        return self.prepare(name, *target, **params).inject()

    def prepare(self, name: str, *target: Any, **params: Any) -> Fault:
        """Like :meth:`make` but not injected yet: call ``inject()`` (or use ``with``) when ready."""
        if "seed" not in params and _takes_seed(get_fault_class(name)):
            params["seed"] = self.rng.getrandbits(32)
        fault = make_fault(name, *target, counted_in=self.stats, **params)
        self._mine.add(id(fault))
        self.made.append(fault)
        return fault

    def __getattr__(self, name: str) -> Callable[..., Fault]:
        if name.startswith("_"):
            raise AttributeError(name)
        known = [*fault_names(), *variant_names()]
        if name in known:
            return functools.partial(self.make, name)
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}: " + unknown_name_message("fault", name, known)
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *fault_names(), *variant_names()})

    @property
    def active(self) -> list[Fault]:
        """The faults made here that are active now."""
        return [f for f in self.made if f.active]

    # -- helpers -----------------------------------------------------------------------------
    def new_db(self, name: str = "test.db") -> Path:
        """A fresh database path under ``tmp_path`` (not created), never handed out twice.

        ``new_db()`` twice gives ``test.db`` then ``test-2.db``.
        """
        if not name or Path(name).name != name:
            raise FaultError(f"new_db() takes a plain file name such as 'orders.db', got {name!r}")
        stem, suffix = Path(name).stem, Path(name).suffix
        path, n = self.tmp_path / name, 2
        while path in self._handed_out or path.exists():
            path, n = self.tmp_path / f"{stem}-{n}{suffix}", n + 1
        self._handed_out.add(path)
        return path

    def sweep(self, fn: Callable[[str], object], db_path: str | Path, **options: Any) -> Any:
        """Run :func:`pytest_dbfault.vfs.sweep` with its copies under ``tmp_path``.

        Each run in which a fault fired counts as one injection of that fault in the report (a run whose
        fault point was never reached injected nothing).
        """
        try:
            from .vfs import sweep
        except ImportError as exc:  # pragma: no cover - the VFS package ships with dbfault
            raise FaultError(f"the fault sweep is not available here: {exc}") from exc
        if "work_dir" not in options:
            self._sweeps += 1
            work_dir = self.tmp_path / f"sweep-{self._sweeps}"
            work_dir.mkdir(parents=True, exist_ok=True)
            options["work_dir"] = work_dir
        result = sweep(fn, db_path, **options)
        for run in getattr(result, "runs", ()):
            if getattr(run, "fired", False):
                self.stats.record_fault(run.fault)
                self.injected.append(run.fault)
        return result

    # -- the end of the test -----------------------------------------------------------------
    def close(self) -> None:
        """Heal every active fault, newest first; raise one :class:`FaultError` if any heal failed.

        From then on, a fault made here and injected again is no longer counted in :attr:`injected`.
        """
        unsubscribe(self._on_fault)
        failures: list[tuple[Fault, BaseException]] = []
        for fault in reversed(self.made):
            try:
                fault.heal()
            except Exception as exc:  # keep healing the others: each may hold a lock or a process
                failures.append((fault, exc))
        if failures:
            detail = "; ".join(f"{fault!r}: {exc}" for fault, exc in failures)
            raise FaultError(f"could not heal {len(failures)} fault(s) at the end of the test: {detail}") \
                from failures[0][1]

    def user_properties(self) -> list[tuple[str, str]]:
        """What this test did, for JUnit XML ``<property>`` elements and the JSON report."""
        props = [("dbfault_seed", str(self.seed))]
        if self.kind is not None:
            props.append(("dbfault_kind", self.kind))
        props.append(("dbfault_faults", ",".join(self.injected)))
        return props

    def describe(self) -> str:
        """A short text for a failing test's report: seed and every fault with its records."""
        lines = [f"seed: {self.seed} (replay the run with --dbfault-seed={self.seed})"]
        if self.kind is not None:
            lines.append(f"fault kind: {self.kind}")
        for fault in self.made:
            lines.append(repr(fault))
            lines.extend(f"  {r.action} {r.detail}" if r.detail else f"  {r.action}" for r in fault.records)
        return "\n".join(lines)

    # -- internals ---------------------------------------------------------------------------
    def _on_fault(self, event: FaultEvent) -> None:
        # The fault lifecycle tells of every fault in the process: keep those made here.
        if event.action != "injected" or id(event.fault) not in self._mine:
            return
        self.injected.append(event.kind)
        for callback in self.on_inject:
            callback(event.fault, event.kind)

    def __repr__(self) -> str:
        return f"<FaultFactory seed={self.seed} made={len(self.made)} active={len(self.active)}>"


_TAKES_SEED: dict[type[Fault], bool] = {}


def _takes_seed(cls: type[Fault]) -> bool:
    known = _TAKES_SEED.get(cls)
    if known is None:
        try:
            known = "seed" in inspect.signature(cls).parameters
        except (TypeError, ValueError):  # pragma: no cover - signature not introspectable
            known = False
        _TAKES_SEED[cls] = known
    return known
