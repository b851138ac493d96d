"""The public front over real HTTP: every newsletter with its schedule in words, a sign-up
form that works in one post, and its archive; and the schedule words themselves."""

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.builders import newsletter
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tidings.config import Settings
from tidings.crontab import schedule_in_words
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 7 * * *", "Every day at 07:00 (Asia/Tbilisi)"),
        ("0 7 * * 0-6", "Every day at 07:00 (Asia/Tbilisi)"),
        ("5 6 * * 1-5", "Every weekday at 06:05 (Asia/Tbilisi)"),
        ("30 9 * * 0", "Every Sunday at 09:30 (Asia/Tbilisi)"),
        ("30 9 * * 7", "Every Sunday at 09:30 (Asia/Tbilisi)"),
        ("0 8 * * sat,sun", "Every Saturday and Sunday at 08:00 (Asia/Tbilisi)"),
        ("30 8,18 * * 1,4", "Every Monday and Thursday at 08:30 and 18:30 (Asia/Tbilisi)"),
        ("0 7 * * 1,3,5", "Every Monday, Wednesday and Friday at 07:00 (Asia/Tbilisi)"),
        ("*/30 * * * *", None),
        ("0 7 1 * *", "On the 1st of every month at 07:00 (Asia/Tbilisi)"),
        ("0 7 1 * 1", None),
        ("0 7-9 * * *", None),
        ("0 7 * * mon-fri", None),
    ],
)
def test_schedule_in_words(cron: str, words: str | None) -> None:
    assert schedule_in_words(cron, "Asia/Tbilisi") == words


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    with site_with_mail(db, settings) as started:
        yield started


def test_the_front_lists_every_newsletter_and_signs_up(site: Site) -> None:
    newsletter(site.db, "daily", schedule="0 7 * * *")
    newsletter(site.db, "often", schedule="*/30 * * * *")
    with site.db.session() as session:
        session.execute(
            update(Newsletter)
            .where(Newsletter.slug == "daily")
            .values(weekly_schedule_cron="0 9 * * 0")
        )
        session.execute(
            update(Newsletter).where(Newsletter.slug == "often").values(name="Breaking News")
        )
        session.commit()
    with httpx.Client() as client:
        front = client.get(site.base + "/")
        assert front.status_code == 200
        assert front.headers["cache-control"] == "no-store"  # its forms carry a token
        page = front.text
        assert "Every day at 07:00 (Asia/Tbilisi)" in page
        assert "Or one digest a week: Every Sunday at 09:00 (Asia/Tbilisi)" in page
        assert "Breaking News" in page and "Next edition: " in page  # no words for */30
        assert 'href="/archive/daily"' in page and 'href="/archive/often"' in page
        assert 'id="subscribe-daily"' in page and 'id="subscribe-often"' in page
        assert "tidings" not in page.lower().replace('name="csrf_token"', "")
        form = form_to(page, "/subscribe/often")
        answer = client.post(
            site.base + "/subscribe/often", data={**form.hidden, "email": "eka@example.ge"}
        )
        assert answer.status_code == 200 and "Check your inbox" in answer.text
    (caught,) = site.wait_for_mail(1)
    assert caught.rcpt_tos == ["eka@example.ge"]
    assert caught.message["Subject"] == "Please confirm your subscription to Breaking News"


def test_the_front_without_newsletters(site: Site) -> None:
    front = httpx.get(site.base + "/")
    assert front.status_code == 200 and "There are no newsletters yet." in front.text
    with site.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_sign_up_page_says_when_editions_come(site: Site) -> None:
    newsletter(site.db, "daily", schedule="15 6 * * 1-5", timezone="Europe/London")
    page = httpx.get(site.base + "/subscribe/daily").text
    assert "Every weekday at 06:15 (Europe/London)." in page
    assert "once a day" not in page and 'href="/archive/daily"' in page
