"""Real SQLite fault injectors usable on any SQLite file or connection."""

from .base import Fault, FaultError, FaultEvent, FaultRecord, subscribe, unsubscribe
from .corrupt import CorruptFault
from .crash import PAIR_WRITER, CrashFault, CrashResult, PairCheck, check_pairs, run_and_kill, signal_point
from .disconnect import DisconnectFault
from .disk_full import DiskFullFault
from .file_full import FileFullFault
from .locked import BusyCommitFault, BusySnapshotFault, LockedFault, arrange_busy_snapshot
from .registry import fault_names, get_fault_class, make_fault, register_fault, variant_names
from .safety import allow_root, allowed_roots, check_path, forget_root
from .target import Target, resolve_target

__all__ = [
    "BusyCommitFault",
    "BusySnapshotFault",
    "CorruptFault",
    "CrashFault",
    "CrashResult",
    "DisconnectFault",
    "DiskFullFault",
    "Fault",
    "FaultError",
    "FaultEvent",
    "FaultRecord",
    "FileFullFault",
    "LockedFault",
    "PAIR_WRITER",
    "PairCheck",
    "Target",
    "allow_root",
    "allowed_roots",
    "arrange_busy_snapshot",
    "check_pairs",
    "check_path",
    "fault_names",
    "forget_root",
    "get_fault_class",
    "make_fault",
    "register_fault",
    "resolve_target",
    "run_and_kill",
    "signal_point",
    "subscribe",
    "unsubscribe",
    "variant_names",
]
