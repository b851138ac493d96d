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

from tidings.compose.sendtime import EditionOrder, create_edition
from tidings.config import Settings
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


@dataclass(frozen=True)
class Once:
    """Who asks (their API token), with which Idempotency-Key (None: no key), for what (the
    request's body as JSON: the same key with another body is refused)."""

    token_id: int
    key: str | None
    request: Any


def create_edition_once(
    db: Database,
    settings: Settings,
    once: Once,
    order: EditionOrder,
    present: Callable[[int], dict[str, Any]],
) -> StoredAnswer:
    """Create the one-off edition ``order`` (sent now, or kept for its send time) once per
    token and key, and answer with ``present(edition_id)`` (201).

    With no key the edition is simply created. With a key: the stored answer of the first
    request that used it; :class:`Conflict` while that one is still being handled;
    :class:`InvalidInput` if it asked for something else; otherwise the new edition's answer,
    stored for the next retry. Whatever the work raises, the key is given back first.
    """

    def create() -> tuple[int, dict[str, Any]]:
        return 201, present(create_edition(db, settings, order))

    if not once.key:
        return StoredAnswer(*create())
    return run_once(db, once.token_id, once.key, request_hash(once.request), create)
