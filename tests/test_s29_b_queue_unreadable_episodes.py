"""P17: a write queue path that cannot be read (a link planted there) is logged once per episode. An episode ends
when the runtime finds the path readable again (the file it read back, another file, or no file at all); a second
episode with the same error is logged again (before session 29 it was not when the readable period left no file,
or put back the file the queue had read)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseManager


@pytest.mark.parametrize("between", ["absent", "same_file", "new_file"])
def test_each_episode_of_an_unreadable_queue_is_logged_once(tmp_path: Path, caplog, between: str) -> None:
    db_path, secret = tmp_path / "app.db", tmp_path / "secret.txt"
    secret.write_text("not a queue\n")
    app = DatabaseManager(fast_config(db_path))
    try:
        app.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        path, aside = app.queue.path, tmp_path / "queue.aside"
        if between != "absent":
            path.write_text("")
            app.queue.refresh()  # (the queue has read this file)
        n = 0
        for _episode in range(2):
            if path.exists():
                os.replace(path, aside)
            path.symlink_to(secret)
            for _ in range(2):  # (a second write in the same episode is not logged again)
                app.execute("INSERT INTO kv VALUES (?, 'v')", (n,))
                n += 1
            path.unlink()
            if between == "same_file":
                os.replace(aside, path)
            elif between == "new_file":  # (made before the old one goes: another file, not its inode reused)
                path.write_text("")
                aside.unlink()
            app.execute("INSERT INTO kv VALUES (?, 'v')", (n,))  # (readable again: the runtime looks)
            n += 1
        assert app.fetch_one("SELECT count(*) FROM kv")[0] == n
        assert secret.read_text() == "not a queue\n"
        said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
        assert len(said) == 2 and all("symbolic link" in s for s in said), said
    finally:
        app.close()
