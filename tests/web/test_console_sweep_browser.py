"""Every console page in Chromium, on both databases: as an admin on a desktop (1280 px) and
as an editor on a phone (375 px). Each page answers, has no serious or critical axe finding,
is saved at 1280 and 375 px under test-artifacts/, and fits 375 px without sideways scroll.
Every page must pass."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.deliver.ledgerrows import draft
from tests.web.browser import ARTIFACTS
from tests.web.console import PASSWORD, make_user
from tests.webserver import web_server
from tidings.audience.suppressions import suppress
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Subscriber, UserRole
from tidings.deliver.catcher import list_caught, mailbox_dir

ADMIN = "admin@messenger.example.ge"
EDITOR = "editor@messenger.example.ge"
ADMIN_ONLY = {"newsletter-new", "newsletter-edit", "access", "dkim", "import"}


@dataclass(frozen=True)
class Seeded:
    base: str
    edition_id: int
    subscriber_id: int
    mail_key: str


def _caught_mail(settings: Settings) -> str:
    """A digest-like message in the catcher's mailbox, with the long headers real ones have."""
    message = EmailMessage()
    message["From"] = "The Daily Messenger <digest@messenger.example.ge>"
    message["To"] = "nino.beridze.long-address-for-a-phone@messenger.example.ge"
    message["Subject"] = "The Daily Messenger: Panjikidze meets the envoys on the Anaklia port"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["List-Unsubscribe"] = (
        "<https://news.messenger.example.ge/unsubscribe/daily/"
        + "eyJzIjoxLCJuIjoxfQ.aZ4Kx2.Qm9vbGVhbkJvbGRfUGFuamlraWR6ZV9BYmFzaGlkemVfVGJpbGlzaQ"
        + ">, <mailto:unsubscribe+eyJzIjoxfQ@messenger.example.ge>"
    )
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=messenger.example.ge; s=tidings; " + (
        "b=" + "A1b2C3d4E5f6" * 30
    )
    message.set_content("Friday, June 27\n\nPanjikidze meets the envoys.\n")
    message.add_alternative(
        "<h1>The Daily Messenger</h1><p>Panjikidze meets the envoys.</p>", subtype="html"
    )
    folder = mailbox_dir(settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1765000000000000000-abcdef12.eml").write_bytes(bytes(message))
    return list_caught(settings.data_dir)[0].key


@pytest.fixture
def seeded(db: Database, settings: Settings) -> Iterator[Seeded]:
    edition_id = draft(db, settings, readers=3).edition_id
    suppress(db, "bounced.reader@example.ge", "Mailbox gone (550 5.1.1)")
    make_user(db, UserRole.admin, ADMIN)
    make_user(db, UserRole.editor, EDITOR)
    with db.session() as session:
        subscriber_id = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).first()
    assert subscriber_id is not None
    key = _caught_mail(settings)
    assert settings.smtp is None  # the catcher's mailbox is mounted
    with web_server(settings, db) as base:
        yield Seeded(base, edition_id, subscriber_id, key)


def _pages(seeded: Seeded) -> list[tuple[str, str]]:
    """(name, path) of every console page, signed in."""
    e, s, k = seeded.edition_id, seeded.subscriber_id, seeded.mail_key
    return [
        ("dashboard", "/admin"),
        ("newsletters", "/admin/newsletters"),
        ("newsletter", "/admin/newsletters/daily"),
        ("newsletter-new", "/admin/newsletters/new"),
        ("newsletter-edit", "/admin/newsletters/daily/edit"),
        ("editions", "/admin/editions"),
        ("edition", f"/admin/editions/{e}"),
        ("edition-bounces", f"/admin/editions/{e}/bounces"),
        ("builder", "/admin/editions/new?newsletter=daily"),
        ("next", "/admin/editions/next/daily"),
        ("subscribers", "/admin/subscribers"),
        ("subscriber", f"/admin/subscribers/{s}"),
        ("suppressions", "/admin/suppressions"),
        ("import", "/admin/subscribers/import"),
        ("sender-health", "/admin/sender-health"),
        ("dkim", "/admin/dkim"),
        ("access", "/admin/access"),
        ("mailbox", "/mailbox"),
        ("mailbox-message", f"/mailbox/{k}"),
        ("password", "/admin/password"),
    ]


def _serious_axe(page: Page) -> list[tuple[str, str, object]]:
    violations = Axe().run(page).response["violations"]
    return [
        (v["id"], v["impact"], v["nodes"][0]["target"])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def _phone_width(page: Page) -> int:
    page.set_viewport_size({"width": 375, "height": 900})
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    return width


def _check(page: Page, name: str, shot: str) -> list[str]:
    """The page's problems: axe findings, and its width at 375 px; saved at both widths."""
    problems = [f"{name}: axe {finding}" for finding in _serious_axe(page)]
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / f"{shot}-desktop.png"), full_page=True)
    width = _phone_width(page)
    page.wait_for_timeout(150)  # let frames lay out again at the new width
    page.screenshot(path=str(ARTIFACTS / f"{shot}-phone.png"), full_page=True)
    if width > 375:
        problems.append(f"{name}: {width} px wide at 375")
    return problems


def _sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(f"{base}/admin/login")


def _refused_form(page: Page, base: str) -> None:
    """The newsletter form sent back with a mistake (a schedule that is no crontab)."""
    page.goto(f"{base}/admin/newsletters/daily/edit")
    page.locator("#repeat").select_option("")
    page.locator("#schedule").fill("every morning")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#schedule-problem")).to_contain_text("is not a crontab line")
    expect(page.locator("#schedule")).to_have_value("every morning")


@pytest.mark.parametrize(("email", "width"), [(ADMIN, 1280), (EDITOR, 375)])
def test_every_console_page(
    browser: Browser, seeded: Seeded, db_name: str, email: str, width: int
) -> None:
    role = "admin" if email == ADMIN else "editor"
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    refused: list[str] = []  # what the browser refused (CSP), on any page
    page.on("console", lambda m: refused.append(m.text) if "Refused to" in m.text else None)
    found: list[str] = []
    try:
        if role == "admin":  # the signed-out pages, once
            for name, path in (("login", "/admin/login"), ("forgot", "/admin/forgot")):
                page.goto(seeded.base + path)
                found += _check(page, name, f"sweep-{name}-{db_name}")
        _sign_in(page, seeded.base, email)
        for name, path in _pages(seeded):
            if role == "editor" and name in ADMIN_ONLY:
                continue
            page.set_viewport_size({"width": width, "height": 900})
            answer = page.goto(seeded.base + path)
            assert answer is not None and answer.status == 200, (
                f"{path}: {answer and answer.status}"
            )
            assert page.locator("nav[aria-label=Console]").count() == 1, f"{path}: no console nav"
            icon = page.locator("link[rel=icon]").get_attribute("href") or ""
            assert icon.startswith("data:image/svg+xml"), f"{path}: no favicon"
            found += _check(page, name, f"sweep-{role}-{name}-{db_name}")
        if role == "admin":
            page.set_viewport_size({"width": width, "height": 900})
            _refused_form(page, seeded.base)
            found += _check(page, "newsletter-refused", f"sweep-admin-newsletter-refused-{db_name}")
            page.goto(f"{seeded.base}/admin/newsletters/daily")
            page.get_by_role("button", name="Poll now").click()  # its result page
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            found += _check(page, "polled", f"sweep-admin-polled-{db_name}")
    finally:
        context.close()
    assert found == [], "\n".join(found)
    assert refused == []
