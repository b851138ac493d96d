"""One active scheduler at a time: a PostgreSQL session-level advisory lock.

The lock lives as long as the connection that took it; a standby keeps trying. On SQLite (the
single-process install) there is nothing to share, so the lock is always granted.
"""

from sqlalchemy import Connection, text

from tidings.db.dialect import is_postgres
from tidings.db.engine import Database

#: An arbitrary, fixed 64-bit key: "tidings-scheduler".
SCHEDULER_LOCK_KEY = 0x7469_6469_6E67_7331


class SchedulerLock:
    """Holds the advisory lock through a dedicated connection."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._connection: Connection | None = None

    @property
    def shared(self) -> bool:
        return is_postgres(self._db.engine)

    def try_acquire(self) -> bool:
        """Take the lock if free; True if this process now holds it."""
        if not self.shared:
            return True
        if self._connection is None:
            self._connection = self._db.engine.connect()
        held = self._connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK_KEY}
        ).scalar()
        self._connection.commit()
        return bool(held)

    def still_held(self) -> bool:
        """False if the lock's connection broke (another scheduler may have taken over)."""
        if not self.shared:
            return True
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except Exception:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Give the lock up. The pooled connection would keep a session lock alive, so it is
        unlocked explicitly, and discarded (not pooled) if that fails."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEDULER_LOCK_KEY})
            connection.commit()
        except Exception:
            connection.invalidate()
        finally:
            connection.close()
