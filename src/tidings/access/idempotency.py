"""Idempotency keys: a retried POST that creates a send gets the first answer back.

The key row is inserted before the work starts, so two racing copies of one request cannot
both send: the second finds the row and is told to wait (409) or, once the first finished,
gets the stored answer.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from tidings.db.engine import Database
from tidings.db.models import IdempotencyKey
from tidings.db.types import utcnow
from tidings.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: dict[str, Any]


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def begin(db: Database, token_id: int, key: str, digest: str) -> StoredAnswer | None:
    """Claim ``key``; None if this request should do the work, else the earlier answer."""
    with db.session() as session:
        session.add(
            IdempotencyKey(token_id=token_id, key=key, request_hash=digest, created_at=utcnow())
        )
        try:
            session.commit()
            return None
        except IntegrityError:
            session.rollback()
        earlier = session.scalars(
            select(IdempotencyKey).where(
                IdempotencyKey.token_id == token_id, IdempotencyKey.key == key
            )
        ).one()
    if earlier.request_hash != digest:
        raise InvalidInput("this Idempotency-Key was used for a different request")
    if earlier.status_code is None or earlier.response is None:
        raise Conflict("a request with this Idempotency-Key is still being handled")
    return StoredAnswer(earlier.status_code, earlier.response)


def finish(db: Database, token_id: int, key: str, status_code: int, body: dict[str, Any]) -> None:
    with db.session() as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.token_id == token_id, IdempotencyKey.key == key)
            .values(status_code=status_code, response=body)
        )
        session.commit()


def abandon(db: Database, token_id: int, key: str) -> None:
    """Forget the key after a failed attempt, so the client may retry with it."""
    with db.session() as session:
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.token_id == token_id, IdempotencyKey.key == key
            )
        )
        session.commit()


def run_once(
    db: Database,
    token_id: int,
    key: str,
    digest: str,
    work: Callable[[], tuple[int, dict[str, Any]]],
) -> StoredAnswer:
    """Do ``work`` once per key: the earlier answer if there is one, else the work's answer,
    stored. Whatever the work raises (a refusal, a database error, a bug), the key is released
    first, so a retry with it is not told forever that the request is still being handled."""
    earlier = begin(db, token_id, key, digest)
    if earlier is not None:
        return earlier
    try:
        status_code, body = work()
    except BaseException:
        abandon(db, token_id, key)
        raise
    finish(db, token_id, key, status_code, body)
    return StoredAnswer(status_code, body)
