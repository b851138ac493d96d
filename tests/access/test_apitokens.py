"""API tokens, tested directly on SQLite and PostgreSQL: shown once and stored as a hash,
found by their secret, revoked for good, touched at most every few minutes."""

import hashlib
from datetime import datetime

import pytest
from sqlalchemy import select, update

from tidings.access.apitokens import (
    PREFIX,
    TOUCH_EVERY,
    TokenHolder,
    create_token,
    list_tokens,
    revoke_token,
    token_holder,
)
from tidings.db.engine import Database
from tidings.db.models import ApiToken, UserRole
from tidings.errors import NotFound


def test_a_token_is_shown_once_and_stored_only_as_its_hash(db: Database) -> None:
    token_id, secret = create_token(db, "  CMS push  ", UserRole.editor, "ed@example.ge")
    assert secret.startswith(PREFIX) and len(secret) > 40
    with db.session() as session:
        stored = session.get_one(ApiToken, token_id)
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.token_hash, stored.name}
    assert (stored.name, stored.role, stored.created_by) == (
        "CMS push",
        UserRole.editor,
        "ed@example.ge",
    )
    assert token_holder(db, secret) == TokenHolder(token_id, "CMS push", UserRole.editor)


def test_a_blank_name_becomes_token_and_a_long_one_is_cut(db: Database) -> None:
    first, _ = create_token(db, "   ", UserRole.viewer, None)
    second, _ = create_token(db, "x" * 500, UserRole.viewer, None)
    names = {t.id: t.name for t in list_tokens(db)}
    assert names[first] == "token" and len(names[second]) == 200
    assert [t.id for t in list_tokens(db)] == [first, second]


@pytest.mark.parametrize(
    "secret",
    ["", "tid_", "tid_not-a-token-we-made", "Bearer tid_x", "tid_" + "x" * 300, "abc"],
)
def test_anything_but_a_live_token_finds_nobody(db: Database, secret: str) -> None:
    create_token(db, "real", UserRole.admin, None)
    assert token_holder(db, secret) is None


def test_a_revoked_token_stops_working_and_cannot_be_revoked_again(db: Database) -> None:
    token_id, secret = create_token(db, "old", UserRole.admin, None)
    revoke_token(db, token_id)
    assert token_holder(db, secret) is None
    with pytest.raises(NotFound):
        revoke_token(db, token_id)
    with pytest.raises(NotFound):
        revoke_token(db, token_id + 1)
    (token,) = list_tokens(db)
    assert token.revoked_at is not None  # kept, for the record


def test_last_use_is_written_at_most_every_few_minutes(db: Database) -> None:
    token_id, secret = create_token(db, "busy", UserRole.viewer, None)

    def last_used() -> datetime | None:
        with db.session() as session:
            return session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))

    assert last_used() is None
    token_holder(db, secret)
    first = last_used()
    assert first is not None
    token_holder(db, secret)
    assert last_used() == first  # within TOUCH_EVERY: not written again
    with db.session() as session:  # five minutes pass
        session.execute(update(ApiToken).values(last_used_at=first - TOUCH_EVERY))
        session.commit()
    token_holder(db, secret)
    latest = last_used()
    assert latest is not None and latest >= first  # written again
