"""P8: when SQLite itself rolls a transaction back inside ``db.transaction()`` (a conflict clause ``OR ROLLBACK``,
a trigger's ``RAISE(ROLLBACK, ...)``) and the application swallowed that error and went on, the next statement and
the block fail. Their user message says the change was not saved and does not ask to try again later: sent again,
the same change meets the same conflict (before session 29 it was the generic "Please try again later")."""
from __future__ import annotations

from pathlib import Path

import pytest
from runtime_helpers import fast_config

from reliability import DatabaseError, DatabaseManager


@pytest.mark.parametrize("how", ["or_rollback", "trigger"])
def test_a_transaction_sqlite_rolled_back_is_not_answered_with_try_again_later(tmp_path: Path, how: str) -> None:
    db = DatabaseManager(fast_config(tmp_path / "app.db"))
    try:
        db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        db.execute("CREATE TABLE audit (n INTEGER)")
        db.execute("CREATE TRIGGER no_negative BEFORE INSERT ON audit WHEN NEW.n < 0 "
                   "BEGIN SELECT RAISE(ROLLBACK, 'negative'); END")
        seen: list[DatabaseError] = []
        with pytest.raises(DatabaseError) as block:
            with db.transaction():
                db.execute("INSERT INTO kv VALUES ('a', '1')")
                try:
                    if how == "or_rollback":
                        db.execute("INSERT OR ROLLBACK INTO kv VALUES ('a', '2')")
                    else:
                        db.execute("INSERT INTO audit VALUES (-1)")
                except DatabaseError:
                    pass  # (the application swallows it and goes on)
                try:
                    db.execute("INSERT INTO kv VALUES ('b', '3')")
                except DatabaseError as err:
                    seen.append(err)
        assert db.fetch_all("SELECT k FROM kv") == []
        assert len(seen) == 1
        for err in (seen[0], block.value):
            text = err.user_message.lower()
            assert "try again" not in text and "not saved" in text, err.user_message
    finally:
        db.close()
