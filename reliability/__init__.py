"""dbfault's SQLite reliability runtime."""
