from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from tests.builders import newsletter, subscribers
from tests.web.forms import form_to
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Subscription, SubscriptionStatus
from tidings.mail.tokens import Purpose, sign


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[tuple[str, int]]:
    newsletter(db)
    subscribers(db, "daily", 2)
    with db.session() as session:
        subscription_id = session.scalars(select(Subscription.id).order_by(Subscription.id)).first()
    assert subscription_id is not None
    with web_server(settings, db) as base:
        yield base, subscription_id


def _status(db: Database, subscription_id: int) -> SubscriptionStatus:
    with db.session() as session:
        return session.get_one(Subscription, subscription_id).status


def test_get_shows_a_button_and_changes_nothing(
    site: tuple[str, int], db: Database, settings: Settings
) -> None:
    base, subscription_id = site
    token = sign(settings.secret, Purpose.unsubscribe, subscription_id)
    page = httpx.get(f"{base}/u/{token}")
    assert page.status_code == 200
    assert "reader0@example.ge" in page.text and "<button" in page.text
    assert _status(db, subscription_id) == SubscriptionStatus.active


def test_post_from_the_page_unsubscribes(
    site: tuple[str, int], db: Database, settings: Settings
) -> None:
    base, subscription_id = site
    token = sign(settings.secret, Purpose.unsubscribe, subscription_id)
    form = form_to(httpx.get(f"{base}/u/{token}").text, f"/u/{token}")
    answer = httpx.post(f"{base}/u/{token}", data=form.hidden)
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert _status(db, subscription_id) == SubscriptionStatus.unsubscribed
    again = httpx.post(f"{base}/u/{token}", data=form.hidden)  # idempotent
    assert again.status_code == 200


def test_page_post_without_its_form_token_changes_nothing(
    site: tuple[str, int], db: Database, settings: Settings
) -> None:
    base, subscription_id = site
    token = sign(settings.secret, Purpose.unsubscribe, subscription_id)
    other = sign(settings.secret, Purpose.unsubscribe, subscription_id + 1)
    foreign = form_to(httpx.get(f"{base}/u/{other}").text, f"/u/{other}").hidden
    for data in ({}, {"csrf_token": "forged"}, foreign):
        answer = httpx.post(f"{base}/u/{token}", data=data)
        assert answer.status_code == 403
    assert _status(db, subscription_id) == SubscriptionStatus.active


def test_undo_right_after_leaving_rejoins(
    site: tuple[str, int], db: Database, settings: Settings
) -> None:
    base, subscription_id = site
    token = sign(settings.secret, Purpose.unsubscribe, subscription_id)
    form = form_to(httpx.get(f"{base}/u/{token}").text, f"/u/{token}")
    left = httpx.post(f"{base}/u/{token}", data=form.hidden)
    assert _status(db, subscription_id) == SubscriptionStatus.unsubscribed
    undo = form_to(left.text, f"/u/{token}/undo")
    assert httpx.post(f"{base}/u/{token}/undo", data={}).status_code == 403
    back = httpx.post(f"{base}/u/{token}/undo", data=undo.hidden)
    assert back.status_code == 200 and "Welcome back" in back.text
    assert _status(db, subscription_id) == SubscriptionStatus.active


def test_rfc8058_one_click_answers_200_without_redirect_or_cookies(
    site: tuple[str, int], db: Database, settings: Settings
) -> None:
    base, subscription_id = site
    token = sign(settings.secret, Purpose.unsubscribe, subscription_id)
    answer = httpx.post(
        f"{base}/u/{token}", data={"List-Unsubscribe": "One-Click"}, follow_redirects=False
    )
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert _status(db, subscription_id) == SubscriptionStatus.unsubscribed


@pytest.mark.parametrize("kind", ["tampered", "other purpose", "unknown id", "garbage"])
def test_bad_tokens_get_a_neutral_page_and_change_nothing(
    site: tuple[str, int], db: Database, settings: Settings, kind: str
) -> None:
    base, subscription_id = site
    good = sign(settings.secret, Purpose.unsubscribe, subscription_id)
    token = {
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "other purpose": sign(settings.secret, Purpose.preferences, subscription_id),
        "unknown id": sign(settings.secret, Purpose.unsubscribe, 999_999),
        "garbage": "not-a-token",
    }[kind]
    for answer in (
        httpx.get(f"{base}/u/{token}"),
        httpx.post(f"{base}/u/{token}", data={"List-Unsubscribe": "One-Click"}),
    ):
        assert answer.status_code == 400
        assert "This link is not valid" in answer.text
        assert "reader0" not in answer.text
    assert _status(db, subscription_id) == SubscriptionStatus.active


def test_preferences_page_links_to_unsubscribe(site: tuple[str, int], settings: Settings) -> None:
    base, subscription_id = site
    token = sign(settings.secret, Purpose.preferences, subscription_id)
    page = httpx.get(f"{base}/preferences/{token}")
    assert page.status_code == 200 and "reader0@example.ge" in page.text
    assert f"/u/{sign(settings.secret, Purpose.unsubscribe, subscription_id)}" in page.text
