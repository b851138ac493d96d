"""Storage: engine and sessions, the ORM models, migrations and query helpers."""
