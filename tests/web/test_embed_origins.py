"""The embeddable sign-up form over real HTTP: a post from one of the newsletter's allowed
origins (or our own) signs up in one step, the confirmation mail caught by a real SMTP
server; from anywhere else a page of ours asks first, and nothing is recorded until its
button is pressed."""

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.builders import newsletter
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from tidings.web.admin.newsletters import signup_snippet

ALLOWED = "https://news.example.com"
#: The tests' BASE_URL (config's default): our own site's origin.
OWN = "http://127.0.0.1:8000"
ADDRESS = "nino@example.ge"
ACTION = "/subscribe/daily"


#: A bound, not a pause: a fresh-clone run once waited over httpx's default 5 s for the
#: honeypot's answer (not reproduced; the console's test client has the same bound).
ANSWER_WITHIN = 30.0


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    assert settings.base_url == OWN
    newsletter(db)
    with db.session() as session:
        session.execute(
            update(Newsletter).values(allowed_origins=[ALLOWED, "https://shop.example.org:8443"])
        )
        session.commit()
    with site_with_mail(db, settings) as started:
        yield started


def _embedded_post(site: Site, headers: dict[str, str]) -> httpx.Response:
    """What the pasted snippet sends: the address alone, no token, no cookie."""
    return httpx.post(
        site.base + ACTION,
        data={"email": ADDRESS, "name": "Nino"},
        headers=headers,
        timeout=ANSWER_WITHIN,
    )


def _signed_up(db: Database) -> SubscriptionStatus | None:
    with db.session() as session:
        return session.scalar(
            select(Subscription.status)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == ADDRESS)
        )


def _subscribers(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Subscriber)) or 0


def _one_step(site: Site, answer: httpx.Response) -> None:
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    (caught,) = site.wait_for_mail(1)
    assert caught.rcpt_tos == [ADDRESS]
    assert caught.message["Subject"] == "Please confirm your subscription to The Daily Messenger"
    # Double opt-in all the same: pending until the link in the mail is used.
    assert _signed_up(site.db) == SubscriptionStatus.pending


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": ALLOWED},
        {"Origin": "https://shop.example.org:8443"},
        {"Origin": OWN},
        # No Origin (an older browser, a GET-less form): the Referer's origin is taken.
        {"Referer": ALLOWED + "/politics/story?id=7"},
    ],
    ids=["allowed", "allowed-port", "own-site", "referer"],
)
def test_an_allowed_origin_signs_up_in_one_step(site: Site, headers: dict[str, str]) -> None:
    _one_step(site, _embedded_post(site, headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example.net"},
        {},
        {"Origin": "null"},
        {"Origin": "null", "Referer": ALLOWED + "/"},  # Origin sent: the Referer is not asked
        {"Origin": "https://news.example.com.evil.net"},
        {"Referer": "https://news.example.com.evil.net/page"},
        {"Origin": "http://news.example.com"},
        {"Origin": "https://news.example.com:8443"},
        {"Origin": "https://shop.example.org"},
    ],
    ids=[
        "other-site",
        "no-origin-no-referer",
        "null",
        "null-with-referer",
        "look-alike",
        "look-alike-referer",
        "other-scheme",
        "other-port",
        "missing-port",
    ],
)
def test_any_other_origin_asks_first(site: Site, headers: dict[str, str]) -> None:
    answer = _embedded_post(site, headers)
    assert answer.status_code == 200
    assert "Subscribe nino@example.ge to The Daily Messenger?" in answer.text
    assert "Check your inbox" not in answer.text
    time.sleep(0.5)  # room for a wrong sign-up to be recorded or mailed
    assert _subscribers(site.db) == 0 and site.smtp.caught == []

    # The visitor presses the button on our page (its form, its cookie): the normal sign-up.
    with httpx.Client(cookies=answer.cookies) as client:
        form = form_to(answer.text, ACTION)
        assert form.hidden["email"] == ADDRESS and form.hidden["name"] == "Nino"
        confirmed = client.post(site.base + ACTION, data=form.hidden)
    _one_step(site, confirmed)


def test_the_confirm_step_is_not_a_way_round_the_token(site: Site) -> None:
    """Its button's token is bound to the visitor's own cookie: replayed by the foreign page
    without it, the post is asked about again and records nothing."""
    asked = _embedded_post(site, {"Origin": "https://evil.example.net"})
    replay = httpx.post(
        site.base + ACTION,
        data=form_to(asked.text, ACTION).hidden,
        headers={"Origin": "https://evil.example.net"},
        timeout=ANSWER_WITHIN,
    )
    assert "Subscribe nino@example.ge to The Daily Messenger?" in replay.text
    time.sleep(0.5)
    assert _subscribers(site.db) == 0 and site.smtp.caught == []


def test_one_step_keeps_the_same_answer_for_known_addresses(site: Site) -> None:
    """An allowed origin's answer never tells whether the address was known: the same page
    for a new, a pending and an active address; mail only to the new one."""
    first = _embedded_post(site, {"Origin": ALLOWED})
    site.wait_for_mail(1)
    with site.db.session() as session:
        session.execute(update(Subscription).values(status=SubscriptionStatus.active))
        session.commit()
    again = _embedded_post(site, {"Origin": ALLOWED})
    assert again.text == first.text and again.status_code == first.status_code == 200
    time.sleep(0.5)
    assert len(site.smtp.caught) == 1
    assert _signed_up(site.db) == SubscriptionStatus.active


def test_the_honeypot_still_holds_for_allowed_origins(site: Site) -> None:
    answer = httpx.post(
        site.base + ACTION,
        data={"email": ADDRESS, "website": "http://spam.example"},
        headers={"Origin": ALLOWED},
        timeout=ANSWER_WITHIN,
    )
    assert "Check your inbox" in answer.text
    time.sleep(0.5)
    assert _subscribers(site.db) == 0 and site.smtp.caught == []


def test_the_console_snippet_signs_up_from_an_allowed_site(site: Site) -> None:
    """The form the console gives to paste, posted as a browser on the allowed site would."""
    with site.db.session() as session:
        daily = session.scalars(select(Newsletter)).one()
        snippet = signup_snippet(site.settings.base_url, daily)
    form = form_to(snippet, site.settings.base_url + ACTION)
    assert form.method == "post" and 'name="email"' in snippet
    answer = httpx.post(
        site.base + ACTION,
        data={**form.hidden, "email": ADDRESS},
        headers={"Origin": ALLOWED},
        timeout=ANSWER_WITHIN,
    )
    _one_step(site, answer)
