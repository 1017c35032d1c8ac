"""A migrations folder the loader refuses (``load_migrations``): the error names the file, and its user message,
which README promises holds no paths ("plain language, no SQL or paths"), names it by its file name alone; the
detail (for the log) keeps the full path. Found by the schema machine's rule ``migrations_folder_with_a_stray_file``
(session 29): the user message was the detail, with the folder's full path in it."""

from __future__ import annotations

import pytest

from reliability.schema import MigrationError, load_migrations


def refusal(folder, files: dict[str, str]) -> MigrationError:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(MigrationError) as caught:
        load_migrations(folder)
    return caught.value


@pytest.mark.parametrize(("files", "named"), [
    ({"1_a.sql": "CREATE TABLE a (x)", "2_gone.down.sql": "DROP TABLE gone"}, ["2_gone.down.sql"]),
    ({"1_a.sql": "CREATE TABLE a (x)", "001_b.sql": "CREATE TABLE b (x)"}, ["001_b.sql", "1_a.sql"]),
    ({"1_a.sql": "CREATE TABLE a (x)", "1_a.down.sql": "DROP TABLE a", "01_a.down.sql": "DROP TABLE a"},
     ["01_a.down.sql", "1_a.down.sql"]),
    ({"a.sql": "CREATE TABLE a (x)"}, ["a.sql"]),
])
def test_the_user_message_names_the_file_without_its_path(tmp_path, files, named):
    folder = tmp_path / "migrations"
    err = refusal(folder, files)
    assert str(err.kind) == "schema"
    for name in named:
        assert str(folder / name) in err.detail, err.detail
        assert repr(name) in err.user_message, err.user_message
    assert str(tmp_path) not in err.user_message, err.user_message


def test_a_missing_folder_is_named_without_its_path(tmp_path):
    with pytest.raises(MigrationError) as caught:
        load_migrations(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in caught.value.detail
    assert "'nowhere'" in caught.value.user_message and str(tmp_path) not in caught.value.user_message
