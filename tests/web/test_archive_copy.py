"""The public copy of a really sent edition has nothing personal in it and offers Subscribe:
the edition goes out through the worker to a recording SMTP server, then its "View in
browser" link is opened over real HTTP."""

import asyncio
import html
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import select

from tests.deliver.ledgerrows import sending
from tests.smtpserver import smtp_server
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, EditionStatus
from tidings.deliver.runner import run_worker

#: Paths of the links that carry a signed reader token.
TOKEN_PATHS = ("/u/", "/preferences/", "/confirm/")


def _links(page: str) -> list[str]:
    return [html.unescape(link) for link in re.findall(r'href="([^"]*)"', page)]


def test_the_archive_copy_of_a_sent_edition_is_impersonal(db: Database, settings: Settings) -> None:
    with smtp_server() as (smtp, port), web_server(settings, db) as base:
        live = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "base_url": base}
        )
        made = sending(db, live, readers=2)
        with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever else runs here
            pool.submit(
                lambda: asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
            ).result(timeout=60)
        with db.session() as session:
            status = session.scalar(select(Edition.status).where(Edition.id == made.edition_id))
        assert status == EditionStatus.sent
        mail = next(c.message for c in smtp.caught if c.rcpt_tos == ["reader0@example.ge"])
        body = mail.get_body(("html",))
        assert body is not None
        sent_html = body.get_content()
        # The reader's own copy is personal: the archive copy must be told apart from it.
        assert "Hello Reader 0," in sent_html and "/u/" in sent_html
        view = re.search(r'href="([^"]+/archive/daily/\d+)"', sent_html)
        assert view is not None and view.group(1).startswith(base)

        answer = httpx.get(view.group(1))
        assert answer.status_code == 200
        page = answer.text
        front = httpx.get(base + "/")

    assert "Story 0: Panjikidze meets envoys" in page and "Story 1" in page
    links = _links(page)
    assert "#" not in links and 'href="#"' not in page
    assert not [link for link in links if any(path in link for path in TOKEN_PATHS)]
    assert "Hello" not in page and "reader" not in page.lower()
    assert "@example.ge" not in page and "Reader 0" not in page
    assert "Unsubscribe" not in page and "Manage preferences" not in page
    # Subscribe: a link to the newsletter's sign-up form on the front, which is there.
    (subscribe,) = [link for link in links if link.endswith("/#subscribe-daily")]
    assert "Subscribe to The Daily Messenger" in page
    assert subscribe == "/#subscribe-daily"
    assert '/archive/daily"' in page  # the newsletter's other editions
    assert front.status_code == 200
    assert 'id="subscribe-daily"' in front.text and 'action="/subscribe/daily"' in front.text
