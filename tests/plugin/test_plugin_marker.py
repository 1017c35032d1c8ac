"""@pytest.mark.dbfault: one run per fault kind, filtered by --dbfault-faults, seed= override."""

from __future__ import annotations

import pytest


def test_a_marked_test_runs_once_per_listed_fault_kind(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import pytest

        @pytest.mark.dbfault("query_only", "locked")
        def test_kinds(dbfault_kind, dbfault):
            assert dbfault.kind == dbfault_kind
    """)
    result = query_only_project.runpytest("-v", "--strict-markers")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_kinds[[]query_only[]] PASSED*", "*test_kinds[[]locked[]] PASSED*"])


def test_the_fault_list_can_be_given_as_a_keyword(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.dbfault(faults=["locked", "disk_full"])
        def test_kinds(dbfault_kind):
            assert dbfault_kind in ("locked", "disk_full")
    """)
    pytester.runpytest("-v").assert_outcomes(passed=2)


def test_the_test_can_make_the_fault_of_its_kind(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import sqlite3
        import pytest

        @pytest.mark.dbfault("query_only")
        def test_make_my_kind(dbfault, dbfault_kind):
            conn = sqlite3.connect(dbfault.new_db())
            dbfault.make(dbfault_kind, conn)
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                conn.execute("CREATE TABLE t (x)")
    """)
    query_only_project.runpytest().assert_outcomes(passed=1)


def test_without_fault_names_it_runs_for_every_registered_kind(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import pytest
        from pytest_dbfault.faults.registry import fault_names

        SEEN = []

        @pytest.mark.dbfault
        def test_each(dbfault_kind):
            SEEN.append(dbfault_kind)

        def test_all_seen():
            assert sorted(SEEN) == fault_names() and "query_only" in SEEN
    """)
    result = query_only_project.runpytest("-p", "no:randomly")
    assert result.ret == 0


def test_dbfault_faults_deselects_the_other_kinds(query_only_project: pytest.Pytester) -> None:
    query_only_project.makepyfile("""
        import pytest

        @pytest.mark.dbfault("query_only", "locked", "disk_full")
        def test_kinds(dbfault_kind):
            pass

        def test_unmarked():
            pass
    """)
    result = query_only_project.runpytest("-v", "--dbfault-faults=locked,query_only")
    result.assert_outcomes(passed=3, deselected=1)
    result.stdout.no_fnmatch_line("*disk_full*PASSED*")


def test_the_environment_selects_faults_too(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.dbfault("locked", "disk_full")
        def test_kinds(dbfault_kind):
            assert dbfault_kind == "disk_full"
    """)
    monkeypatch.setenv("DBFAULT_FAULTS", "disk_full")
    pytester.runpytest().assert_outcomes(passed=1, deselected=1)


def test_a_marker_seed_beats_the_command_line_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.dbfault("locked", seed=99)
        def test_marked(dbfault):
            assert dbfault.seed == 99

        def test_unmarked(dbfault):
            assert dbfault.seed == 5
    """)
    pytester.runpytest("--dbfault-seed=5").assert_outcomes(passed=2)


def test_the_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.dbfault(*faults, faults=None, seed=None):*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('dbfault("lockd")', "*unknown fault 'lockd'; did you mean 'locked'?*"),
        ('dbfault("locked", faults=["disk_full"])', "*both as arguments and as faults=*"),
        ('dbfault("locked", retries=3)', "*unknown argument(s) retries*"),
        ('dbfault("locked", seed="x")', "*seed=...)*invalid value 'x'*whole number*"),
    ],
)
def test_a_bad_marker_is_a_collection_error_naming_the_test(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.{marker}
        def test_bad(dbfault_kind):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_bad*" + message])


def test_a_marked_test_that_cannot_see_the_kind_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.dbfault("locked")
        def test_blind():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_blind is marked @pytest.mark.dbfault but uses neither*"])


def test_dbfault_kind_is_none_in_an_unmarked_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_plain(dbfault_kind, dbfault):
            assert dbfault_kind is None and dbfault.kind is None
    """)
    pytester.runpytest().assert_outcomes(passed=1)
