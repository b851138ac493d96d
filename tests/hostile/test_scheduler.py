"""Hostile content and careless set-ups against the scheduler: one newsletter's bad edition
never stops the others' sends, is recorded once on its slot with its reason, and is not tried
again on every tick. Real parts: the database (both), the compose pipeline with real
templates, a real worker sending to a recording SMTP server, the CLI.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.builders import subscribers
from tests.conftest import Cli
from tests.smtpserver import free_port, smtp_server
from tests.web.console import make_user, sign_in
from tests.webserver import web_server
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.catalog.urls import URL_LIMIT
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Delivery, Edition, EditionStatus, Newsletter, UserRole
from tidings.deliver.runner import run_worker
from tidings.ingest.service import push_articles
from tidings.schedule.slots import serve_due_slots

DAY = datetime(2026, 6, 26, tzinfo=UTC)
SLOT_0259 = DAY.replace(hour=2, minute=59)
SLOT_0300 = DAY.replace(hour=3)
#: The ticks of the seen failure: the cron jobs fire each minute around the bad slot.
TICKS = [SLOT_0259 + timedelta(seconds=5), SLOT_0300 + timedelta(seconds=5)]
LATER_TICKS = [SLOT_0300 + timedelta(minutes=m, seconds=5) for m in (1, 2, 3)]
GIANT_URL = "https://messenger.example.ge/long?" + "q=" + "x" * (120 * 1024)
BROKEN_BODY = "<p>{{ newsletter.name }}</p>{% for a in articles %}{{ a.author.name }}{% endfor %}"


def _newsletter(db: Database, slug: str, schedule: str, template_set: str = "digest") -> None:
    create_newsletter(
        db,
        NewsletterSpec(
            slug=slug,
            name=f"The {slug.title()} Messenger",
            sender="The Messenger <digest@messenger.example.ge>",
            schedule=schedule,
            timezone="UTC",
            template_set=template_set,
        ),
    )


def _story(slug: str, n: int, published: datetime, url: str | None = None) -> dict[str, object]:
    return {
        "url": url or f"https://messenger.example.ge/{slug}/{n}",
        "guid": f"{slug}-{n}",
        "title": f"Story {n}: Panjikidze meets the envoys",
        "summary": "Talks in Tbilisi went on late into the night.",
        "author": "Messenger Staff",
        "section": "Politics",
        "published": published,
    }


def _push(db: Database, slug: str, stories: list[dict[str, object]]) -> None:
    """Push the stories; one with a URL over the ingest limit is stored as if taken before
    the limit existed (a row already in the database), as the door now refuses it."""
    long_urls = {}
    for story in stories:
        if len(str(story["url"])) > URL_LIMIT:
            long_urls[story["guid"]] = story["url"]
            story["url"] = f"https://messenger.example.ge/{story['guid']}"
    assert not push_articles(db, slug, stories).rejected
    with db.session() as session:
        for guid, url in long_urls.items():
            session.execute(update(Article).where(Article.guid == guid).values(url=url))
        session.commit()


def _broken_templates(folder: Path) -> Path:
    """An operator's template set whose body names a field articles do not have."""
    broken = folder / "email" / "broken"
    broken.mkdir(parents=True)
    (broken / "subject.txt").write_text("{{ newsletter.name }}", encoding="utf-8")
    (broken / "body.html").write_text(BROKEN_BODY, encoding="utf-8")
    (broken / "body.txt").write_text("{{ newsletter.name }}", encoding="utf-8")
    return folder


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"templates_dir": _broken_templates(tmp_path / "tpl")})


def _editions(db: Database) -> dict[str, list[Edition]]:
    found: dict[str, list[Edition]] = {}
    with db.session() as session:
        rows = session.execute(
            select(Newsletter.slug, Edition)
            .join(Newsletter, Newsletter.id == Edition.newsletter_id)
            .order_by(Edition.slot)
        )
        for slug, edition in rows:
            found.setdefault(slug, []).append(edition)
    return found


def _set_up(db: Database) -> None:
    """Bad newsletters first: the old loop stopped at the first failure."""
    _newsletter(db, "giant", "59 2 * * *")
    _newsletter(db, "broken", "59 2 * * *", template_set="broken")
    _newsletter(db, "daily", "* * * * *")
    hour_before = SLOT_0259 - timedelta(hours=1)
    _push(db, "giant", [_story("giant", 0, hour_before, url=GIANT_URL)])
    push_articles(db, "broken", [_story("broken", n, hour_before) for n in range(2)])
    push_articles(db, "daily", [_story("daily", n, hour_before) for n in range(2)])
    # Between the two slots, a new story for the 03:00 edition.
    push_articles(db, "daily", [_story("daily", 9, SLOT_0259 + timedelta(seconds=30))])
    for slug in ("giant", "broken", "daily"):
        subscribers(db, slug, 3)


def test_bad_editions_never_stop_the_other_newsletters_slots(
    db: Database, live: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    _set_up(db)
    caplog.set_level(logging.INFO)
    for tick in TICKS + LATER_TICKS:
        serve_due_slots(db, live, tick)

    editions = _editions(db)
    daily = [e for e in editions["daily"] if e.slot in (SLOT_0259, SLOT_0300)]
    assert [(e.slot, e.status) for e in daily] == [
        (SLOT_0259, EditionStatus.sending),
        (SLOT_0300, EditionStatus.sending),
    ]
    (giant,) = editions["giant"]  # once, however many ticks came after
    assert (giant.slot, giant.status, giant.skip_reason) == (
        SLOT_0259,
        EditionStatus.failed,
        "too_large",
    )
    assert giant.note is not None and "not even one article fits" in giant.note
    assert "KB" in giant.note
    (broken,) = editions["broken"]
    assert (broken.status, broken.skip_reason) == (EditionStatus.failed, "template_error")
    assert broken.note is not None and "author" in broken.note and "body.html" in broken.note
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 2  # each failed slot logged once, not on every tick
    with db.session() as session:
        queued = session.scalars(
            select(Delivery.edition_id).where(
                Delivery.edition_id.in_([giant.id, broken.id, *[e.id for e in daily]])
            )
        ).all()
    assert sorted(set(queued)) == sorted(e.id for e in daily)

    with smtp_server() as (smtp, port):
        sending = live.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        stats = asyncio.run(run_worker(db, sending, drain=True, stop=asyncio.Event()))
    daily_mail = [c for c in smtp.caught if "Daily Messenger" in str(c.message["Subject"])]
    assert stats.sent == len(smtp.caught) == len(daily_mail) == 2 * 3


def test_the_cli_shows_failed_slots_with_their_reason(
    db: Database, live: Settings, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_up(db)
    for tick in TICKS:
        serve_due_slots(db, live, tick)
    monkeypatch.setenv("TIDINGS_TEMPLATES_DIR", str(live.templates_dir))
    listed = cli("edition", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    giant_row = next(line for line in lines if " giant " in line)
    broken_row = next(line for line in lines if " broken " in line)
    assert "failed" in giant_row and "too_large" in giant_row
    assert "failed" in broken_row and "template_error" in broken_row
    giant = _editions(db)["giant"][0]
    shown = cli("edition", "status", str(giant.id))
    assert shown.exit_code == 0, shown.output
    assert "failed" in shown.stdout and "not even one article fits" in shown.stdout
    # An editor sending the broken newsletter by hand is told why, without a traceback.
    sent = cli("digest", "send", "broken", "--no-wait")
    assert sent.exit_code == 1
    assert "The email template failed (email/broken/body.html, line 1)" in sent.output


def test_a_giant_article_is_left_out_and_the_rest_is_sent(db: Database, live: Settings) -> None:
    """The 120 KB URL with ordinary stories beside it: the edition goes out without it."""
    _newsletter(db, "daily", "59 2 * * *")
    hour_before = SLOT_0259 - timedelta(hours=1)
    stories = [_story("daily", n, hour_before + timedelta(minutes=n)) for n in range(3)]
    stories.append(_story("daily", 3, hour_before + timedelta(minutes=30), url=GIANT_URL))
    _push(db, "daily", stories)
    subscribers(db, "daily", 2)
    (outcome,) = serve_due_slots(db, live, TICKS[0])
    assert outcome.result.status == EditionStatus.sending
    assert (outcome.result.articles, outcome.result.deliveries) == (3, 2)
    (edition,) = _editions(db)["daily"]
    assert edition.note is not None and "too large to fit even alone" in edition.note
    assert "Story 3" in edition.note
    assert edition.html_body is not None and "x" * 1000 not in edition.html_body


def test_the_console_shows_failed_slots_with_their_reason(db: Database, live: Settings) -> None:
    _set_up(db)
    for tick in TICKS:
        serve_due_slots(db, live, tick)
    editions = _editions(db)
    giant, broken = editions["giant"][0], editions["broken"][0]
    with web_server(live, db) as base:
        client = sign_in(base, make_user(db, UserRole.viewer))
        listed = client.get("/admin/editions")
        assert listed.status_code == 200
        assert "(too_large)" in listed.text and "(template_error)" in listed.text
        assert "not even one article fits" in listed.text
        page = client.get(f"/admin/editions/{giant.id}")
        assert page.status_code == 200
        assert "Why it failed:" in page.text and "over the 95 KB limit" in page.text
        page = client.get(f"/admin/editions/{broken.id}")
        assert "email/broken/body.html" in page.text and "author" in page.text
        upcoming = client.get("/admin/editions/next/broken")  # a message, not a 500
        assert upcoming.status_code == 200 and "email/broken/body.html" in upcoming.text
        dashboard = client.get("/admin")
        assert dashboard.status_code == 200 and "too_large" in dashboard.text
        # A schedule that cannot be read (a time zone gone from tzdata) hides no newsletter.
        with db.session() as session:
            session.execute(
                update(Newsletter)
                .where(Newsletter.slug == "broken")
                .values(timezone="Mars/Olympus_Mons")
            )
            session.commit()
        dashboard = client.get("/admin")
        assert dashboard.status_code == 200
        assert all(f"The {name} Messenger" in dashboard.text for name in ("Giant", "Daily"))


def test_the_demo_loads_the_sample_even_when_its_edition_cannot_be_made(
    cli: Cli, db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's broken digest template: the sample newsletter, feed and readers are
    still loaded, and the demo says why there is no edition instead of crashing."""
    digest = tmp_path / "tpl" / "email" / "digest"
    digest.mkdir(parents=True)
    (digest / "body.html").write_text(BROKEN_BODY, encoding="utf-8")
    monkeypatch.setenv("TIDINGS_TEMPLATES_DIR", str(tmp_path / "tpl"))
    monkeypatch.setenv("TIDINGS_CATCHER_PORT", str(free_port()))
    loaded = cli("demo", "--no-serve")
    assert loaded.exit_code == 0, loaded.output
    assert "sample subscribers: 8 new" in loaded.stdout
    assert "no demo edition: the email template failed (email/digest/body.html" in loaded.stdout
    with db.session() as session:
        assert session.scalar(select(Edition.id)) is None
        assert session.scalar(select(Newsletter.slug)) == "messenger"


def test_the_next_edition_page_says_what_would_be_left_out(db: Database, live: Settings) -> None:
    _newsletter(db, "daily", "59 2 * * *")
    now = datetime.now(UTC)
    stories = [_story("daily", n, now - timedelta(hours=2, minutes=n)) for n in range(3)]
    stories.append(_story("daily", 3, now - timedelta(hours=1), url=GIANT_URL))
    _push(db, "daily", stories)
    with web_server(live, db) as base:
        client = sign_in(base, make_user(db, UserRole.viewer))
        page = client.get("/admin/editions/next/daily")
        assert page.status_code == 200
        assert "Too large for one email:" in page.text and "Story 3" in page.text
