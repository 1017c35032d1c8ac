"""pytest entry point for dbfault (inert unless ``--dbfault`` is given)."""
