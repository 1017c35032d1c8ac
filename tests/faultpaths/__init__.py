"""Fault-driven tests of the runtime's error handlers (a package: its file names repeat those in tests/)."""
