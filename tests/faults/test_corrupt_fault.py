"""CorruptFault: each part it damages makes SQLite answer the way FAULTS.md lists."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from pytest_dbfault.faults import CorruptFault, FaultError, check_pairs, run_and_kill


def _query(path, sql):
    conn = sqlite3.connect(path, timeout=0.02)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _damaged(fault):
    return next(r.detail for r in fault.records if r.action == "damaged")


@pytest.mark.parametrize("part", ["header", "page_size"])
def test_a_damaged_header_opens_fine_then_says_not_a_database(make_db, error_name, part):
    path = make_db()
    CorruptFault(path, part=part, seed=1).inject()
    assert _query(path, "SELECT 1") == [(1,)]  # connect() and schema-free queries still work
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database") as exc:
        _query(path, "SELECT count(*) FROM items")
    assert error_name(exc.value) == "SQLITE_NOTADB"


def test_a_damaged_table_root_page_is_reported_malformed_and_recorded_exactly(make_db, error_name):
    path = make_db(rows=400, payload=100)
    fault = CorruptFault(path, part="btree", table="items", seed=3).inject()
    with pytest.raises(sqlite3.DatabaseError, match="malformed") as exc:
        _query(path, "SELECT count(*), sum(length(payload)) FROM items")
    assert error_name(exc.value) == "SQLITE_CORRUPT"
    damage = _damaged(fault)
    page_size = damage["page_size"]
    assert damage["file"] == str(path)
    assert damage["page"] == _query_rootpage(path)
    assert damage["offset"] == (damage["page"] - 1) * page_size
    assert damage["length"] == 8 and damage["before"] != damage["after"]


def _query_rootpage(path):
    # Read through the index-free part of the schema, which the damage left intact.
    return _query(path, "SELECT rootpage FROM sqlite_schema WHERE name = 'items'")[0][0]


def test_a_damaged_leaf_page_breaks_scans_while_other_pages_still_answer(make_db, error_name):
    path = make_db(rows=400, payload=100)
    fault = CorruptFault(path, part="btree", table="items", page="leaf").inject()
    assert _damaged(fault)["page"] != _query_rootpage(path)  # a real leaf below an interior root
    assert _query(path, "SELECT name FROM items WHERE id = 1") == [("item-00000",)]
    with pytest.raises(sqlite3.DatabaseError) as exc:
        _query(path, "SELECT count(*), sum(length(payload)) FROM items")
    assert error_name(exc.value) == "SQLITE_CORRUPT"


def test_a_damaged_index_breaks_lookups_through_it_but_not_table_scans(make_db, error_name):
    path = make_db(rows=400, payload=100)
    CorruptFault(path, part="index", index="items_name").inject()
    assert _query(path, "SELECT count(*) FROM items NOT INDEXED") == [(400,)]
    with pytest.raises(sqlite3.DatabaseError) as exc:
        _query(path, "SELECT id FROM items WHERE name = 'item-00200'")
    assert error_name(exc.value) == "SQLITE_CORRUPT"


def _checks(path):
    return _query(path, "PRAGMA quick_check"), _query(path, "PRAGMA integrity_check")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_changed_index_entry_passes_quick_check_and_fails_integrity_check(make_db, seed):
    path = make_db(rows=400, payload=100)
    fault = CorruptFault(path, part="index_entry", index="items_name", seed=seed, backup_before=True).inject()
    quick, full = _checks(path)
    assert quick == [("ok",)]  # quick_check skips index content: only the full check can tell
    assert full != [("ok",)] and any("missing from index items_name" in row[0] for row in full), full
    assert _query(path, "SELECT count(*) FROM items NOT INDEXED") == [(400,)]  # the table is untouched
    # The largest key was raised: the last row is no longer found through the index, only by a scan.
    assert _query(path, "SELECT id FROM items INDEXED BY items_name WHERE name = 'item-00399'") == []
    assert _query(path, "SELECT id FROM items NOT INDEXED WHERE name = 'item-00399'") == [(400,)]
    damage = _damaged(fault)
    assert damage["length"] == 1 and damage["after"] == b"~".hex() and damage["before"] != damage["after"]
    fault.heal()
    assert _checks(path) == ([("ok",)], [("ok",)])


def test_a_changed_integer_key_of_a_unique_index_is_found_only_by_integrity_check(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER UNIQUE)")
    conn.executemany("INSERT INTO t (n) VALUES (?)", [(i * 1000,) for i in range(50)])
    conn.close()
    fault = CorruptFault(path, part="index_entry", index="sqlite_autoindex_t_1").inject()
    quick, full = _checks(path)
    assert quick == [("ok",)]
    assert any("missing from index sqlite_autoindex_t_1" in row[0] for row in full), full
    assert int(_damaged(fault)["after"], 16) == int(_damaged(fault)["before"], 16) + 1  # 49000 -> 49001


def test_an_index_entry_needs_an_index_with_rows(make_db):
    path = make_db(rows=0)
    with pytest.raises(FaultError, match="needs index=<name>"):
        CorruptFault(path, part="index_entry")
    with pytest.raises(FaultError, match="is empty"):
        CorruptFault(path, part="index_entry", index="items_name").inject()
    with pytest.raises(FaultError, match="no such index"):
        CorruptFault(path, part="index_entry", index="nope").inject()


def test_a_damaged_freelist_fails_integrity_check_and_page_allocation(make_db, error_name):
    path = make_db(rows=400, payload=100)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM items WHERE id > 100")  # frees whole pages onto the freelist
    conn.commit()
    conn.close()
    fault = CorruptFault(path, part="freelist", seed=5).inject()
    assert _damaged(fault)["free_pages"] > 0
    report = _query(path, "PRAGMA integrity_check")
    assert report[0][0] != "ok" and "freelist" in report[0][0]
    with pytest.raises(sqlite3.DatabaseError) as exc:
        _query(path, "INSERT INTO items (name, payload) VALUES ('big', randomblob(20000))")
    assert error_name(exc.value) == "SQLITE_CORRUPT"


def test_a_database_without_free_pages_cannot_have_its_freelist_damaged(make_db):
    with pytest.raises(FaultError, match="has no free pages"):
        CorruptFault(make_db(), part="freelist").inject()


def test_a_truncated_file_is_malformed(make_db, error_name):
    path = make_db(rows=400, payload=100)
    size = path.stat().st_size
    fault = CorruptFault(path, part="truncate", fraction=0.5).inject()
    assert path.stat().st_size == size // 2 == _damaged(fault)["new_size"]
    with pytest.raises(sqlite3.DatabaseError) as exc:
        _query(path, "SELECT count(*) FROM items")
    assert error_name(exc.value) == "SQLITE_CORRUPT"


def test_stray_bytes_appended_end_the_file_inside_a_page_and_sqlite_says_nothing(make_db, tmp_path):
    path = make_db(rows=100)
    original = path.read_bytes()
    page_size = int.from_bytes(original[16:18], "big")
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)
    fault = CorruptFault(path, part="append", seed=5, backup_before=True).inject()
    damage = _damaged(fault)
    grown = path.read_bytes()
    assert grown[:len(original)] == original and damage["offset"] == len(original)
    assert 0 < len(grown) - len(original) == damage["length"] < page_size  # (never a whole page)
    assert len(grown) % page_size
    # SQLite reads only the pages its header counts: no error, the rows are all there.
    assert _query(path, "PRAGMA integrity_check") == [("ok",)]
    assert _query(path, "SELECT count(*) FROM items") == _query(copy, "SELECT count(*) FROM items")
    CorruptFault(copy, part="append", seed=5).inject()
    assert copy.read_bytes() == grown  # (the same seed, the same bytes)
    CorruptFault(copy, part="append", length=3).inject()
    assert len(copy.read_bytes()) == len(grown) + 3
    fault.heal()
    assert path.read_bytes() == original


def test_the_same_seed_makes_the_same_damage(make_db, tmp_path):
    first = make_db(rows=100)
    second = tmp_path / "copy.db"
    shutil.copyfile(first, second)
    a = CorruptFault(first, part="btree", table="items", seed=42).inject()
    b = CorruptFault(second, part="btree", table="items", seed=42).inject()
    c = CorruptFault(second, part="header", seed=43).inject()
    assert _damaged(a)["after"] == _damaged(b)["after"]
    assert _damaged(c)["after"] != _damaged(a)["after"]


def test_heal_restores_a_backup_taken_before_the_damage(make_db):
    path = make_db()
    fault = CorruptFault(path, part="header", backup_before=True)
    assert fault.healable
    with fault:
        with pytest.raises(sqlite3.DatabaseError):
            _query(path, "SELECT count(*) FROM items")
    assert _query(path, "SELECT count(*) FROM items") == [(20,)]
    assert not path.with_name(path.name + ".dbfault-backup").exists()


def test_heal_without_a_backup_says_the_damage_is_permanent(make_db):
    path = make_db()
    fault = CorruptFault(path, part="header")
    with fault:
        pass
    assert not fault.healable
    assert any(r.action == "not restored" for r in fault.records)
    with pytest.raises(sqlite3.DatabaseError):
        _query(path, "SELECT count(*) FROM items")


def test_an_unknown_table_is_named_with_the_known_ones(make_db):
    with pytest.raises(FaultError, match=r"no such table .*known: items"):
        CorruptFault(make_db(), part="btree", table="orders").inject()


def test_an_unknown_part_is_rejected_by_name(make_db):
    with pytest.raises(FaultError, match="part 'footer' is not one of"):
        CorruptFault(make_db(), part="footer")


def _wal_left_by_a_crash(path, commits=6):
    # A killed writer leaves its WAL behind un-checkpointed, as a real crash does.
    result = run_and_kill(path, kwargs={"journal_mode": "wal", "txns": 50}, kill_at="committed",
                          occurrence=commits)
    assert result.killed and path.with_name(path.name + "-wal").stat().st_size > 0
    return result


def test_a_damaged_wal_frame_silently_drops_the_commits_from_that_frame_on(tmp_path):
    path = tmp_path / "wal.db"
    _wal_left_by_a_crash(path)
    fault = CorruptFault(path, part="wal_frame", seed=9).inject()
    damage = _damaged(fault)
    assert 1 <= damage["frame"] <= damage["frames"]
    check = check_pairs(path)  # no exception at all: that is the fault
    assert check.integrity == ["ok"] and check.ok
    assert check.transactions < 6


def test_a_damaged_wal_salt_silently_drops_every_frame(tmp_path):
    path = tmp_path / "wal.db"
    _wal_left_by_a_crash(path)
    CorruptFault(path, part="wal_salt").inject()
    check = check_pairs(path)
    assert check.integrity == ["ok"]
    assert check.transactions == 0  # even the CREATE TABLE lived only in the WAL


def test_wal_damage_needs_wal_frames(make_db):
    with pytest.raises(FaultError, match="has no frames"):
        CorruptFault(make_db(journal_mode="delete"), part="wal_salt").inject()
