"""The welcome mail over real HTTP: a reader confirms (or rejoins in the preference centre)
and exactly one welcome reaches a real SMTP server, with the latest edition linked; none for
a second press, a newsletter with the welcome off, or a suppressed address."""

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests.builders import newsletter, subscribers
from tests.smtpserver import Caught
from tests.web.forms import form_to
from tests.web.site import Site, eventually, site_with_mail
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Edition,
    EditionKind,
    EditionStatus,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.mail.links import preferences_path
from tidings.mail.tokens import Purpose, sign

ADDRESS = "nino@example.ge"
#: Long enough for a wrong second welcome to arrive.
QUIET = 0.6


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    with site_with_mail(db, settings) as started:
        yield started


def _edition(db: Database, subject: str, status: EditionStatus = EditionStatus.sent) -> int:
    with db.session() as session:
        daily = session.scalars(select(Newsletter).where(Newsletter.slug == "daily")).one()
        edition = Edition(
            newsletter_id=daily.id,
            kind=EditionKind.scheduled,
            status=status,
            subject=subject,
            html_body="<p>Body</p>",
            text_body="Body",
            started_at=datetime(2026, 12, 5, 4, 0, tzinfo=UTC),
        )
        session.add(edition)
        session.commit()
        return edition.id


def _subscription(db: Database, email: str = ADDRESS) -> Subscription:
    with db.session() as session:
        found = session.scalar(
            select(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email)
        )
        assert found is not None
        return found


def _sign_up_and_open(client: httpx.Client, site: Site) -> str:
    """Sign up through the form; the confirmation link's path, from the caught mail."""
    form = client.get(f"{site.base}/subscribe/daily")
    data = {**form_to(form.text, "/subscribe/daily").hidden, "email": ADDRESS, "name": "Nino"}
    assert client.post(f"{site.base}/subscribe/daily", data=data).status_code == 200
    (caught,) = site.wait_for_mail(1)
    text = caught.message.get_body(("plain",))
    assert text is not None
    found = re.search(r"https?://[^/\s]+(/confirm/\S+)", text.get_content())
    assert found
    return found.group(1)


def _press(client: httpx.Client, site: Site, path: str) -> httpx.Response:
    page = client.get(site.base + path)
    return client.post(site.base + path, data=form_to(page.text, path).hidden)


def _welcomes(site: Site) -> list[Caught]:
    return [c for c in site.smtp.caught if c.message["Subject"].startswith("Welcome to")]


def test_confirming_sends_one_welcome_with_the_latest_edition(site: Site) -> None:
    _edition(site.db, "An older edition")
    latest = _edition(site.db, "Panjikidze meets envoys in Brussels")
    _edition(site.db, "A draft nobody has seen", EditionStatus.draft)
    with httpx.Client() as client:
        path = _sign_up_and_open(client, site)
        assert _subscription(site.db).welcome_sent_at is None  # pending: no welcome
        form = form_to(client.get(site.base + path).text, path).hidden
        first = client.post(site.base + path, data=form)
        second = client.post(site.base + path, data=form)  # pressed twice
        assert first.status_code == second.status_code == 200
        assert "You are subscribed" in first.text and "You are subscribed" in second.text
    caught = site.wait_for_mail(2)
    time.sleep(QUIET)
    (welcome,) = _welcomes(site)
    assert len(site.smtp.caught) == 2 and caught[0].message["Subject"].startswith("Please")
    assert welcome.rcpt_tos == [ADDRESS]
    message = welcome.message
    assert message["Subject"] == "Welcome to The Daily Messenger"
    text = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text is not None and html_part is not None
    edition_url = f"http://127.0.0.1:8000/archive/daily/{latest}"
    assert edition_url in text.get_content()
    assert f'href="{edition_url}"' in html_part.get_content()
    assert "Panjikidze meets envoys in Brussels" in text.get_content()
    assert "Saturday, 5 December 2026" in text.get_content()  # in Asia/Tbilisi
    assert "draft nobody" not in text.get_content()
    # List mail: the signed link and the mailto, with the one-click header.
    unsubscribe = " ".join(message["List-Unsubscribe"].split())
    assert re.fullmatch(
        r"<http://127\.0\.0\.1:8000/u/\S+>, <mailto:\S+\?subject=unsubscribe>", unsubscribe
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"].endswith("<daily.messenger.example.ge>")
    # The envelope sender is the subscription's signed notice address, like the confirmation's.
    subscription = _subscription(site.db)
    assert welcome.mail_from.startswith(f"n-{subscription.id}-")
    assert welcome.mail_from == caught[0].mail_from
    assert subscription.welcome_sent_at is not None


def test_no_welcome_when_the_newsletter_turned_it_off(site: Site) -> None:
    with site.db.session() as session:
        session.execute(update(Newsletter).values(welcome_enabled=False))
        session.commit()
    with httpx.Client() as client:
        path = _sign_up_and_open(client, site)
        assert "You are subscribed" in _press(client, site, path).text
    time.sleep(QUIET)
    assert _welcomes(site) == [] and len(site.smtp.caught) == 1
    assert _subscription(site.db).status == SubscriptionStatus.active


def test_no_welcome_to_a_suppressed_address(site: Site) -> None:
    with httpx.Client() as client:
        path = _sign_up_and_open(client, site)
        # A complaint arrives between the confirmation mail and the press.
        with site.db.session() as session:
            session.add(Suppression(email=ADDRESS, reason=SuppressionReason.complaint))
            session.commit()
        _press(client, site, path)
    time.sleep(QUIET)
    assert _welcomes(site) == [] and len(site.smtp.caught) == 1
    assert _subscription(site.db).welcome_sent_at is None


def test_no_edition_yet_links_the_archive(site: Site) -> None:
    with httpx.Client() as client:
        path = _sign_up_and_open(client, site)
        _press(client, site, path)
    site.wait_for_mail(2)
    (welcome,) = _welcomes(site)
    text = welcome.message.get_body(("plain",))
    assert text is not None
    assert "There is no edition yet" in text.get_content()
    assert "http://127.0.0.1:8000/archive/daily" in text.get_content().splitlines()


def _rejoin(client: httpx.Client, site: Site, subscription_id: int) -> None:
    """Untick and tick the newsletter again in the preference centre, as its owner."""
    path = preferences_path(sign(site.settings.secret, Purpose.preferences, subscription_id))
    for keep in ([], [str(subscription_id)]):
        page = client.get(site.base + path)
        form = form_to(page.text, path).hidden
        saved = client.post(site.base + path, data={**form, "keep": keep})
        assert saved.status_code in (200, 303), saved.text


def test_rejoining_in_the_preference_centre_welcomes_once(site: Site) -> None:
    """An imported reader (no welcome: an import mails nobody) leaves and rejoins: welcomed;
    leaving and rejoining again the same day: no second welcome."""
    subscribers(site.db, "daily", 1)
    reader = _subscription(site.db, "reader0@example.ge")
    assert reader.status == SubscriptionStatus.active and reader.welcome_sent_at is None
    with httpx.Client() as client:
        _rejoin(client, site, reader.id)
        site.wait_for_mail(1)
        _rejoin(client, site, reader.id)
    time.sleep(QUIET)
    (welcome,) = _welcomes(site)
    assert welcome.rcpt_tos == ["reader0@example.ge"] and len(site.smtp.caught) == 1
    # A month later, a reader who comes back is welcomed back.
    with site.db.session() as session:
        session.execute(
            update(Subscription).values(welcome_sent_at=datetime.now(UTC) - timedelta(days=31))
        )
        session.commit()
    with httpx.Client() as client:
        _rejoin(client, site, reader.id)
    site.wait_for_mail(2)
    assert [c.rcpt_tos for c in _welcomes(site)] == [["reader0@example.ge"]] * 2


def test_the_goodbye_pages_undo_sends_no_welcome(site: Site) -> None:
    subscribers(site.db, "daily", 1)
    reader = _subscription(site.db, "reader0@example.ge")
    path = f"/u/{sign(site.settings.secret, Purpose.unsubscribe, reader.id)}"
    with httpx.Client() as client:
        left = _press(client, site, path)
        undo = form_to(left.text, path + "/undo")
        assert client.post(site.base + path + "/undo", data=undo.hidden).status_code == 200
    eventually(
        lambda: _subscription(site.db, "reader0@example.ge").status == SubscriptionStatus.active
    )
    time.sleep(QUIET)
    assert site.smtp.caught == []


def test_two_presses_at_once_send_one_welcome(site: Site) -> None:
    """Two tabs (or a double click) post the confirmation at the same moment."""
    with httpx.Client() as client:
        path = _sign_up_and_open(client, site)
        form = form_to(client.get(site.base + path).text, path).hidden
    start = threading.Barrier(2)

    def press() -> int:
        with httpx.Client() as client:
            start.wait()
            return client.post(site.base + path, data=form).status_code

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: press(), range(2))) == [200, 200]
    site.wait_for_mail(2)
    time.sleep(QUIET)
    assert len(_welcomes(site)) == 1 and len(site.smtp.caught) == 2


def test_a_refused_welcome_gives_its_claim_back(site: Site) -> None:
    """The server refuses the welcome: nothing is held, so a later activation can welcome."""
    with httpx.Client() as client:
        path = _sign_up_and_open(client, site)
        site.smtp.behaviour.rcpt_replies[ADDRESS] = "451 4.3.0 try later"
        assert "You are subscribed" in _press(client, site, path).text
    # The confirmation's RCPT, then the welcome's, refused.
    eventually(lambda: site.smtp.commands.count(f"RCPT {ADDRESS}") == 2)
    eventually(lambda: _subscription(site.db).welcome_sent_at is None)
    assert _welcomes(site) == []
