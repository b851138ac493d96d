"""Issue 12: the sample digest as Chromium draws it, at 600 and 375 px, light and dark, and at
375 px with its <style> element removed (Gmail's mobile webmail drops it, classic Outlook
ignores its media queries): never wider than the window, and the dark render passes axe-core's
colour-contrast rule. Screenshots are kept under test-artifacts/mail/ to be looked at.

The digest is composed through storage on SQLite only: what is checked here is the HTML, which
tests/mail/test_mail_checkers.py builds on both databases. Every request the mail makes (its
images) is refused, as a mail client that blocks remote content does.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Route

from tests.mailcheck.checkers import Finding
from tests.mailcheck.findings import ARTIFACTS, record
from tests.mailcheck.mails import sample_digest
from tidings.config import Settings
from tidings.db.engine import Database

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
HEIGHT = 900
_DROP_STYLES = "document.querySelectorAll('style').forEach(element => element.remove())"
_OVERFLOW = """() => ({
    width: document.documentElement.scrollWidth,
    widest: [...document.querySelectorAll('body *')]
        .filter(element => element.getBoundingClientRect().right > window.innerWidth + 0.5)
        .slice(0, 5)
        .map(element => element.tagName.toLowerCase()
             + (element.className ? '.' + String(element.className).split(' ').join('.') : '')
             + ' right=' + Math.round(element.getBoundingClientRect().right)),
})"""


@dataclass(frozen=True)
class Render:
    """One way a reader's client draws the mail."""

    width: int
    scheme: str  # "light" or "dark": the prefers-color-scheme the page sees
    styles: bool = True  # False: every <style> element removed, inline styles kept

    @property
    def name(self) -> str:
        return f"digest-{self.width}-{self.scheme}" + ("" if self.styles else "-nostyle")


RENDERS = [
    Render(600, "light"),
    Render(600, "dark"),
    Render(375, "light"),
    Render(375, "dark"),
    Render(375, "light", styles=False),
]


@dataclass(frozen=True)
class Drawn:
    """The mail drawn one way, in a live page."""

    render: Render
    page: Page


def _refuse(route: Route) -> None:
    route.abort()


@pytest.fixture
def digest_html(db: Database, settings: Settings) -> str:
    return sample_digest(db, settings)


@pytest.fixture
def drawn(browser: Browser, digest_html: str, request: pytest.FixtureRequest) -> Iterator[Drawn]:
    """The digest drawn as ``request.param`` says, its full-page screenshot saved."""
    render: Render = request.param
    context = browser.new_context(
        viewport={"width": render.width, "height": HEIGHT},
        color_scheme="dark" if render.scheme == "dark" else "light",
    )
    page = context.new_page()
    page.route("**/*", _refuse)  # remote images and anything else: blocked, as by many clients
    page.set_content(digest_html, wait_until="load")
    if not render.styles:
        page.evaluate(_DROP_STYLES)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{render.name}.png"), full_page=True)
    yield Drawn(render, page)
    context.close()


@pytest.mark.parametrize("drawn", RENDERS, ids=[r.name for r in RENDERS], indirect=True)
def test_the_digest_never_scrolls_sideways(drawn: Drawn) -> None:
    width = drawn.render.width
    measured = drawn.page.evaluate(_OVERFLOW)
    findings = []
    if measured["width"] > width:
        message = f"the page is {measured['width']} px wide; wider: {measured['widest']}"
        findings.append(Finding("error", message, f"window {width} px wide"))
    record(f"{drawn.render.name}.png in Chromium", "horizontal overflow", findings)
    assert measured["width"] <= width, findings[0].line()


DARK = [r for r in RENDERS if r.scheme == "dark"]
_CONTRAST_ONLY = {"runOnly": {"type": "rule", "values": ["color-contrast"]}}


@pytest.mark.parametrize("drawn", DARK, ids=[r.name for r in DARK], indirect=True)
def test_the_dark_digest_has_enough_contrast(drawn: Drawn) -> None:
    response = Axe().run(drawn.page, options=_CONTRAST_ONLY).response
    checked = sum(len(rule["nodes"]) for rule in response["passes"] + response["violations"])
    findings = [
        Finding(
            "error" if kind == "violations" else "warning",
            node["failureSummary"].replace("Fix any of the following:", "").strip()
            if kind == "violations"
            else "axe could not decide (needs a look)",
            ", ".join(node["target"]),
            node.get("html", ""),
        )
        for kind in ("violations", "incomplete")
        for rule in response[kind]
        for node in rule["nodes"]
    ]
    record(f"{drawn.render.name}.png in Chromium", "axe-core color-contrast", findings)
    assert checked > 0, "axe found no text to check: the page did not draw"
    errors = [finding.line() for finding in findings if finding.severity == "error"]
    assert errors == [], "\n".join(errors)
