"""A hostile internet against the welcome mail, over real HTTP and a real SMTP server on both
databases: someone who holds only a reader's unsubscribe link (a forwarded digest's header,
a link scanner's log) must not turn it into a way back in, nor into a welcome mail."""

import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests.builders import newsletter, subscribers
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tidings.audience.service import unsubscribe
from tidings.audience.signup import ConfirmationDue, SignupQueue
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscription, SubscriptionStatus
from tidings.mail.tokens import Purpose, sign

#: Long enough for a wrong welcome to arrive.
QUIET = 0.6
PREFERENCES_LINK = re.compile(r'href="[^"]*/preferences/([^"/]+)"')


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    with site_with_mail(db, settings) as started:
        yield started


def _left_long_ago(db: Database) -> int:
    """A reader who left two days ago (welcomed never: imported); their subscription id."""
    subscribers(db, "daily", 1)
    with db.session() as session:
        subscription_id = session.scalars(select(Subscription.id)).one()
    unsubscribe(db, subscription_id)
    with db.session() as session:
        session.execute(
            update(Subscription).values(unsubscribed_at=datetime.now(UTC) - timedelta(days=2))
        )
        session.commit()
    return subscription_id


def _status(db: Database, subscription_id: int) -> SubscriptionStatus:
    with db.session() as session:
        return session.get_one(Subscription, subscription_id).status


def _rejoin_through(client: httpx.Client, site: Site, page: httpx.Response) -> None:
    """Follow a preference-centre link on ``page`` (if any) and tick every newsletter."""
    for token in PREFERENCES_LINK.findall(page.text):
        path = f"/preferences/{token}"
        form = form_to(client.get(site.base + path).text, path).hidden
        subscription_id = str(_subscription_id(site.db))
        client.post(site.base + path, data={**form, "keep": [subscription_id]})


def _subscription_id(db: Database) -> int:
    with db.session() as session:
        return session.scalars(select(Subscription.id)).one()


def test_an_old_unsubscribe_link_opens_no_way_back_in(site: Site) -> None:
    """The holder of the unsubscribe link of a reader who left days ago finds no form (so
    no form token), and neither a bare POST, the one-click POST nor the undo leads to the
    preference centre: the reader stays out and is mailed nothing."""
    subscription_id = _left_long_ago(site.db)
    path = f"/u/{sign(site.settings.secret, Purpose.unsubscribe, subscription_id)}"
    with httpx.Client() as client:
        page = client.get(site.base + path)
        assert page.status_code == 200 and "<form" not in page.text
        answers = [
            page,
            client.post(site.base + path, data={}),
            client.post(site.base + path, data={"List-Unsubscribe": "One-Click"}),
            client.post(site.base + path + "/undo", data={}),
        ]
        assert [a.status_code for a in answers[1:]] == [403, 200, 403]
        for answer in answers:
            assert PREFERENCES_LINK.findall(answer.text) == []
            _rejoin_through(client, site, answer)
    time.sleep(QUIET)
    assert _status(site.db, subscription_id) == SubscriptionStatus.unsubscribed
    assert site.smtp.caught == []


def test_a_reader_who_just_left_still_finds_the_preference_centre(site: Site) -> None:
    """The same page right after leaving keeps its link (the reader manages the rest)."""
    subscribers(site.db, "daily", 1)
    subscription_id = _subscription_id(site.db)
    path = f"/u/{sign(site.settings.secret, Purpose.unsubscribe, subscription_id)}"
    with httpx.Client() as client:
        page = client.get(site.base + path)
        goodbye = client.post(site.base + path, data=form_to(page.text, path).hidden)
    assert PREFERENCES_LINK.findall(goodbye.text) == [
        sign(site.settings.secret, Purpose.preferences, subscription_id)
    ]


def test_a_full_queue_logs_no_address(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood fills the sign-up queue: the dropped confirmation is logged by its
    subscription, as the dropped welcome is, never by the (perhaps a stranger's) address."""
    queue = SignupQueue(db, settings, backlog=0)
    due = ConfirmationDue(7, "stranger@example.org", None, None, Newsletter())
    with caplog.at_level(logging.INFO):
        assert queue.mail(due) is False
    assert "queue full" in caplog.text and "subscription 7" in caplog.text
    assert "stranger@example.org" not in caplog.text
