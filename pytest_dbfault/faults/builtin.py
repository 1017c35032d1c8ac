"""Registers the engine-level faults shipped with dbfault."""
