"""pytest-dbfault: break SQLite for real and check that an application survives."""
