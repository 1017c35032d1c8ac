"""Every marker mistake of a run is reported in that run, not one test (or one module) at a time."""

from __future__ import annotations

import pytest


def test_every_bad_marker_of_a_module_and_of_other_modules_is_reported_at_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_one="""
            import pytest

            @pytest.mark.dbfault("lockd", "disk_ful")
            def test_first(dbfault_kind):
                pass

            @pytest.mark.dbfault("locked", retries=3, seed="x")
            def test_second(dbfault_kind):
                pass

            class TestGroup:
                @pytest.mark.dbfault("corrupt")
                def test_blind(self):
                    pass

            def test_fine():
                pass
        """,
        test_two="""
            import pytest

            @pytest.mark.dbfault(faults=["disconect"])
            def test_third(dbfault):
                pass
        """,
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.stdout.fnmatch_lines_random([
        "*test_one.py::test_first: @pytest.mark.dbfault: unknown fault 'lockd'; did you mean 'locked'?*",
        "*test_one.py::test_first: @pytest.mark.dbfault: unknown fault 'disk_ful'; did you mean 'disk_full'?*",
        "*test_one.py::test_second: @pytest.mark.dbfault got unknown argument(s) retries*",
        "*test_one.py::test_second: @pytest.mark.dbfault(seed=...)*invalid value 'x'*",
        "*test_one.py::TestGroup::test_blind is marked @pytest.mark.dbfault but uses neither*",
        "*test_two.py::test_third: @pytest.mark.dbfault: unknown fault 'disconect'; did you mean 'disconnect'?*",
    ])
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors: nothing ran
    assert "Traceback" not in result.stdout.str()
