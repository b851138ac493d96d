"""The dashboard's Workers panel and its warning: over real HTTP, and in Chromium (axe,
1280 and 375 px screenshots, no sideways scroll at 375), on both databases."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.builders import articles, newsletter, subscribers
from tests.web.browser import screenshots
from tests.web.console import PASSWORD, make_user, sign_in
from tests.webserver import web_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole
from tidings.deliver.heartbeats import Heartbeat, beat, forget

WARNING = "Nothing is being sent."


def _queue_edition(db: Database, settings: Settings) -> None:
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    subscribers(db, "daily", 3)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_dashboard_warns_when_editions_wait_and_lists_the_workers(
    db: Database, settings: Settings
) -> None:
    email = make_user(db, UserRole.viewer)
    with web_server(settings, db) as base:
        client = sign_in(base, email)
        idle = client.get(f"{base}/admin").text
        assert WARNING not in idle and "No worker is running." in _text(idle)

        _queue_edition(db, settings)
        waiting = client.get(f"{base}/admin").text
        assert WARNING in waiting and 'role="alert"' in waiting

        now = datetime.now(UTC)
        beat(
            db, Heartbeat("a:1:x", "mail-1.example", 4321, now - timedelta(hours=2), now, 37.25, 12)
        )
        silent_at = now - timedelta(minutes=20)
        beat(db, Heartbeat("b:2:y", "mail-2.example", 8765, silent_at, silent_at, 0.0, 0))
        beating = _text(client.get(f"{base}/admin").text)
        assert WARNING not in beating
        assert re.search(r"mail-1\.example 4321 \S+ \S+ \d+ s ago 37\.2/s 12", beating), beating
        assert f"mail-2.example 8765 {silent_at:%Y-%m-%d %H:%M} silent since" in beating

        forget(db, "a:1:x")  # the live one stops cleanly: only the silent one is left
        assert WARNING in client.get(f"{base}/admin").text
        client.close()


def test_a_web_host_whose_clock_runs_ahead_still_sees_a_beating_worker(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The panel judges on the database's clock: a console on a host 10 minutes ahead once
    called a worker that had just beaten silent, and warned that nothing was being sent."""
    monkeypatch.setattr(
        "tidings.web.admin.dashboard.utcnow",
        lambda: datetime.now(UTC) + timedelta(minutes=10),
        raising=False,  # the page reads no clock of its own any more
    )
    email = make_user(db, UserRole.viewer)
    _queue_edition(db, settings)
    now = datetime.now(UTC)
    beat(db, Heartbeat("a:1:x", "mail-1.example", 4321, now, now, 5.0, 1))
    with web_server(settings, db) as base:
        client = sign_in(base, email)
        shown = _text(client.get(f"{base}/admin").text)
        client.close()
    assert WARNING not in shown
    assert re.search(r"mail-1\.example 4321 \S+ \S+ \d{1,2} s ago", shown), shown


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_the_workers_panel_in_a_browser(
    db: Database, settings: Settings, page: Page, db_name: str
) -> None:
    email = make_user(db, UserRole.editor)
    _queue_edition(db, settings)
    silent_at = datetime.now(UTC) - timedelta(minutes=7)
    beat(
        db,
        Heartbeat(
            "long:3:z",
            "a-rather-long-worker-host-name.eu-central.messenger.example.ge",
            31337,
            silent_at,
            silent_at,
            0.0,
            0,
        ),
    )
    with web_server(settings, db) as base:
        page.goto(f"{base}/admin/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).not_to_have_url(f"{base}/admin/login")
        page.goto(f"{base}/admin")
        expect(page.get_by_role("alert")).to_contain_text(WARNING)
        panel = page.locator("#workers")
        expect(panel.get_by_role("heading", name="Workers")).to_be_visible()
        expect(panel.get_by_role("row")).to_have_count(2)  # the header and the silent worker
        expect(panel).to_contain_text("silent")
        screenshots(page, f"dashboard-workers-{db_name}")
        page.set_viewport_size({"width": 375, "height": 900})
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the dashboard is {width} px wide at 375"
