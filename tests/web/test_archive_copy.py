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
from tidings.mail.personal import SLOT_NAMES, public_copy

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
        assert "Hello Reader," in sent_html and "/u/" in sent_html
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


def _stored(body: str, nonce: str = "ab" * 16) -> str:
    """A stored part as the renderer writes it, with ``{name}`` for each slot's marker."""
    markers = {name: f"ZZtidings_{nonce}_{name}_ZZ" for name in SLOT_NAMES}
    return f"tidings-slots:1:{nonce}\n" + body.format(**markers)


def test_public_copy_takes_out_only_what_is_personal() -> None:
    stored = _stored(
        "<!DOCTYPE html><html><head><title>Today for {greeting_name}</title></head>"
        '<body class="x"><table><tr><td class="greeting">Hello {greeting_name},</td></tr>'
        "<tr><td><h2>Budget passes</h2><p>Ministers &amp; MPs met.</p></td></tr>"
        "<tr><td>Stories for {email}<p>Kept: a story beside the address</p></td></tr>"
        '<tr><td><p>Sent by The Messenger</p><p><a href="{preferences_url}">Preferences</a>'
        ' &middot; <a href="{unsubscribe_url}">Unsubscribe</a> | '
        '<a href="{view_url}">View</a></p><br/><img src="https://x.ge/l.png" alt="logo">'
        "</td></tr></table></body></html>"
    )
    public = public_copy(stored, "<header>BAR</header><main>", "</main>")
    assert public.startswith("<!DOCTYPE html><html><head><title>Today for </title></head>")
    assert '<body class="x"><header>BAR</header><main><table>' in public
    assert public.endswith("</table></main></body></html>")
    assert "Hello" not in public and "greeting" not in public
    assert "<tr><td><h2>Budget passes</h2><p>Ministers &amp; MPs met.</p></td></tr>" in public
    # A personal value in a cell that also holds other blocks stays, emptied, with them.
    assert "<tr><td>Stories for <p>Kept: a story beside the address</p></td></tr>" in public
    # The links go, and the paragraph of separators they leave; the rest of the cell stays.
    assert '<tr><td><p>Sent by The Messenger</p><br/><img src="https://x.ge/l.png"' in public
    assert "href" not in public and "ZZtidings" not in public and "Preferences" not in public


def test_public_copy_leaves_content_that_looks_like_a_marker() -> None:
    """Only the template's slots go: a story quoting a marker (an old fixed token, another
    edition's marker) stays as written, and so does its paragraph."""
    quoted = f"ZZtidings_{'ef' * 16}_email_ZZ and ZZtidings_email_ZZ"
    stored = _stored("<body><p>Hello {greeting_name}</p><p>QUOTED</p></body>")
    public = public_copy(stored.replace("QUOTED", quoted))
    assert public == f"<body><p>{quoted}</p></body>"


def test_public_copy_of_an_edition_stored_with_the_old_tokens() -> None:
    stored = (
        "<body><p>Hello ZZtidings_greeting_name_ZZ</p><p>News</p>"
        '<a href="ZZtidings_unsubscribe_url_ZZ">Leave</a></body>'
    )
    assert public_copy(stored) == "<body><p>News</p></body>"
