"""Registers the engine-level faults shipped with dbfault."""

from __future__ import annotations

from .corrupt import CorruptFault
from .crash import CrashFault
from .disconnect import DisconnectFault
from .disk_full import DiskFullFault
from .file_full import FileFullFault
from .locked import BusyCommitFault, BusySnapshotFault, LockedFault
from .registry import register_fault

for _cls in (
    BusyCommitFault,
    BusySnapshotFault,
    CorruptFault,
    CrashFault,
    DisconnectFault,
    DiskFullFault,
    FileFullFault,
    LockedFault,
):
    register_fault(_cls)
