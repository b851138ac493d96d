"""Rate limits kept in the database, so every web process counts against the same limit.

Clients are named by a keyed hash of their address (the address itself is personal data and
is not stored). Each check deletes the bucket's expired events, counts the rest, and records
one more if there is room. The count and the record are one atomic step per bucket (see
:func:`_lock_bucket`), so parallel attempts can never let more than ``limit`` through.

A bucket nobody comes back to (one per client address) is never checked again; the
scheduler's upkeep deletes every event older than the longest window a rule may have
(:func:`prune`), so the table stays a few rows per recent client.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.orm import Session

from tidings.db.dialect import is_postgres, row_count
from tidings.db.engine import Database
from tidings.db.models import RateEvent
from tidings.db.types import utcnow

#: The first key of the two-key advisory locks that serialise one bucket's checks.
_LOCK_SPACE = 0x7261_7465  # "rate"
#: The longest window a rule may have (a rule asking for more is refused when it is made):
#: an event older than this counts for no rule, and :func:`prune` deletes it.
LONGEST_WINDOW = timedelta(days=30)
#: Events deleted per transaction by :func:`prune`.
PRUNE_BATCH = 5000


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events per client in ``window``."""

    name: str
    limit: int
    window: timedelta

    def __post_init__(self) -> None:
        if not timedelta(0) < self.window <= LONGEST_WINDOW:
            raise ValueError(
                f"rate limit {self.name!r}: a window of {self.window} is not in "
                f"(0, {LONGEST_WINDOW}] (raise LONGEST_WINDOW to allow more)"
            )


def _expired(now: datetime, window: timedelta) -> ColumnElement[bool]:
    """The events that no longer count under a rule of ``window``, at ``now``."""
    return RateEvent.at <= now - window


def _lock_bucket(session: Session, bucket: str) -> None:
    """Serialise checks of one bucket until the transaction ends.

    On PostgreSQL two transactions would otherwise both count nine events and both record a
    tenth (read committed); a transaction-scoped advisory lock on the bucket makes the count
    and the insert one step. SQLite needs nothing: the DELETE that opens each check takes the
    database's single write lock, which is held until commit.
    """
    if not is_postgres(session):
        return
    key = int.from_bytes(hashlib.sha256(bucket.encode()).digest()[:4], "big", signed=True)
    session.execute(
        text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": _LOCK_SPACE, "key": key}
    )


def allow(db: Database, secret: str, rule: RateLimit, client: str) -> bool:
    """Count one event of ``client`` under ``rule``; False when it is over the limit."""
    digest = hmac.new(secret.encode(), client.encode(), hashlib.sha256).hexdigest()[:40]
    bucket = f"{rule.name}:{digest}"
    now = utcnow()
    with db.session() as session:
        _lock_bucket(session, bucket)
        session.execute(
            delete(RateEvent).where(RateEvent.bucket == bucket, _expired(now, rule.window))
        )
        used = session.scalar(select(func.count()).where(RateEvent.bucket == bucket)) or 0
        allowed = used < rule.limit
        if allowed:
            session.add(RateEvent(bucket=bucket, at=now))
        session.commit()
        return allowed


def prune(db: Database, now: datetime | None = None, batch_size: int = PRUNE_BATCH) -> int:
    """Delete every event that counts for no rule any more, whichever bucket it is in (in
    batches of ``batch_size``, each its own transaction); how many."""
    expired = _expired(now or utcnow(), LONGEST_WINDOW)
    deleted = 0
    while True:
        with db.session() as session:
            batch = select(RateEvent.id).where(expired).limit(batch_size)
            done = row_count(session.execute(delete(RateEvent).where(RateEvent.id.in_(batch))))
            session.commit()
        deleted += done
        if done < batch_size:
            return deleted
