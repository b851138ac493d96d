"""The newsletter form's schedule picker in Chromium, on both databases: choosing "once a
week, on Saturday at 09:30" writes the crontab line, typing a line the picker can show sets
the picker, and what is saved is what the page showed."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.builders import newsletter
from tests.web.browser import screenshots
from tests.web.console import PASSWORD, make_user
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, UserRole


@pytest.fixture
def page(browser: Browser, db: Database, settings: Settings) -> Iterator[tuple[Page, str]]:
    newsletter(db)
    email = make_user(db, UserRole.admin)
    with web_server(settings, db) as base:
        context = browser.new_context(viewport={"width": 375, "height": 900})
        opened = context.new_page()
        opened.goto(f"{base}/admin/login")
        opened.get_by_label("Email").fill(email)
        opened.get_by_label("Password").fill(PASSWORD)
        opened.get_by_role("button", name="Sign in").click()
        expect(opened).not_to_have_url(f"{base}/admin/login")
        yield opened, base
        context.close()


def test_the_picker_and_the_crontab_line_keep_in_step(
    page: tuple[Page, str], db: Database, db_name: str
) -> None:
    tab, base = page
    tab.goto(f"{base}/admin/newsletters/daily/edit")
    line, repeat = tab.locator("#schedule"), tab.locator("#repeat")
    day, at = tab.locator("#day"), tab.locator("#at")
    expect(line).to_have_value("0 8 * * *")
    expect(repeat).to_have_value("daily")
    expect(day).to_be_hidden()  # only "once a week" asks for a day
    repeat.select_option("weekly")
    expect(day).to_be_visible()
    day.select_option("6")
    at.fill("09:30")
    expect(line).to_have_value("30 9 * * 6")
    line.fill("15 7 * * 1-5")
    expect(repeat).to_have_value("weekdays")
    expect(at).to_have_value("07:15")
    line.fill("0 7,19 * * *")
    expect(repeat).to_have_value("")  # a line the picker cannot show: custom
    expect(at).to_be_hidden()
    repeat.select_option("weekly")
    day.select_option("0")
    at.fill("18:05")
    expect(line).to_have_value("5 18 * * 0")
    screenshots(tab, f"newsletter-form-picker-{db_name}")
    tab.get_by_role("button", name="Save").click()
    expect(tab).to_have_url(f"{base}/admin/newsletters/daily")
    expect(tab.locator("ol li").first).to_contain_text("Sunday")
    with db.session() as session:
        stored = session.scalars(select(Newsletter.schedule_cron)).one()
    assert stored == "5 18 * * 0"


def test_the_reader_settings_fit_a_phone_and_a_refusal_sits_beside_its_field(
    page: tuple[Page, str], db: Database, db_name: str
) -> None:
    tab, base = page
    tab.goto(f"{base}/admin/newsletters/daily/edit")
    welcome, images = tab.get_by_label("Mail a welcome"), tab.get_by_label("Show the articles")
    expect(welcome).to_be_checked()
    expect(images).to_be_checked()
    tab.get_by_label("Send at each reader’s own time").check()
    tab.get_by_label("Postal address").fill("The Messenger\n14 Rustaveli Avenue\nTbilisi 0108")
    tab.get_by_label("Footer text").fill("Written in Tbilisi, read everywhere.")
    images.uncheck()
    utm = tab.get_by_label("UTM source")
    utm.fill("messenger")
    tab.get_by_label("Postal address").fill("\n".join(f"Line {n}" for n in range(1, 9)))
    tab.get_by_role("button", name="Save").click()
    problem = tab.locator("#postal_address-problem")
    expect(problem).to_have_text("The postal address has 8 lines; at most 6 are taken.")
    assert int(tab.evaluate("document.documentElement.scrollWidth")) <= 375
    screenshots(tab, f"newsletter-form-reader-settings-{db_name}")
    tab.get_by_label("Postal address").fill("The Messenger\n14 Rustaveli Avenue\nTbilisi 0108")
    tab.get_by_role("button", name="Save").click()
    expect(tab).to_have_url(f"{base}/admin/newsletters/daily")
    expect(tab.locator("#reader-settings")).to_contain_text("14 Rustaveli Avenue")
    assert int(tab.evaluate("document.documentElement.scrollWidth")) <= 375
    screenshots(tab, f"newsletter-page-reader-settings-{db_name}")
    with db.session() as session:
        stored = session.scalars(select(Newsletter)).one()
        assert (stored.reader_time, stored.show_images, stored.welcome_enabled) == (
            True,
            False,
            True,
        )
        assert stored.postal_address == "The Messenger\n14 Rustaveli Avenue\nTbilisi 0108"
        assert stored.utm_source == "messenger"
