"""The benchmark runner keeps working: ``benchmarks/run.py --quick`` runs every script and prints its table.

Run by the ``bench`` tox env and a ``.ci/run`` step (``python -m pytest benchmarks/test_quick_run.py``), not
by the README's test command: how long benchmarks take depends on the machine's load, so they are no part of
the test suite. Numbers are not checked (no timing assertions): this only proves the scripts still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Seconds after which a quick run is taken to hang (a guard against a stuck subprocess, not a speed check).
HANG_GUARD = 1800


def test_the_quick_benchmark_run_exits_cleanly_and_prints_its_summary_table() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True,
                          timeout=HANG_GUARD)
    out = proc.stdout
    assert proc.returncode == 0, f"run.py --quick failed:\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    assert "=== summary (quick" in out
    summary = out[out.index("=== summary"):]
    for name in ("runtime_overhead", "plugin_idle", "scaling"):
        assert f"\n{name} " in summary and "ok" in summary.split(f"\n{name} ", 1)[1].splitlines()[0]
    # Each script printed its own table too.
    assert "point_read" in out and "plugin installed, --dbfault off" in out and "vs raw-shared" in out
