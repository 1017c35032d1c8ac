"""``benchmarks/surface_reach.py`` reads a coverage report right: a function whose statements never ran is listed,
one that ran is not, a docstring or a ``def`` line (which "run" at import) never count as the function running,
and a planted bug's site is classified by its own statements."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load():
    spec = importlib.util.spec_from_file_location("surface_reach", ROOT / "benchmarks" / "surface_reach.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_functions_whose_statements_never_ran_are_listed_and_the_others_not(capsys) -> None:
    reach = load()
    path = "reliability/tx_connection.py"
    source = (ROOT / path).read_text(encoding="utf-8").splitlines()
    enter = next(i for i, ln in enumerate(source, 1) if ln.strip().startswith("def __enter__"))
    exit_ = next(i for i, ln in enumerate(source, 1) if ln.strip().startswith("def __exit__"))
    # __enter__'s body ran; __exit__'s def line "ran" (import) but none of its statements did.
    import ast
    tree = ast.parse("\n".join(source))
    bodies = [(n.name, reach.body_lines(n)) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    entered = next(lines for name, lines in bodies if name == "__enter__")
    never, total = reach.never_run({path: {"executed_lines": sorted(entered | {enter, exit_})}})
    names = [name for _p, _l, name in never]
    assert "__exit__" in names and "__enter__" not in names
    assert total == len([b for _n, b in bodies if b]) and len(never) == total - 1


def test_a_planted_bug_is_classified_by_the_statements_it_replaces(tmp_path: Path, capsys) -> None:
    reach = load()
    from test_planted_bugs_apply import load_bug_list

    bug = next(b for b in load_bug_list() if b.name.startswith("z06"))
    text = (ROOT / bug.path).read_text(encoding="utf-8")
    first = text[:text.find(bug.old)].count("\n") + 1
    last = first + bug.old.rstrip("\n").count("\n")
    own = [n for n in range(first, last + 1) if not text.splitlines()[n - 1].lstrip().startswith("def ")]
    assert own, "the site has statements of its own"
    ran = reach.bug_sites({bug.path: {"executed_lines": own[:1]}}, "z06")
    def_line_only = [first] if text.splitlines()[first - 1].lstrip().startswith("def ") else []
    never = reach.bug_sites({bug.path: {"executed_lines": def_line_only}}, "z06")
    assert ran == [(bug.name, f"{bug.path}:{first}-{last}", True)]
    assert never == [(bug.name, f"{bug.path}:{first}-{last}", False)]
    # The command line reads a saved report (no main job run) and prints both lists.
    report = tmp_path / "coverage.json"
    report.write_text(json.dumps({"totals": {"percent_covered": 50.0, "covered_lines": 1, "num_statements": 2,
                                             "covered_branches": 0, "num_branches": 0},
                                  "files": {bug.path: {"executed_lines": []}}}), encoding="utf-8")
    assert reach.main(["--report", str(report), "--bugs", "z06"]) == 0
    out = capsys.readouterr().out
    assert f"NEVER {bug.name}" in out and "functions never run in the pytest process" in out
