"""Real SQLite fault injectors usable on any SQLite file or connection."""
