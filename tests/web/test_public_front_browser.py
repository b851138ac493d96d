"""The public front and an archive copy in Chromium on both databases: ``/`` lists the
newsletters with their schedule in words, a visitor signs up there (the confirmation mail
caught by a real SMTP server, the link confirmed), and an edition's public copy offers
Subscribe and nothing personal. Each page is checked with axe, saved at 1280 and 375 px,
and fits 375 px."""

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from tests.builders import newsletter
from tests.deliver.ledgerrows import sending
from tests.web.browser import assert_accessible, screenshots
from tests.web.site import Site, site_with_mail
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from tidings.deliver.runner import run_worker
from tidings.web.admin.newsletters import signup_snippet


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    with site_with_mail(db, settings) as started:
        yield started


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def _fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 900})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 375, f"{page.url} is {width} px wide at 375"


def _send_all(db: Database, settings: Settings) -> None:
    """Run the worker until nothing is due, in a thread of its own (Playwright's event loop
    holds this one)."""

    def drain() -> None:
        asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))

    with ThreadPoolExecutor(1) as pool:
        pool.submit(drain).result(timeout=60)


def _status(db: Database, email: str) -> SubscriptionStatus | None:
    with db.session() as session:
        return session.scalar(
            select(Subscription.status)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email)
        )


def test_sign_up_from_the_front_and_read_the_archive(site: Site, page: Page, db_name: str) -> None:
    live = site.settings.model_copy(update={"base_url": site.base})
    sending(site.db, live, readers=1)  # "daily", every day at 08:00 in Tbilisi
    _send_all(site.db, live)
    newsletter(site.db, "weekly-review", schedule="30 9 * * 0", timezone="Europe/Berlin")
    with site.db.session() as session:
        session.execute(
            update(Newsletter)
            .where(Newsletter.slug == "weekly-review")
            .values(name="The Week in Review", weekly_schedule_cron=None)
        )
        session.commit()
    site.smtp.caught.clear()

    page.goto(site.base + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("The Messenger")
    daily = page.locator("#subscribe-daily")
    expect(daily).to_contain_text("Every day at 08:00 (Asia/Tbilisi)")
    expect(daily).to_contain_text("Stories on Politics, from The Messenger.")
    expect(daily.get_by_role("link", name="Read the 1 edition so far")).to_have_attribute(
        "href", "/archive/daily"
    )
    weekly = page.locator("#subscribe-weekly-review")
    expect(weekly).to_contain_text("Every Sunday at 09:30 (Europe/Berlin)")
    screenshots(page, f"public-front-{db_name}")
    _fits_a_phone(page)

    daily.get_by_label("Email address").fill("tamar@example.ge")
    daily.get_by_label("Name").fill("Tamar")
    daily.get_by_role("button", name="Subscribe to The Daily Messenger").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    (caught,) = site.wait_for_mail(1)
    assert caught.rcpt_tos == ["tamar@example.ge"]
    assert _status(site.db, "tamar@example.ge") == SubscriptionStatus.pending
    text = caught.message.get_body(("plain",))
    assert text is not None
    link = re.search(r"https?://\S+(/confirm/\S+)", text.get_content())
    assert link is not None
    page.goto(site.base + link.group(1))
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    assert _status(site.db, "tamar@example.ge") == SubscriptionStatus.active

    page.goto(site.base + "/archive/daily")
    page.get_by_role("link", name=re.compile("Story 0")).first.click()
    expect(page.get_by_text("Story 0: Panjikidze meets envoys").first).to_be_visible()
    content = page.content()
    assert "Hello" not in content and 'href="#"' not in content and "/u/" not in content
    subscribe = page.get_by_role("link", name="Subscribe to The Daily Messenger")
    expect(subscribe).to_be_visible()
    screenshots(page, f"public-archive-edition-{db_name}")
    _fits_a_phone(page)
    subscribe.click()  # to the form on the front
    expect(page.locator("#email-daily")).to_be_visible()
    assert page.url.endswith("/#subscribe-daily")
    assert_accessible(page)


def test_a_form_on_a_foreign_page_asks_first(site: Site, page: Page, db_name: str) -> None:
    """The console's snippet on a page of no allowed origin (here one with no origin at all,
    so Chromium sends "Origin: null"): our confirm page, then the normal sign-up."""
    newsletter(site.db)
    with site.db.session() as session:
        daily = session.scalars(select(Newsletter)).one()
        snippet = signup_snippet(site.base, daily)
    page.set_content(f"<!DOCTYPE html><html lang='en'><body>{snippet}</body></html>")
    page.get_by_label("Get The Daily Messenger by email").fill("levan@example.ge")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Subscribe levan@example.ge to The Daily Messenger?"
    )
    assert _status(site.db, "levan@example.ge") is None and site.smtp.caught == []
    screenshots(page, f"public-subscribe-confirm-{db_name}")
    _fits_a_phone(page)
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    (caught,) = site.wait_for_mail(1)
    assert caught.rcpt_tos == ["levan@example.ge"]
    assert _status(site.db, "levan@example.ge") == SubscriptionStatus.pending
