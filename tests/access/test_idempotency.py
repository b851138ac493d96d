"""Idempotency keys (access/idempotency.py), tested directly on SQLite and PostgreSQL: claim,
finish and replay, a key still being handled, another request under the same key, a key given
back whatever the work raises, keys per token, and the create-an-edition-once service.

Keys do not expire: a finished key answers with its stored answer for as long as it exists
(it goes with its token)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers
from tidings.access.apitokens import create_token
from tidings.access.idempotency import (
    Once,
    StoredAnswer,
    abandon,
    begin,
    create_edition_once,
    finish,
    request_hash,
    run_once,
)
from tidings.compose.sendtime import EditionOrder
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, IdempotencyKey, UserRole
from tidings.errors import Conflict, InvalidInput, NotFound

ASKED = request_hash({"newsletter": "daily", "subject": "Budget day"})
OTHER = request_hash({"newsletter": "daily", "subject": "Another day"})


def _token(db: Database, name: str = "cms") -> int:
    return create_token(db, name, UserRole.editor, "test")[0]


def _keys(db: Database) -> list[tuple[int, str, int | None]]:
    with db.session() as session:
        rows = session.execute(
            select(IdempotencyKey.token_id, IdempotencyKey.key, IdempotencyKey.status_code)
        )
        return sorted((token_id, key, status) for token_id, key, status in rows)


def _count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_the_request_hash_ignores_key_order_and_sees_every_value() -> None:
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1, "b": [1, 2]}) != request_hash({"a": 1, "b": [2, 1]})
    assert len(ASKED) == 64 and ASKED != OTHER


def test_begin_claims_then_conflicts_then_replays_once_finished(db: Database) -> None:
    token = _token(db)
    assert begin(db, token, "k1", ASKED) is None  # claimed: this request does the work
    with pytest.raises(Conflict, match="still being handled"):
        begin(db, token, "k1", ASKED)
    with pytest.raises(InvalidInput, match="different request"):
        begin(db, token, "k1", OTHER)
    finish(db, token, "k1", 201, {"id": 7, "subject": "Budget day"})
    assert begin(db, token, "k1", ASKED) == StoredAnswer(201, {"id": 7, "subject": "Budget day"})
    with pytest.raises(InvalidInput):  # a finished key still refuses another request
        begin(db, token, "k1", OTHER)
    assert _keys(db) == [(token, "k1", 201)]


def test_keys_are_per_token(db: Database) -> None:
    cms, desk = _token(db, "cms"), _token(db, "desk")
    assert begin(db, cms, "same", ASKED) is None
    assert begin(db, desk, "same", OTHER) is None  # another token's key is another key
    finish(db, cms, "same", 201, {"id": 1})
    finish(db, desk, "same", 201, {"id": 2})
    assert begin(db, cms, "same", ASKED) == StoredAnswer(201, {"id": 1})
    assert begin(db, desk, "same", OTHER) == StoredAnswer(201, {"id": 2})


def test_abandon_gives_the_key_back(db: Database) -> None:
    token = _token(db)
    assert begin(db, token, "k", ASKED) is None
    abandon(db, token, "k")
    assert _keys(db) == []
    assert begin(db, token, "k", OTHER) is None  # free again, even for another request


class Boom(BaseException):
    """Not even an Exception: an interrupt, say."""


@pytest.mark.parametrize("failure", [RuntimeError("bug"), Conflict("refused"), Boom()])
def test_run_once_releases_the_key_whatever_the_work_raises(
    db: Database, failure: BaseException
) -> None:
    token = _token(db)

    def fails() -> tuple[int, dict[str, Any]]:
        assert _keys(db) == [(token, "k", None)]  # claimed while the work runs
        raise failure

    with pytest.raises(type(failure)):
        run_once(db, token, "k", ASKED, fails)
    assert _keys(db) == []
    calls: list[int] = []

    def works() -> tuple[int, dict[str, Any]]:
        calls.append(1)
        return 201, {"id": len(calls)}

    assert run_once(db, token, "k", ASKED, works) == StoredAnswer(201, {"id": 1})
    assert run_once(db, token, "k", ASKED, works) == StoredAnswer(201, {"id": 1})
    assert calls == [1]  # the replay did not work again


@pytest.fixture
def daily(db: Database) -> Database:
    newsletter(db)
    subscribers(db, "daily", 3)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    return db


def _present(edition_id: int) -> dict[str, Any]:
    return {"id": edition_id}


def test_create_edition_once_sends_once_per_key(daily: Database, settings: Settings) -> None:
    db, token = daily, _token(daily)
    order = EditionOrder("daily", OneOff(article_ids=[], subject="Budget day"))
    asked = {"newsletter": "daily", "subject": "Budget day"}
    first = create_edition_once(db, settings, Once(token, "budget-1", asked), order, _present)
    again = create_edition_once(db, settings, Once(token, "budget-1", asked), order, _present)
    assert first.status_code == 201 and again == first
    assert _count(db, Edition) == 1 and _count(db, Delivery) == 3
    with pytest.raises(InvalidInput):
        other = {**asked, "subject": "Other"}
        create_edition_once(db, settings, Once(token, "budget-1", other), order, _present)
    # Without a key, every request creates.
    unkeyed = create_edition_once(db, settings, Once(token, None, asked), order, _present)
    assert unkeyed.body != first.body and _count(db, Edition) == 2


def test_a_copy_racing_the_first_is_told_to_wait(daily: Database, settings: Settings) -> None:
    db, token = daily, _token(daily)
    once = Once(token, "race", {"newsletter": "daily"})
    order = EditionOrder("daily", OneOff(article_ids=[]))
    seen: list[str] = []

    def present_while_a_copy_arrives(edition_id: int) -> dict[str, Any]:
        # The first request has created its edition but not yet stored its answer.
        with pytest.raises(Conflict) as copy:
            create_edition_once(db, settings, once, order, _present)
        seen.append(str(copy.value))
        return {"id": edition_id}

    answer = create_edition_once(db, settings, once, order, present_while_a_copy_arrives)
    assert seen == ["a request with this Idempotency-Key is still being handled"]
    assert _count(db, Edition) == 1
    assert create_edition_once(db, settings, once, order, _present) == answer


def test_a_failed_creation_gives_the_key_back(daily: Database, settings: Settings) -> None:
    db, token = daily, _token(daily)
    asked = {"newsletter": "weekly"}
    missing = EditionOrder("weekly", OneOff(article_ids=[]))
    with pytest.raises(NotFound):
        create_edition_once(db, settings, Once(token, "k", asked), missing, _present)
    late = EditionOrder("daily", OneOff(article_ids=[]), "2000-01-01T08:00+00:00")
    with pytest.raises(InvalidInput, match="in the past"):
        create_edition_once(db, settings, Once(token, "k", asked), late, _present)
    assert _keys(db) == [] and _count(db, Edition) == 0
    later = EditionOrder("daily", OneOff(article_ids=[]), datetime(2099, 1, 1, 8, tzinfo=UTC))
    kept = create_edition_once(db, settings, Once(token, "k", asked), later, _present)
    with db.session() as session:
        edition = session.get_one(Edition, kept.body["id"])
        assert edition.scheduled_for == datetime(2099, 1, 1, 8, tzinfo=UTC)
    assert _keys(db) == [(token, "k", 201)]
