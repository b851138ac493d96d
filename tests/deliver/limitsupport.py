"""Helpers the sending limits' tests share: one reservation in its own transaction, and a
limit's row as stored."""

from tidings.db.engine import Database
from tidings.db.models import SendLimit
from tidings.deliver import limits
from tidings.deliver.limitkeys import Key
from tidings.deliver.limits import NotBefore, Reserved


def reserve(
    db: Database, key: Key, count: int = 1, now: float | None = None, ahead: float = 1.0
) -> Reserved | NotBefore | None:
    """Reserve ``count`` sends on ``key``'s clock and commit (``now`` None: the database's
    time)."""
    with db.session() as session:
        got = limits.reserve(session, key, count, ahead, now)
        session.commit()
        return got


def limit_row(db: Database, key: Key) -> SendLimit | None:
    """``key``'s row of ``send_limits``, if any."""
    with db.session() as session:
        return session.get(SendLimit, (key.scope.value, key.name))
