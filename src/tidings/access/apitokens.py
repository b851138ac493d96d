"""Bearer tokens for the JSON API: created with a role, shown once, stored as a SHA-256.

Tokens are 256 random bits, so a fast hash is enough (no password stretching needed) and a
request costs one indexed lookup.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import ApiToken, UserRole
from tidings.db.types import utcnow
from tidings.errors import NotFound

PREFIX = "tid_"
#: last_used_at is written at most this often per token, not on every request.
TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class TokenHolder:
    """Who an API request acts as."""

    token_id: int
    name: str
    role: UserRole


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    db: Database, name: str, role: UserRole, created_by: str | None
) -> tuple[int, str]:
    """A new token's id and secret; the secret is never stored and cannot be shown again."""
    secret = PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        token = ApiToken(
            name=name.strip()[:200] or "token",
            role=role,
            token_hash=_digest(secret),
            created_by=created_by,
        )
        session.add(token)
        session.commit()
        return token.id, secret


def token_holder(db: Database, secret: str) -> TokenHolder | None:
    """The holder of a valid, unrevoked token; None for anything else."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    now = utcnow()
    with db.session() as session:
        token = session.scalar(
            select(ApiToken).where(
                ApiToken.token_hash == _digest(secret), ApiToken.revoked_at.is_(None)
            )
        )
        if token is None:
            return None
        if token.last_used_at is None or token.last_used_at < now - TOUCH_EVERY:
            token.last_used_at = now
            session.commit()
        return TokenHolder(token.id, token.name, token.role)


def revoke_token(db: Database, token_id: int) -> None:
    with db.session() as session:
        revoked = row_count(
            session.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        )
        session.commit()
    if not revoked:
        raise NotFound(f"no active token {token_id}")


def list_tokens(db: Database) -> list[ApiToken]:
    with db.session() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
