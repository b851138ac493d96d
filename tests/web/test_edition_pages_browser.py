"""Edition pages in Chromium on both databases: a scheduled edition (its time in the
newsletter's zone, named, and in UTC; Edit, Send now, Cancel; no progress), one sending (its
progress, Pause and Cancel the rest) and one sent (no buttons); a viewer sees no action at
all. Each page is checked with axe, saved at 1280 and 375 px, and fits 375 px."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from tests.deliver.ledgerrows import draft, sending
from tests.web.browser import screenshots
from tests.web.console import PASSWORD, make_user
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, Edition, EditionStatus, UserRole
from tidings.deliver import ledger
from tidings.reports.progress import zoned_time

EDITOR = "editor@messenger.example.ge"
VIEWER = "viewer@messenger.example.ge"


@pytest.fixture
def base(db: Database, settings: Settings) -> Iterator[str]:
    make_user(db, UserRole.editor)
    make_user(db, UserRole.viewer)
    with web_server(settings, db) as started:
        yield started


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def _sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(f"{base}/admin/login")


def _fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 900})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 375, f"{page.url} is {width} px wide at 375"


def _send_one(db: Database) -> None:
    """One message of the edition sending now goes out, 2 s after it started."""
    now = datetime.now(UTC)
    with db.session() as session:
        session.execute(
            update(Edition)
            .where(Edition.status == EditionStatus.sending)
            .values(started_at=now - timedelta(seconds=2))
        )
        (claim,) = ledger.claim_due(session, "w:1", 1, timedelta(seconds=30), now)
        ledger.record_outcomes(session, [claim.outcome(DeliveryState.sent, 250, "ok", now)])
        session.commit()


def test_edition_pages_by_status(
    db: Database, settings: Settings, base: str, page: Page, db_name: str
) -> None:
    scheduled = draft(db, settings, readers=2).edition_id
    # One at a time: a claim takes whatever is due, of any edition.
    done = sending(db, settings, readers=1, slug="monthly").edition_id
    _send_one(db)
    going = sending(db, settings, readers=3, slug="weekly").edition_id
    _send_one(db)

    _sign_in(page, base, EDITOR)
    page.goto(f"{base}/admin/editions/{scheduled}")
    expect(page.locator("#status")).to_have_text("scheduled")
    when = page.locator("#scheduled-for")
    expect(when).to_contain_text("Asia/Tbilisi")
    expect(when).to_contain_text("UTC)")
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_attribute(
        "href", f"/admin/editions/new?edition={scheduled}"
    )
    expect(page.get_by_role("button", name="Send now")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()
    assert page.get_by_text("Cancel the rest").count() == 0
    assert page.locator("#bar").count() == 0 and page.get_by_text("0 of 0").count() == 0
    screenshots(page, f"edition-scheduled-{db_name}")
    _fits_a_phone(page)

    page.goto(f"{base}/admin/editions/{going}")
    expect(page.locator("#status")).to_have_text("sending")
    expect(page.locator("#done")).to_have_text("1")
    expect(page.locator("#total")).to_have_text("3")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel the rest")).to_be_visible()
    screenshots(page, f"edition-sending-{db_name}")
    _fits_a_phone(page)

    page.goto(f"{base}/admin/editions/{done}")
    expect(page.locator("#status")).to_have_text("sent")
    expect(page.locator("#rate")).to_have_text("0.5")  # 1 message in 2 s
    assert page.get_by_role("button").filter(has_text="Pause").count() == 0
    assert page.locator("form[action^='/admin/editions/']").count() == 0
    screenshots(page, f"edition-sent-{db_name}")
    _fits_a_phone(page)

    page.goto(f"{base}/admin/editions")
    row = page.get_by_role("row").filter(has_text=f"#{scheduled}")
    expect(row).to_contain_text("scheduled")
    expect(row).to_contain_text("Asia/Tbilisi")
    screenshots(page, f"editions-list-{db_name}")
    _fits_a_phone(page)


def test_a_viewer_sees_no_action(
    db: Database, settings: Settings, base: str, page: Page, db_name: str
) -> None:
    scheduled = draft(db, settings, readers=1).edition_id
    _sign_in(page, base, VIEWER)
    page.goto(f"{base}/admin/editions/{scheduled}")
    expect(page.locator("#status")).to_have_text("scheduled")
    assert page.locator(".actions").count() == 0
    assert page.get_by_role("link", name="Edit", exact=True).count() == 0
    screenshots(page, f"edition-scheduled-viewer-{db_name}")
    _fits_a_phone(page)


def test_a_time_is_shown_in_the_zone_named_and_in_utc() -> None:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert zoned_time(at, "Europe/Paris") == "2026-12-01 09:00 Europe/Paris (08:00 UTC)"
    late = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
    assert (
        zoned_time(late, "Asia/Tbilisi") == "2026-12-02 02:30 Asia/Tbilisi (2026-12-01 22:30 UTC)"
    )
    assert zoned_time(at, "UTC") == "2026-12-01 08:00 UTC"
