"""Random sequences of restarts, kills, damage and recoveries: does a recovery that says ok keep every acknowledged row?

Usage: ``python benchmarks/recovery_fuzz.py [--seeds N] [--first K]``. Each sequence runs one ``DatabaseManager``
on a real file in a fresh folder, with a configuration drawn per sequence (journal mode WAL/DELETE, synchronous
NORMAL/FULL, redo journal on/off, auto_recover on/off, backups kept 1-3, retry attempts 1-4), and draws 5-40 steps:
writes in every public form (``execute``, ``with db.transaction()``, ``run_in_transaction``; replace or delete,
some rows large enough to free pages), ``db.backup()``, a clean restart, a kill -9 of a forked writer mid-work
then a restart, the ``disconnect`` fault's ``close``/``rename``/``delete`` (healed), inspections (``db.health()``,
``db.check_integrity()``, ``reliability health``/``check``: the db and a non-empty -wal must not change), and the
``corrupt`` fault on every part it has, answered by the next call (auto_recover), ``db.recover()``, the command
line's ``reliability recover`` (in-process) or a restart. The model holds the acknowledged rows; a write that
raised is "maybe" (either outcome allowed).

Oracles (judged only when no fault is in force; rows read by another process):
* a recovery that reports ok (``RecoveryReport.ok``, an automatic one's record, ``reliability recover`` exit 0)
  holds every acknowledged row; one that reports not ok names its problems;
* outside damage, every acknowledged row is in the file at every step; after damage with the redo journal on,
  a restart that finds rows missing says so (health not healthy), never serves the short file as healthy;
* an inspection changes no file.
An honest failure (not ok, problems named) is accepted: the model becomes what the file holds (or, when the file
is still damaged, the undamaged copy is put back, as the property machines do). With ``redo_journal=False`` the
README promises nothing for writes after the last backup once the file is damaged: such losses are accepted too.

Not a timed measurement: a count (like ``wal_ownership_fuzz.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import random
import shutil
import signal
import tempfile
from typing import Any

os.environ.setdefault("DBFAULT_ALLOW_ANY_PATH", "1")  # (the faults act on this script's own temporary folder)

from pytest_dbfault.faults import outside  # noqa: E402
from pytest_dbfault.faults.base import FaultError  # noqa: E402
from pytest_dbfault.faults.registry import make_fault  # noqa: E402
from pytest_dbfault.machines.base import FAST_SETTINGS  # noqa: E402
from reliability import DatabaseManager, ReliabilityConfig  # noqa: E402
from reliability.cli import main as cli_main  # noqa: E402
from reliability.health import HealthStatus  # noqa: E402

SQL = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
DELETE = "DELETE FROM kv WHERE k = ?"
#: (part, extra parameters) of the corrupt fault: every part it has.
DAMAGES = [("header", {}), ("page_size", {}), ("btree", {"table": "kv"}), ("btree", {"table": "kv", "page": "leaf"}),
           ("btree", {"table": "sqlite_schema"}), ("index", {"index": "sqlite_autoindex_kv_1"}),
           ("index_entry", {"index": "sqlite_autoindex_kv_1"}), ("freelist", {}), ("wal_frame", {}),
           ("wal_salt", {}), ("truncate", {"fraction": 0.5}), ("truncate", {"fraction": 0.9})]


class Found(Exception):
    """An oracle failed: what was lost or said wrongly."""


def stored(path: str) -> dict[str, str]:
    """The rows of the file at ``path``, read by another process (no lock or index of this one involved)."""
    return {k: v for k, v in outside.query(path, "SELECT k, v FROM kv")}


def sound(path: str) -> bool:
    """The file at ``path`` passes quick_check and its kv table reads, as another process sees it."""
    try:
        return outside.query(path, "PRAGMA quick_check") == [["ok"]] and stored(path) is not None
    except outside.OutsideSQLError:
        return False


def fingerprint(path: str) -> tuple[int, ...] | None:
    """``file_fingerprint`` of the machines: the db's identity, size and times, and a non-empty -wal's (stat only)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    prints = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    try:
        wal = os.stat(path + "-wal")
    except FileNotFoundError:
        return prints
    return prints + ((wal.st_dev, wal.st_ino, wal.st_size, wal.st_mtime_ns) if wal.st_size else ())


def short(rows: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:12] + "..." if isinstance(v, str) and len(v) > 12 else v) for k, v in sorted(rows.items())}


def kill_worker(config: ReliabilityConfig, writes: list[tuple[str, str | None, str]], rng: random.Random
                ) -> tuple[list[int], list[int]]:
    """A forked process runs a manager and ``writes``; SIGKILLed after a random number of acknowledgements.

    Returns (acknowledged indexes, started but not acknowledged indexes)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no close(), nothing flushed by Python, like a kill after its last acknowledgement
        try:
            os.close(r)
            logging.disable(logging.CRITICAL)
            child = DatabaseManager(config)
            child.policy.sleep = lambda s: None
            for i, (key, value, form) in enumerate(writes):
                os.write(w, f"s{i}\n".encode())
                try:
                    do_write(child, form, key, value)
                    os.write(w, f"o{i}\n".encode())
                except Exception:  # noqa: BLE001
                    os.write(w, f"f{i}\n".encode())
        finally:
            os._exit(0)
    os.close(w)
    stop_after, seen, buf = rng.randint(0, len(writes)), 0, b""
    with os.fdopen(r, "rb") as pipe:
        while seen < stop_after:
            line = pipe.readline()
            if not line:
                break
            buf += line
            seen += line.startswith(b"o") or line.startswith(b"f")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        buf += pipe.read()
    started, acked = set(), set()
    for line in buf.decode().split():
        (acked if line[0] == "o" else started).add(int(line[1:]))
    return sorted(acked), sorted(started - acked)


def do_write(db: DatabaseManager, form: str, key: str, value: str | None) -> None:
    sql, params = (SQL, (key, value)) if value is not None else (DELETE, (key,))
    if form == "execute":
        db.execute(sql, params)
    elif form == "transaction":
        with db.transaction() as conn:
            conn.execute(sql, params)
    else:
        db.run_in_transaction(lambda: db.execute(sql, params))


def run(seed: int, root: str, verbose: bool = False) -> str | None:
    """One sequence; None when every oracle held, else what failed and the last steps."""
    rng = random.Random(seed)
    folder = tempfile.mkdtemp(dir=root)
    path = os.path.join(folder, "app.db")
    redo = rng.random() < 0.7
    config = ReliabilityConfig(db_path=path, **{
        **FAST_SETTINGS, "journal_mode": rng.choice(["WAL", "DELETE"]), "synchronous": rng.choice(["NORMAL", "FULL"]),
        "redo_journal": redo, "auto_recover": rng.random() < 0.6, "backup_keep": rng.randint(1, 3),
        "retry_attempts": rng.randint(1, 4)})
    steps: list[str] = [f"config {config.journal_mode} {config.synchronous} redo={redo} "
                        f"auto_recover={config.auto_recover} keep={config.backup_keep} tries={config.retry_attempts}"]
    model: dict[str, str | None] = {}  # acknowledged: value, or None = deleted
    maybe: dict[str, set[str | None]] = {}  # outcomes of writes that raised since the key's last acknowledgement

    def open_db() -> DatabaseManager:
        new = DatabaseManager(config)
        new.policy.sleep = lambda s: None  # (retries without waiting: what is judged is the outcome, not the time)
        return new

    db = open_db()
    db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")

    def value_for() -> str | None:
        if rng.random() < 0.12:
            return None
        return f"v{rng.getrandbits(20)}" + "x" * rng.choice([0, 0, 0, 600, 3000])

    def acknowledge(key: str, value: str | None) -> None:
        model[key] = value
        maybe.pop(key, None)

    def write(key: str | None = None) -> bool:
        key = key or f"user-{rng.randint(0, 12)}"
        value, form = value_for(), rng.choice(["execute", "transaction", "run_in_transaction"])
        try:
            do_write(db, form, key, value)
        except Exception as exc:  # noqa: BLE001  (refused is allowed; lost after an acknowledgement is not)
            maybe.setdefault(key, set()).add(value)
            steps.append(f"{form} {key}{' delete' if value is None else ''}: {type(exc).__name__}")
            return False
        acknowledge(key, value)
        steps.append(f"{form} {key}{' delete' if value is None else ''}")
        return True

    def lost() -> dict[str, Any]:
        try:
            now = stored(path)
        except outside.OutsideSQLError as exc:
            return {"(unreadable)": str(exc)}
        return {k: now.get(k) for k, v in model.items()
                if now.get(k) != v and now.get(k) not in maybe.get(k, ())}

    def accept_loss() -> None:
        """An honest loss (said, or not promised): the file's rows are the acknowledged state from now on."""
        now = stored(path)
        model.clear()
        maybe.clear()
        model.update(now)

    def cli(argv: list[str]) -> tuple[int, dict[str, Any]]:
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                  if f.name not in ("db_path", "sqlite_module")}
        env_file = os.path.join(folder, "cli.env")
        with open(env_file, "w", encoding="utf-8") as fh:
            fh.write("".join(f"RELIABILITY_{k.upper()}='{str(v).lower() if isinstance(v, bool) else v}'\n"
                             for k, v in values.items()))
        os.chmod(env_file, 0o600)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RELIABILITY_")}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli_main(["--db", path, "--env", env_file, "--json", *argv], environ=environ)
        return code, json.loads(out.getvalue())

    def inspect(what: str, damaged: bool) -> None:
        before, n0 = fingerprint(path), db.monitor.recoveries
        found = False
        if what == "health":
            db.health()
        elif what == "check_integrity":
            # A check that finds damage starts recovery with auto_recover (documented): then it is no inspection.
            found = not db.check_integrity(full=rng.random() < 0.5).ok
        else:
            cli([what])
        after = fingerprint(path)
        steps.append(f"inspect {what}{' (damaged)' if damaged else ''}{' found damage' if found else ''}")
        if found and db.monitor.recoveries > n0:
            last = db.monitor.last_recovery or {}
            return judge(bool(last.get("ok")), list(last.get("problems") or []), "recovery after a check", None)
        if after != before and not found:
            raise Found(f"inspection {what}{' of a damaged file' if damaged else ''} changed the files: "
                        f"{before} -> {after}")

    def judge(ok: bool, problems: list[str], what: str, fault: Any) -> None:
        """The key oracle: ok means every acknowledged row is there; not ok says why (then the loss is honest)."""
        nonlocal db
        missing = lost()
        steps.append(f"{what}: ok={ok} problems={len(problems)}")
        if ok:
            if missing:
                raise Found(f"{what} reported ok but lost {short(missing)}")
            return
        if not problems:
            raise Found(f"{what} reported not ok without naming a problem")
        if not sound(path) and fault is not None:  # still damaged: the operator puts the undamaged copy back
            db.close()
            fault.heal()
            db = open_db()
            steps.append("put the undamaged copy back")
        elif missing:
            with contextlib.suppress(outside.OutsideSQLError):
                accept_loss()

    def restart() -> None:
        nonlocal db
        db.close()
        db = open_db()
        started()

    def started() -> None:
        """A start that recovered (a damage it found itself) is judged like any recovery."""
        if db.monitor.recoveries:
            last = db.monitor.last_recovery or {}
            judge(bool(last.get("ok")), list(last.get("problems") or []), "recovery at start", None)

    def damage() -> None:
        nonlocal db
        part, extra = rng.choice(DAMAGES)
        fault = make_fault("corrupt", path, part=part, seed=rng.getrandbits(16), backup_before=True, **extra)
        try:
            fault.inject()
        except FaultError:
            return  # not possible now (no WAL frames, no free page...): the step does nothing
        steps.append(f"corrupt {part}{extra.get('page', '')}{extra.get('fraction', '')}")
        if rng.random() < 0.3:
            inspect(rng.choice(["health", "check"]), damaged=True)
        how = rng.choice(["next", "api", "cli", "restart"])
        if how == "next":
            n0 = db.monitor.recoveries
            if rng.random() < 0.6:
                write()
            else:
                steps.append("read")
                _quiet(lambda: db.fetch_all("SELECT * FROM kv"))
            if db.monitor.recoveries > n0:
                last = db.monitor.last_recovery or {}
                return judge(bool(last.get("ok")), list(last.get("problems") or []), "automatic recovery", fault)
            how = rng.choice(["api", "cli", "restart"])
        if how == "api":
            try:
                report = db.recover()
            except Exception as exc:  # noqa: BLE001  (a transient error is no verdict: try once more)
                steps.append(f"db.recover(): {type(exc).__name__}: {exc}")
                report = db.recover()
            return judge(report.ok, list(report.problems), "db.recover()", fault)
        if how == "cli":
            db.close()
            code, doc = cli(["recover"])
            value = doc.get("value") or {}
            problems = list(value.get("problems") or []) + ([str(doc.get("error"))] if doc.get("error") else [])
            what = f"reliability recover (exit {code}, recovered={value.get('recovered')})"
            try:
                judge(code == 0, problems, what, fault)
            finally:
                if db.closed:
                    db = open_db()
            return
        # A restart of the application on the damaged file (with auto_recover it may recover at start).
        db.close()
        db = open_db()
        steps.append("restart")
        if db.monitor.recoveries:
            last = db.monitor.last_recovery or {}
            return judge(bool(last.get("ok")), list(last.get("problems") or []), "recovery at start", fault)
        _quiet(lambda: db.fetch_all("SELECT * FROM kv"))  # the application's first call
        if db.monitor.recoveries:
            last = db.monitor.last_recovery or {}
            return judge(bool(last.get("ok")), list(last.get("problems") or []), "automatic recovery", fault)
        missing = lost()
        if not missing:
            return
        health = db.health()
        steps.append(f"health {health.status}")
        if health.status is HealthStatus.HEALTHY and redo and sound(path):
            if part != "index_entry":
                raise Found(f"restart after damage serves a file without {short(missing)} as healthy")
            # Only the full check sees a changed index entry (no statement errs, quick_check passes), so the
            # runtime's promise for it is its scheduled integrity_check (integrity_check_interval): run it here as
            # the schedule would. It must find the damage, and the recovery that follows must bring every
            # acknowledged write back (a DELETE that missed its row through the index replays from its record).
            steps.append("the scheduled full check")
            n0 = db.monitor.recoveries
            if db.check_integrity(full=True).ok:
                raise Found(f"the full integrity check passes a file without {short(missing)}")
            if db.monitor.recoveries > n0:
                last = db.monitor.last_recovery or {}
                return judge(bool(last.get("ok")), list(last.get("problems") or []), "recovery after the full check",
                             fault)
        report = db.recover()  # the operator's answer to an unhealthy file
        judge(report.ok, list(report.problems), "db.recover() after restart", fault)

    try:
        for _ in range(rng.randint(5, 40)):
            missing = lost()
            if missing and redo and db.health().status is HealthStatus.UNAVAILABLE:
                # Not silent: the runtime itself says the file is unusable (a verdict of damage it reached, e.g. a
                # writer's start that ran the full check on a marked file). The operator's answer is a recovery,
                # judged like every other: ok only with every acknowledged row back, else a problem named.
                steps.append("health unavailable")
                report = db.recover()
                judge(report.ok, list(report.problems), "db.recover() of a file health calls unavailable", None)
                missing = lost()
            if missing:
                if not redo and any(s.startswith("corrupt") for s in steps):
                    accept_loss()  # without the redo journal nothing after the last backup is promised once damaged
                else:
                    return f"lost {short(missing)} after: {'; '.join(steps[-12:])}"
            op = rng.choice(["write", "write", "write", "write", "backup", "restart", "kill", "damage", "damage",
                             "disconnect", "inspect"])
            if op == "write":
                write()
            elif op == "backup":
                try:
                    db.backup()
                    steps.append("backup")
                except Exception as exc:  # noqa: BLE001
                    steps.append(f"backup: {type(exc).__name__}")
            elif op == "restart":
                steps.append("restart")
                restart()
            elif op == "kill":
                db.close()
                forms = ["execute", "transaction", "run_in_transaction"]
                writes = [(f"user-{rng.randint(0, 12)}", value_for(), rng.choice(forms))
                          for _ in range(rng.randint(1, 6))]
                acked, unsure = kill_worker(config, writes, rng)
                for i in sorted(acked + unsure):
                    key, value, _form = writes[i]
                    if i in acked:
                        acknowledge(key, value)
                    else:
                        maybe.setdefault(key, set()).add(value)
                steps.append(f"kill -9 a writer after {len(acked)} of {len(writes)} writes ({len(unsure)} in flight)")
                db = open_db()
                started()
            elif op == "damage":
                damage()
            elif op == "disconnect":
                kind = rng.choice(["close", "rename", "delete"])
                fault = make_fault(f"disconnect_{kind}", db if kind == "close" else path,
                                   **({"backup_before": True} if kind == "delete" else {}))
                try:
                    fault.inject()
                except Exception:  # noqa: BLE001  (not possible now: the step does nothing)
                    continue
                if rng.random() < 0.7:
                    write()  # while the fault is in force (may fail)
                fault.heal()
                steps.append(f"disconnect {kind} healed")
            else:
                if lost():
                    continue
                inspect(rng.choice(["health", "check_integrity", "health", "check"]), damaged=False)
        missing = lost()
        if missing and not (not redo and any(s.startswith("corrupt") for s in steps)):
            return f"lost {short(missing)} at the end after: {'; '.join(steps[-12:])}"
        return None
    except Found as found:
        return f"{found} after: {'; '.join(steps[-12:])}"
    except Exception as exc:  # noqa: BLE001  (an error the sequence did not expect: shown, to be judged)
        return f"raised {type(exc).__name__}: {exc} after: {'; '.join(steps[-12:])}"
    finally:
        if verbose:
            print(f"seed {seed}: {'; '.join(steps)}", flush=True)
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


def _quiet(fn: Any) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="how many sequences (default 200)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--verbose", action="store_true", help="print every sequence's steps")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # (the runtime's own warnings about the faults: expected, and many)
    root = tempfile.mkdtemp(prefix="recovery-fuzz-")
    failed = 0
    try:
        for seed in range(args.first, args.first + args.seeds):
            found = run(seed, root, args.verbose)
            if found:
                failed += 1
                print(f"seed {seed}: {found}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{failed} of {args.seeds} sequences lost acknowledged rows or misreported a recovery")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
