"""SQLite persistence: schema, migrations and repositories."""
