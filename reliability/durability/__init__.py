"""Durability: backups, the redo journal's lifecycle, schema trust, recovery (being split into parts)."""
