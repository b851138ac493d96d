"""The API's interactive documentation at /api/v1/docs, in Chromium: served from this server
alone (no CDN), started by our nonce script under our CSP, every operation shown."""

import httpx
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser

from tests.api.test_api import Api
from tests.api.test_api import api as api
from tests.web.browser import ARTIFACTS, WIDTHS


def test_interactive_docs_are_served_without_a_cdn(api: Api, browser: Browser) -> None:
    page_html = httpx.get(f"{api.base}/api/v1/docs")
    assert page_html.status_code == 200
    assert "http" not in page_html.text.split("<body>")[0].replace("http-equiv", "")
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    blocked: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith(api.base) and not request.url.startswith("data:")
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{api.base}/api/v1/docs")
    page.locator(".opblock-summary-path", has_text="/newsletters/{slug}/preview").wait_for(
        timeout=15_000
    )
    assert page.locator(".opblock").count() > 20
    page.locator(".opblock-summary-path", has_text="/newsletters/{slug}/sources").first.click()
    page.wait_for_selector("text=Try it out")
    assert outside == [] and blocked == []
    # axe finds these in Swagger UI's own markup (a grey version badge, its heading levels,
    # a button inside its summary row, its unlabelled servers list): not ours to change, so
    # they are the only ones allowed here, and every other page of ours is held to none.
    swagger_own = {"color-contrast", "heading-order", "nested-interactive", "select-name"}
    found = {v["id"] for v in Axe().run(page).response["violations"]}
    assert found <= swagger_own, found - swagger_own
    ARTIFACTS.mkdir(exist_ok=True)
    for label, pixels in WIDTHS.items():
        page.set_viewport_size({"width": pixels, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"api-docs-{label}.png"), full_page=True)
    context.close()
