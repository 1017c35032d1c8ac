"""Targeted, seeded byte damage to a database file or its WAL.

What SQLite answers (see FAULTS.md): a damaged header or page-size field gives
26/SQLITE_NOTADB at the first query touching the schema; a damaged b-tree, index or
freelist page or a truncated file gives 11/SQLITE_CORRUPT (or a failing
``PRAGMA integrity_check``); a changed index entry (``index_entry``) gives no error at all and passes
``PRAGMA quick_check``, which skips index content: only ``integrity_check`` finds it; a damaged WAL
frame or salt gives **no error** — SQLite falls back to the last valid commit and silently drops
the rest.

The damage is done the way it happens for real, from *outside* the process under test: every
read, write and copy of the database and its WAL, and the look-ups on the way (checkpoint, root
page), run in a helper process (:mod:`~pytest_dbfault.faults.outside`). Done here with a plain
``open()``/``close()``, they would also drop every POSIX lock this process's connections hold on
the file (closing any descriptor of a file drops all of the process's locks on it), a second fault
that no disk error or other program causes: another process could then write under a reader or
delete the WAL under a writer, and a test would blame the runtime for it (issue #15).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from . import _files, outside
from .base import Fault, FaultError
from .safety import check_path
from .target import TargetLike, resolve_target

SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_HEADER = 32
_WAL_FRAME_HEADER = 24
_BTREE_TYPES = {0x02: "interior index", 0x05: "interior table", 0x0A: "leaf index", 0x0D: "leaf table"}
#: The parts of a database :class:`CorruptFault` can damage.
PARTS = ("header", "page_size", "btree", "index", "index_entry", "freelist", "wal_frame", "wal_salt", "truncate",
         "append")


class CorruptFault(Fault):
    """Damage one named part of a database file, deterministically from ``seed``.

    Example::

        CorruptFault(db_path, part="btree", table="orders", seed=7).inject()
        sqlite3.connect(db_path).execute("SELECT * FROM orders")  # 11/SQLITE_CORRUPT

    :param target: database path, connection or manager (only the path is used).
    :param part: one of ``header`` (magic bytes 0-15), ``page_size`` (offset 16),
        ``btree`` (root or leaf page of ``table``), ``index`` (root page of ``index``),
        ``index_entry`` (one key of ``index`` changed in place: the file stays well formed and the
        index ordered, but it no longer matches its table, so ``PRAGMA quick_check`` passes and only
        ``PRAGMA integrity_check`` reports the row missing from the index; a lookup through the index
        misses that row),
        ``freelist`` (first freelist trunk page), ``wal_frame`` (page data of WAL frame
        ``frame``), ``wal_salt`` (salt-1 in the WAL header), ``truncate`` (cut the file to
        ``fraction`` of its size), ``append`` (stray bytes after the last page: ``length`` of them,
        default 1 to page size - 1 from ``seed``, so the file ends inside a page; SQLite itself reads
        only the pages its header counts and reports nothing).
    :param table: table name for ``part="btree"`` (``sqlite_schema`` is page 1).
    :param index: index name for ``part="index"`` and ``part="index_entry"``.
    :param page: ``"root"`` or ``"leaf"`` (the right-most leaf under the root) for ``btree``.
    :param frame: 1-based WAL frame for ``wal_frame``; ``None`` picks one from ``seed``.
    :param fraction: kept share of the file for ``truncate`` (0 < fraction < 1).
    :param length: bytes damaged (or appended, for ``append``).
    :param seed: makes the garbage bytes (and any random choice) reproducible.
    :param backup_before: copy the database (and -wal/-journal) first; :meth:`heal`
        copies it back. Without it the damage is permanent and heal is a no-op.
    :param checkpoint: for file parts, checkpoint a non-empty WAL first so the damaged
        page is not shadowed by a newer copy in the WAL.

    Connections opened after the damage see it; an already-open connection may keep
    serving pages from its cache (the file change counter is bumped to invalidate
    rollback-journal caches). Each damage is recorded with file, offset, length, part
    and page number.

    The connections of the process under test keep their locks throughout: the file is read,
    damaged, backed up and restored by another process, as a real outside cause would do it
    (see the module docstring). Only ``truncate`` runs here, as ``truncate(2)`` of the path,
    which opens no descriptor.
    """

    name = "corrupt"
    param_choices = {"part": PARTS, "page": ("root", "leaf")}
    healable = False

    def __init__(
        self,
        target: TargetLike,
        *,
        part: str = "btree",
        table: str | None = None,
        index: str | None = None,
        page: str = "root",
        frame: int | None = None,
        fraction: float = 0.5,
        length: int | None = None,
        seed: int = 0,
        backup_before: bool = False,
        checkpoint: bool = True,
        allow_unsafe: bool = False,
    ) -> None:
        if part not in PARTS:
            raise FaultError(f"CorruptFault part {part!r} is not one of {', '.join(PARTS)}")
        if part == "btree" and not table:
            raise FaultError("CorruptFault part='btree' needs table=<name> (use 'sqlite_schema' for page 1)")
        if part in ("index", "index_entry") and not index:
            raise FaultError(f"CorruptFault part={part!r} needs index=<name> (a table's UNIQUE or PRIMARY KEY "
                             f"index is named sqlite_autoindex_<table>_1)")
        if page not in ("root", "leaf"):
            raise FaultError(f"CorruptFault page must be 'root' or 'leaf', got {page!r}")
        if not 0 < fraction < 1:
            raise FaultError(f"CorruptFault fraction must be between 0 and 1 (exclusive), got {fraction!r}")
        if length is not None and length < 1:
            raise FaultError(f"CorruptFault length must be >= 1 byte, got {length!r}")
        params: dict[str, Any] = {"part": part, "seed": seed}
        for key, value in (("table", table), ("index", index), ("frame", frame)):
            if value is not None:
                params[key] = value
        if part == "btree":
            params["page"] = page
        if part == "truncate":
            params["fraction"] = fraction
        super().__init__(target=target, backup_before=backup_before, **params)
        self.path = resolve_target(target).need_path(self.name)
        self.part, self.table, self.index, self.page = part, table, index, page
        self.frame, self.fraction, self.length, self.seed = frame, fraction, length, seed
        self.backup_before, self.checkpoint, self.allow_unsafe = backup_before, checkpoint, allow_unsafe
        self.healable = backup_before  # type: ignore[misc]  # a backup makes this instance healable
        self._backup: list[tuple[Path, Path]] = []
        self._rng = random.Random(seed)

    def _inject(self) -> None:
        check_path(self.path, action="corrupt", allow_unsafe=self.allow_unsafe)
        if not self.path.is_file():
            raise FaultError(f"cannot corrupt {self.path}: no such database file")
        if self.part.startswith("wal_"):
            wal = self.path.with_name(self.path.name + "-wal")
            if not wal.is_file() or wal.stat().st_size <= _WAL_HEADER:
                raise FaultError(
                    f"cannot damage the WAL of {self.path}: {wal.name} has no frames. SQLite checkpoints and "
                    f"removes it when the last connection closes; keep a writer open or crash one "
                    f"(run_and_kill) to leave frames behind"
                )
        elif self.checkpoint and self.part not in ("truncate", "append"):
            self._checkpoint()
        if self.backup_before:
            self._backup = _files.backup_files(self.path)
            self.record("backed up", files=[str(c) for _, c in self._backup])
        damage = getattr(self, f"_damage_{self.part}")()
        self.record("damaged", part=self.part, **damage)

    def _heal(self) -> None:
        if not self._backup:
            self.record("not restored", reason="corruption is permanent; use backup_before=True to restore")
            return
        restored = _files.restore_files(self._backup)
        self._backup = []
        self.record("restored from backup", files=restored)

    # -- main file parts -----------------------------------------------------------
    def _damage_header(self) -> dict[str, Any]:
        length = min(self.length or 16, 100)
        return self._overwrite(self.path, 0, self._garbage(length, self._read(self.path, 0, length)))

    def _damage_page_size(self) -> dict[str, Any]:
        old = int.from_bytes(self._read(self.path, 16, 2), "big")
        new = old
        while new == 1 or (512 <= new <= 32768 and new & (new - 1) == 0):  # valid sizes: powers of 2, or 1
            new = self._rng.randrange(2, 65536)
        return {**self._overwrite(self.path, 16, new.to_bytes(2, "big")), "old_page_size": old, "new_value": new}

    def _damage_btree(self) -> dict[str, Any]:
        assert self.table is not None
        root = 1 if self.table in ("sqlite_schema", "sqlite_master") else self._rootpage("table", self.table)
        pno = self._descend_to_leaf(root) if self.page == "leaf" else root
        return {**self._damage_page_header(pno), "table": self.table, "page_role": self.page}

    def _damage_index(self) -> dict[str, Any]:
        assert self.index is not None
        return {**self._damage_page_header(self._rootpage("index", self.index)), "index": self.index}

    def _damage_index_entry(self) -> dict[str, Any]:
        """Raise the largest key of the index by one byte or one unit, keeping it the largest.

        The right-most leaf's last cell holds the largest key; making it larger keeps the b-tree
        ordered and every UNIQUE key unique, so nothing but the index-to-table comparison of
        ``integrity_check`` can notice (a key changed in the middle could also break the order).
        """
        assert self.index is not None
        page_size = _page_size(self._db_header())
        pno = self._descend_to_leaf(self._rootpage("index", self.index))
        start = (pno - 1) * page_size
        head = 100 if pno == 1 else 0
        page = self._read(self.path, start, page_size)
        if page[head] != 0x0A:
            raise FaultError(f"index {self.index!r} of {self.path}: page {pno} is not an index leaf")
        cells = int.from_bytes(page[head + 3:head + 5], "big")
        if cells == 0:
            raise FaultError(f"cannot change an entry of index {self.index!r} in {self.path}: it is empty "
                             f"(insert a row first)")
        cell = int.from_bytes(page[head + 8 + 2 * (cells - 1):head + 10 + 2 * (cells - 1)], "big")
        payload, pos = _varint(page, cell)
        if payload > ((page_size - 12) * 64 // 255) - 23:  # spills onto overflow pages: not damaged here
            raise FaultError(f"cannot change an entry of index {self.index!r} in {self.path}: its largest key "
                             f"is {payload} bytes, longer than fits on one page")
        header_len, body = _varint(page, pos)
        serial, _ = _varint(page, body)
        value = pos + header_len  # the first column's value starts the record's body
        if 1 <= serial <= 6:  # big-endian integers of 1, 2, 3, 4, 6 or 8 bytes
            width = (1, 2, 3, 4, 6, 8)[serial - 1]
            old = int.from_bytes(page[value:value + width], "big", signed=True)
            if old == 2 ** (8 * width - 1) - 1:
                raise FaultError(f"the largest key of index {self.index!r} is the largest {width}-byte integer")
            new = (old + 1).to_bytes(width, "big", signed=True)
        elif serial > 13 and serial % 2:  # non-empty text (odd serial types from 15 on)
            text = page[value:value + (serial - 13) // 2]
            # Raise one ASCII byte below '~' to '~': the key grows, stays valid UTF-8 and keeps its length.
            low = [i for i, b in enumerate(text) if b < 0x7E]
            if not low:
                raise FaultError(f"the largest key of index {self.index!r} has no byte that can grow")
            at = self._rng.choice(low)
            new = b"~"
            value += at
        else:
            raise FaultError(f"cannot change an entry of index {self.index!r} in {self.path}: its first column "
                             f"is neither an integer nor non-empty text (serial type {serial})")
        done = self._overwrite(self.path, start + value, new)
        self._bump_change_counter()
        return {**done, "page": pno, "page_size": page_size, "index": self.index,
                "note": "quick_check passes; integrity_check reports a row missing from the index"}

    def _damage_freelist(self) -> dict[str, Any]:
        header = self._db_header()
        trunk = int.from_bytes(header[32:36], "big")
        if trunk == 0:
            raise FaultError(
                f"cannot damage the freelist of {self.path}: it has no free pages. Delete rows (with "
                f"auto_vacuum=NONE and no VACUUM) to free some first"
            )
        page_size, page_count = _page_size(header), int.from_bytes(header[28:32], "big")
        # A next-trunk pointer past the end of the file and a leaf count no page can hold.
        next_trunk = self._rng.randrange(page_count + 1, 2**31)
        leaf_count = self._rng.randrange(page_size // 4, 2**31)
        data = next_trunk.to_bytes(4, "big") + leaf_count.to_bytes(4, "big")
        done = self._overwrite(self.path, (trunk - 1) * page_size, data)
        self._bump_change_counter()
        return {**done, "page": trunk, "page_size": page_size, "free_pages": int.from_bytes(header[36:40], "big")}

    def _damage_truncate(self) -> dict[str, Any]:
        old = self.path.stat().st_size
        new = int(old * self.fraction)
        os.truncate(self.path, new)
        return {"file": str(self.path), "offset": new, "length": old - new, "old_size": old, "new_size": new}

    def _damage_append(self) -> dict[str, Any]:
        old = self.path.stat().st_size
        page_size = int.from_bytes(self._read(self.path, 16, 2), "big")
        page_size = 65536 if page_size == 1 else page_size
        length = self.length or self._rng.randrange(1, page_size)
        data = bytes(self._rng.randrange(256) for _ in range(length))
        self._write(self.path, old, data)  # (at the end: the helper process appends, same inode)
        return {"file": str(self.path), "offset": old, "length": length, "old_size": old, "new_size": old + length}

    # -- WAL parts -----------------------------------------------------------------
    def _damage_wal_frame(self) -> dict[str, Any]:
        wal = self.path.with_name(self.path.name + "-wal")
        page_size = int.from_bytes(self._read(wal, 8, 4), "big")
        frame_size = _WAL_FRAME_HEADER + page_size
        frames = (wal.stat().st_size - _WAL_HEADER) // frame_size
        frame = self.frame if self.frame is not None else self._rng.randrange(1, frames + 1)
        if not 1 <= frame <= frames:
            raise FaultError(f"cannot damage WAL frame {frame} of {wal}: it has frames 1..{frames}")
        start = _WAL_HEADER + (frame - 1) * frame_size
        frame_header = self._read(wal, start, _WAL_FRAME_HEADER)
        length = min(self.length or 16, page_size)
        offset = start + _WAL_FRAME_HEADER + self._rng.randrange(0, page_size - length + 1)
        done = self._overwrite(wal, offset, self._garbage(length, self._read(wal, offset, length)))
        commits = [i + 1 for i in range(frames)
                   if self._read(wal, _WAL_HEADER + i * frame_size + 4, 4) != b"\0\0\0\0"]
        return {**done, "frame": frame, "frames": frames, "page": int.from_bytes(frame_header[:4], "big"),
                "commit_frames": commits,
                "note": "frames from the damaged one on are dropped without any error when the WAL index is rebuilt "
                        "(no connection open); while one is open the page is served and checkpointed as it is"}

    def _damage_wal_salt(self) -> dict[str, Any]:
        wal = self.path.with_name(self.path.name + "-wal")
        done = self._overwrite(wal, 16, self._garbage(4, self._read(wal, 16, 4)))
        return {**done, "field": "salt-1",
                "note": "every frame stops matching the header: all WAL content is dropped without any error"}

    # -- helpers -------------------------------------------------------------------
    def _checkpoint(self) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        if not wal.is_file() or wal.stat().st_size == 0:
            return
        # From the helper process: a second SQLite copy here would not see this process's readers (and its
        # close would drop their locks); across processes every build honours the same locks.
        try:
            ((busy, log, done),) = outside.query(self.path, "PRAGMA wal_checkpoint(TRUNCATE)", ro=False)
        except outside.OutsideSQLError as exc:
            raise FaultError(f"cannot checkpoint {self.path} before damaging it: {exc}") from exc
        self.record("checkpointed", busy=busy, wal_frames=log, checkpointed_frames=done,
                    complete=bool(busy == 0 and log == done))

    def _db_header(self) -> bytes:
        header = self._read(self.path, 0, 100)
        if not header.startswith(SQLITE_MAGIC):
            raise FaultError(f"cannot find pages in {self.path}: it does not start with the SQLite magic "
                             f"(already damaged, or not a database)")
        return header

    def _rootpage(self, kind: str, name: str) -> int:
        try:
            rows = outside.query(self.path, "SELECT rootpage FROM sqlite_schema WHERE type = ? AND name = ?",
                                 (kind, name))
            if not rows or not rows[0][0]:
                known = [r[0] for r in outside.query(
                    self.path, "SELECT name FROM sqlite_schema WHERE type = ? AND rootpage > 0 ORDER BY name",
                    (kind,))]
                raise FaultError(f"cannot corrupt {kind} {name!r}: {self.path} has no such {kind} with a b-tree "
                                 f"(known: {', '.join(known) or 'none'})")
            return int(rows[0][0])
        except outside.OutsideSQLError as exc:
            raise FaultError(f"cannot read the schema of {self.path} to find {kind} {name!r}: {exc}") from exc

    def _descend_to_leaf(self, pno: int) -> int:
        page_size = _page_size(self._db_header())
        for _ in range(64):  # a b-tree deeper than this is itself corrupt
            hdr = 100 if pno == 1 else 0
            head = self._read(self.path, (pno - 1) * page_size + hdr, 12)
            if head[0] in (0x0A, 0x0D):
                return pno
            if head[0] not in (0x02, 0x05):
                raise FaultError(f"page {pno} of {self.path} is not a b-tree page (type byte {head[0]:#x})")
            pno = int.from_bytes(head[8:12], "big")  # right-most child pointer
        raise FaultError(f"b-tree of {self.table!r} in {self.path} is deeper than 64 levels")

    def _damage_page_header(self, pno: int) -> dict[str, Any]:
        page_size = _page_size(self._db_header())
        offset = (pno - 1) * page_size + (100 if pno == 1 else 0)
        length = min(self.length or 8, page_size - (offset % page_size))
        original = self._read(self.path, offset, length)
        garbage = bytearray(self._garbage(length, original))
        # The first byte is the page type; make sure it is not accidentally a valid one.
        garbage[0] = self._rng.choice([b for b in range(256) if b not in _BTREE_TYPES])
        done = self._overwrite(self.path, offset, bytes(garbage))
        self._bump_change_counter()
        return {**done, "page": pno, "page_size": page_size,
                "page_type": _BTREE_TYPES.get(original[0], f"unknown {original[0]:#x}")}

    def _bump_change_counter(self) -> None:
        # Open rollback-journal connections trust their page cache while the file change
        # counter (offset 24) is unchanged; bump it, and the version-valid-for copy at 92.
        counter = int.from_bytes(self._read(self.path, 24, 4), "big")
        valid_for = int.from_bytes(self._read(self.path, 92, 4), "big")
        new = ((counter + 1) & 0xFFFFFFFF).to_bytes(4, "big")
        self._write(self.path, 24, new)
        if valid_for == counter:
            self._write(self.path, 92, new)

    def _garbage(self, length: int, original: bytes) -> bytes:
        data = bytearray(self._rng.randrange(256) for _ in range(length))
        if bytes(data) == original:
            data[0] ^= 0xFF
        return bytes(data)

    def _overwrite(self, file: Path, offset: int, data: bytes) -> dict[str, Any]:
        before = self._read(file, offset, len(data))
        self._write(file, offset, data)
        return {"file": str(file), "offset": offset, "length": len(data),
                "before": before.hex(), "after": data.hex()}

    @staticmethod
    def _read(file: Path, offset: int, length: int) -> bytes:
        data = outside.read_bytes(file, offset, length)
        if len(data) != length:
            raise FaultError(f"{file} is too short: wanted {length} bytes at offset {offset}, got {len(data)}")
        return data

    @staticmethod
    def _write(file: Path, offset: int, data: bytes) -> None:
        outside.write_bytes(file, offset, data)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """SQLite's big-endian varint at ``pos``: its value and the offset after it."""
    value = 0
    for i in range(8):
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return (value << 8) | data[pos + 8], pos + 9


def _page_size(header: bytes) -> int:
    raw = int.from_bytes(header[16:18], "big")
    return 65536 if raw == 1 else raw
