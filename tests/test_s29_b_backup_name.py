"""A backup named by a relative path that two different files answer to (one from the working directory, one in
the backup directory) is refused, naming both, by every entry point alike (``db.restore(name)`` and ``reliability
restore NAME``); before session 29 both silently took the working directory's file. A name only one file answers
to, an absolute path, and a working directory that is the backup directory itself still restore."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from runtime_helpers import cli_runner, fast_config

from reliability import DatabaseManager, cli
from reliability.durability.backup import BackupError


def _two_backups(db: DatabaseManager) -> tuple[Path, Path]:
    """Two backups of the database (one with row 1, the later with rows 1 and 2): their paths."""
    db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    db.execute("INSERT INTO t VALUES (1)")
    first = Path(db.backup().path)
    db.execute("INSERT INTO t VALUES (2)")
    second = Path(db.backup().path)
    return first, second


def test_the_api_refuses_a_name_two_files_answer_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with DatabaseManager(fast_config(tmp_path / "app.db")) as db:
        first, second = _two_backups(db)
        shutil.copyfile(second, work / first.name)  # (a stray copy of another backup under the first's name)
        monkeypatch.chdir(work)
        with pytest.raises(BackupError) as refused:
            db.restore(first.name)
        err = refused.value
        assert err.kind == "misuse" and "ambiguous" in err.detail, err
        assert str(work / first.name) in err.detail and str(first) in err.detail, err.detail
        assert "full path" in err.user_message and str(tmp_path) not in err.user_message
        assert db.fetch_all("SELECT n FROM t") == [(1,), (2,)]  # (nothing was restored)
        assert db.restore(str(first)).path == str(first)  # (the full path: as given)
        assert db.fetch_all("SELECT n FROM t") == [(1,)]
        (work / first.name).unlink()
        assert Path(db.restore(second.name).path).resolve() == second.resolve()  # (only in the backup directory)
        assert db.fetch_all("SELECT n FROM t") == [(1,), (2,)]
        shutil.copyfile(first, work / "mine.sqlite")
        assert Path(db.restore("mine.sqlite").path).resolve() == (work / "mine.sqlite").resolve()  # (only here)
        assert db.fetch_all("SELECT n FROM t") == [(1,)]
        monkeypatch.chdir(first.parent)  # (the working directory is the backup directory: one file, two names)
        assert Path(db.restore(second.name).path).resolve() == second.resolve()
        assert db.fetch_all("SELECT n FROM t") == [(1,), (2,)]


def test_the_command_line_refuses_it_the_same_way(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    run = cli_runner(tmp_path, capsys, monkeypatch)
    with DatabaseManager(fast_config(run.db)) as db:
        db.execute("CREATE TABLE t (n INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
    assert run("backup")[0] == cli.EXIT_OK
    newest = Path(json.loads(run("backups", json_out=True)[1])["value"][0]["path"])
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(newest, work / newest.name)
    with DatabaseManager(fast_config(run.db)) as db:  # (the stray copy differs: another row added to it)
        db.execute("INSERT INTO t VALUES (2)")
    with DatabaseManager(fast_config(work / newest.name)) as other:
        other.execute("INSERT INTO t VALUES (3)")
    monkeypatch.chdir(work)
    code, _, err = run("restore", newest.name)
    assert code == cli.EXIT_USAGE and "ambiguous" in err and "nothing was restored" in err, err
    assert str(work / newest.name) in err and str(newest) in err, err
    with DatabaseManager(fast_config(run.db)) as db:
        assert db.fetch_all("SELECT n FROM t") == [(1,), (2,)]
    code, out, err = run("restore", str(newest))
    assert code == cli.EXIT_OK and str(newest) in out, err
    with DatabaseManager(fast_config(run.db)) as db:
        assert db.fetch_all("SELECT n FROM t") == [(1,)]
