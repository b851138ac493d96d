"""A real browser for page tests: Playwright driving Debian's Chromium.

``make test`` installs the chromium package when it is missing; without it the browser tests
are skipped, except under CI=true, where they fail.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root, and no calls home: this machine's network is closed.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDTHS = {"desktop": 1280, "phone": 375}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def assert_accessible(page: Page) -> None:
    """axe-core (bundled with axe-playwright-python) finds no WCAG violation on the page."""
    violations = Axe().run(page).response["violations"]
    found = [(v["id"], v["impact"], v["nodes"][0]["target"]) for v in violations]
    assert found == [], f"{page.url}: {found}"


def screenshots(page: Page, name: str) -> None:
    """Check the page with axe, then save it at desktop and phone width under
    test-artifacts/."""
    assert_accessible(page)
    ARTIFACTS.mkdir(exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 1280
    for label, pixels in WIDTHS.items():
        page.set_viewport_size({"width": pixels, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})
