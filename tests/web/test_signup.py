"""Sign-up with double opt-in over real HTTP, with the confirmation mail caught by a real
SMTP server."""

import re
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import newsletter, subscribers
from tests.web.forms import form_to
from tests.web.site import Site, eventually, site_with_mail
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    RateEvent,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.mail import tokens


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    with site_with_mail(db, settings) as started:
        yield started


def _sign_up(client: httpx.Client, site: Site, email: str, **extra: str) -> httpx.Response:
    page = client.get(f"{site.base}/subscribe/daily")
    assert page.status_code == 200
    data = {**form_to(page.text, "/subscribe/daily").hidden, "email": email, "name": "Nino"}
    return client.post(f"{site.base}/subscribe/daily", data={**data, **extra})


def _subscription(db: Database, email: str) -> Subscription | None:
    with db.session() as session:
        return session.scalar(
            select(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email)
        )


def _claim(db: Database, email: str) -> datetime | None:
    """When the confirmation was last claimed (None: never, or given back)."""
    found = _subscription(db, email)
    assert found is not None
    return found.confirmation_sent_at


def _confirm_link(site: Site) -> str:
    body = site.smtp.caught[-1].message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = re.search(r"(http://\S+/confirm/\S+)", text)
    assert found, text
    return found.group(1)


def test_double_opt_in_activates_only_after_the_button(site: Site) -> None:
    with httpx.Client() as client:
        answer = _sign_up(client, site, "Nino@Example.GE")
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        site.wait_for_mail(1)
        assert site.smtp.recipients() == ["nino@example.ge"]
        message = site.smtp.caught[0].message
        assert message["Subject"] == "Please confirm your subscription to The Daily Messenger"
        pending = _subscription(site.db, "nino@example.ge")
        assert pending is not None and pending.status == SubscriptionStatus.pending
        assert pending.consent_ip == "127.0.0.1"
        assert pending.consent_method == "signup form"
        assert pending.consent_source and pending.consent_source.endswith("/subscribe/daily")
        link = _confirm_link(site)
        path = link.split("127.0.0.1:8000", 1)[1]
        page = client.get(site.base + path)  # what a mail scanner does: changes nothing
        assert "Confirm my subscription" in page.text
        assert _subscription(site.db, "nino@example.ge").status == SubscriptionStatus.pending  # type: ignore[union-attr]
        done = client.post(site.base + path, data=form_to(page.text, path).hidden)
        assert done.status_code == 200 and "You are subscribed" in done.text
    active = _subscription(site.db, "nino@example.ge")
    assert active is not None and active.status == SubscriptionStatus.active
    assert active.confirmed_at is not None


def test_the_page_never_tells_whether_an_address_is_known(site: Site) -> None:
    subscribers(site.db, "daily", 1)  # reader0@example.ge, active
    with site.db.session() as session:
        session.add(Suppression(email="gone@example.ge", reason=SuppressionReason.manual))
        session.commit()
    with httpx.Client() as client:
        pages = [
            _sign_up(client, site, address).text
            for address in (
                "new@example.ge",
                "reader0@example.ge",
                "gone@example.ge",
                "new@example.ge",
            )
        ]
    assert len(set(pages)) == 1
    # Only the new address got mail, and only once in ten minutes.
    site.wait_for_mail(1)
    time.sleep(0.5)  # room for a wrong second mail to arrive
    assert site.smtp.recipients() == ["new@example.ge"]


def test_honeypot_and_foreign_posts_create_nothing(site: Site) -> None:
    with httpx.Client() as client:
        bot = _sign_up(client, site, "bot@example.ge", website="http://spam.example")
        assert "Check your inbox" in bot.text
        embedded = httpx.post(f"{site.base}/subscribe/daily", data={"email": "x@example.ge"})
    assert embedded.status_code == 200
    assert 'value="x@example.ge"' in embedded.text
    assert "Subscribe x@example.ge to The Daily Messenger?" in embedded.text
    with site.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert site.smtp.caught == []


def test_a_bad_address_is_explained(site: Site) -> None:
    with httpx.Client() as client:
        answer = _sign_up(client, site, "not an address")
    assert answer.status_code == 422
    # The exact reason, as the API and the CLI give it.
    assert "We cannot use this address: An email address must have an @-sign." in answer.text


def test_per_address_rate_limit_on_the_form(site: Site) -> None:
    with httpx.Client() as client:
        codes = [_sign_up(client, site, f"r{i}@example.ge").status_code for i in range(12)]
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]


def test_a_refused_confirmation_can_be_retried_at_once(site: Site) -> None:
    site.smtp.behaviour.rcpt_replies["nino@example.ge"] = "451 4.3.0 try later"
    with httpx.Client() as client:
        assert _sign_up(client, site, "nino@example.ge").status_code == 200
        eventually(lambda: "RCPT nino@example.ge" in site.smtp.commands)
        eventually(lambda: _claim(site.db, "nino@example.ge") is None)  # given back
        assert site.smtp.caught == []
        site.smtp.behaviour.rcpt_replies.clear()
        _sign_up(client, site, "nino@example.ge")
    site.wait_for_mail(1)
    assert site.smtp.recipients() == ["nino@example.ge"]


def test_an_expired_confirmation_link_is_refused(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    with httpx.Client() as client:
        _sign_up(client, site, "nino@example.ge")
        site.wait_for_mail(1)
        path = _confirm_link(site).split("127.0.0.1:8000", 1)[1]
        monkeypatch.setitem(tokens.LIFETIMES, tokens.Purpose.confirm, -1)
        page = client.get(site.base + path)
    assert page.status_code == 400 and "not valid" in page.text


def test_the_limit_is_shared_by_every_web_process(site: Site) -> None:
    """Two web apps on one database (as two processes would be) count together."""
    with web_server(site.settings, site.db) as other_base:
        other = Site(other_base, site.smtp, site.db, site.settings)
        codes = []
        for i in range(12):
            with httpx.Client() as client:
                codes.append(
                    _sign_up(client, site if i % 2 else other, f"p{i}@example.ge").status_code
                )
    assert codes.count(200) == 10 and codes[-2:] == [429, 429]
    with site.db.session() as session:
        buckets = session.scalars(select(RateEvent.bucket)).all()
    assert len(buckets) == 10 and not any("127.0.0.1" in b for b in buckets)
