"""Alembic environment: runs online against the engine handed over by tidings.db.migrate.

On SQLite a migration that changes a table rebuilds it (batch mode: copy, drop, rename).
With foreign keys on, dropping the old table would cascade to every row that points at it
(rebuilding ``editions`` deleted every delivery), so migrations run with foreign keys off and
are checked with ``PRAGMA foreign_key_check`` before they commit. The pragma only takes
effect outside a transaction.
"""

from alembic import context
from sqlalchemy import Engine

from tidings.db.models import Base

config = context.config
engine: Engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"a migration broke foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
