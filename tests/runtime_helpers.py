"""Helpers shared by the runtime's tests (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pytest_dbfault.runtime_config import FAST_TEST_SETTINGS
from reliability import ReliabilityConfig

#: tox cells run the same tests on other SQLite builds. Connections that must contend for locks with the
#: runtime's use the same module: two SQLite copies in one process do not see each other's POSIX locks.
SQLITE_MODULE_NAME = os.environ.get("RELIABILITY_SQLITE_MODULE", "sqlite3")


def sqlite_module():  # type: ignore[no-untyped-def]
    """The DB-API module the runtime under test uses."""
    from reliability.connection import load_sqlite_module

    return load_sqlite_module(SQLITE_MODULE_NAME)


def fast_config(path: Path | str, **overrides: object) -> ReliabilityConfig:
    """Settings for tests: short busy timeout, quick tiny retries, no background schedules."""
    # The one table of fast test settings, with what the runtime's own tests change in it.
    values: dict[str, object] = {**FAST_TEST_SETTINGS, "db_path": str(path), "busy_timeout_ms": 20,
                                 "retry_max_delay": 0.005, "retry_budget": 1.0, "sqlite_module": SQLITE_MODULE_NAME}
    values.update(overrides)
    return ReliabilityConfig(**values)  # type: ignore[arg-type]



class LockHolder:
    """A second connection in a thread that holds BEGIN EXCLUSIVE until released (a real lock)."""

    def __init__(self, path: Path | str, mode: str = "EXCLUSIVE") -> None:
        self.path = str(path)
        self.mode = mode
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = sqlite_module().connect(self.path, isolation_level=None, timeout=5)
        try:
            conn.execute(f"BEGIN {self.mode}")
            self.held.set()
            self.release.wait(30)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def __enter__(self) -> LockHolder:
        self.thread.start()
        assert self.held.wait(5), "the holder never got the lock"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(5)


def os_user() -> str:
    """The effective OS user: the CLI's identity (``--actor`` only labels changes made on someone's behalf)."""
    from reliability.cli import os_user as cli_os_user

    return cli_os_user()


#: A `.env` for CLI tests: no waiting, no schedules, an audit key, the SQLite build under test; the
#: administrators are alice and the OS user running the tests (the CLI's identity).
CLI_ENV = f"""\
RELIABILITY_BUSY_TIMEOUT_MS=0
RELIABILITY_RETRY_ATTEMPTS=2
RELIABILITY_RETRY_BASE_DELAY=0.001
RELIABILITY_RETRY_MAX_DELAY=0.002
RELIABILITY_BACKUP_INTERVAL=0
RELIABILITY_HEALTH_CHECK_INTERVAL=0
RELIABILITY_QUICK_CHECK_INTERVAL=0
RELIABILITY_INTEGRITY_CHECK_INTERVAL=0
RELIABILITY_CONFIG_RELOAD_INTERVAL=0
RELIABILITY_ADMIN_ACTORS=alice,{os_user()}
RELIABILITY_AUDIT_HMAC_KEY=cli-key
RELIABILITY_SQLITE_MODULE={SQLITE_MODULE_NAME}
"""


def cli_runner(tmp_path: Path, capsys: Any, monkeypatch: Any, env_text: str = CLI_ENV) -> Any:
    """``run(*argv, json_out=False) -> (exit code, stdout, stderr)`` for ``reliability --db <tmp>/app.db``.

    The process environment's ``RELIABILITY_*`` settings are removed so only ``env_text`` counts (the
    CLI uses the SQLite build the lock helpers use). ``run.db`` and ``run.env`` are the two paths.
    """
    from reliability import cli

    env = tmp_path / ".env"
    env.write_text(env_text)
    db = tmp_path / "app.db"
    for key in [k for k in os.environ if k.startswith("RELIABILITY_")]:
        monkeypatch.delenv(key)

    def invoke(*argv: str, json_out: bool = False) -> tuple[int, str, str]:
        args = ["--db", str(db), "--env", str(env)] + (["--json"] if json_out else []) + list(argv)
        code = cli.main(args)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    invoke.db = db  # type: ignore[attr-defined]
    invoke.env = env  # type: ignore[attr-defined]
    return invoke


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds passed (for background threads)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())
