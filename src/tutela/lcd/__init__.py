"""The per-node configuration database (LCD): SQLite, generations, YAML export and apply.

Configuration is versioned by generation; runtime resource states live beside it.
"""
