"""The console's newsletter page lists the coming sends, as ``tidings schedule show`` does."""

from html import unescape

from sqlalchemy import select

from tests.builders import newsletter
from tests.web.console import make_user, sign_in
from tests.webserver import web_server
from tidings.audience.service import add_subscriber
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber, UserRole


def test_the_newsletter_page_lists_each_zones_send(db: Database, settings: Settings) -> None:
    newsletter(db, schedule="0 7 * * *", timezone="Asia/Tbilisi")
    for address in ("a@example.ge", "b@example.ge"):
        add_subscriber(db, "daily", address, None, confirmed=True, source="test")
    with db.session() as session:
        session.scalars(select(Newsletter)).one().reader_time = True
        reader = session.scalars(select(Subscriber).where(Subscriber.email == "a@example.ge"))
        reader.one().timezone = "Asia/Kathmandu"
        session.commit()
    email = make_user(db, UserRole.viewer)
    with web_server(settings, db) as base:
        page = sign_in(base, email).get("/admin/newsletters/daily")
    assert page.status_code == 200
    text = unescape(page.text)
    assert "Coming sends, next 7 days" in text
    assert "At each reader's local time" in text
    rows = text.split('<table class="stack coming-sends">')[1].split("</table>")[0]
    assert rows.count("<tr>") == 1 + 14  # the heading, then two zones for seven days
    assert rows.count("T01:15:00Z</time>") == 7 and rows.count("07:00 Asia/Kathmandu") == 7
    assert rows.count("T03:00:00Z</time>") == 7 and rows.count("07:00 Asia/Tbilisi") == 7
