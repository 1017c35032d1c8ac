"""The tox cells `.ci/run` runs are cells of tox.ini's matrix, and README names exactly those."""

from __future__ import annotations

import configparser
import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def matrix() -> set[str]:
    """tox.ini's env_list with its ``{a,b}`` factors expanded."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    envs: set[str] = set()
    for line in tox["tox"]["env_list"].split():
        parts = re.split(r"\{([^}]*)\}", line)
        choices = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
        envs |= {"".join(c) for c in itertools.product(*choices)}
    return envs


def ci_cells() -> list[str]:
    found = re.search(r"^for cell in ([^;]*); do$", (ROOT / ".ci" / "run").read_text(), re.M)
    assert found is not None, ".ci/run has no `for cell in ...; do` loop"
    return found.group(1).split()


def test_ci_runs_cells_of_the_matrix_and_one_of_them_on_another_sqlite_build() -> None:
    cells = ci_cells()
    assert cells and set(cells) <= matrix()
    assert any(not c.endswith("-stdlib") for c in cells)


def test_readme_names_the_cells_ci_runs() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    sentence = re.search(r"cells? of the tox matrix \(([^)]*)\)", readme)
    assert sentence is not None
    named = set(re.findall(r"py3\d+-\w+", sentence.group(1)))
    assert named == set(ci_cells())
    assert "out until" not in sentence.group(1)
