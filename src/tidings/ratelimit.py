"""Rate limits kept in the database, so every web process counts against the same limit.

Clients are named by a keyed hash of their address (the address itself is personal data and
is not stored). Each check deletes the bucket's expired events, counts the rest, and records
one more if there is room: a few rows per client, never a growing table.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select

from tidings.db.engine import Database
from tidings.db.models import RateEvent
from tidings.db.types import utcnow


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events per client in ``window``."""

    name: str
    limit: int
    window: timedelta


def allow(db: Database, secret: str, rule: RateLimit, client: str) -> bool:
    """Count one event of ``client`` under ``rule``; False when it is over the limit."""
    digest = hmac.new(secret.encode(), client.encode(), hashlib.sha256).hexdigest()[:40]
    bucket = f"{rule.name}:{digest}"
    now = utcnow()
    with db.session() as session:
        session.execute(
            delete(RateEvent).where(RateEvent.bucket == bucket, RateEvent.at <= now - rule.window)
        )
        used = session.scalar(select(func.count()).where(RateEvent.bucket == bucket)) or 0
        allowed = used < rule.limit
        if allowed:
            session.add(RateEvent(bucket=bucket, at=now))
        session.commit()
        return allowed
