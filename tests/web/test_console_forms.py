"""Console forms over real HTTP: a mistake comes back inside the console, with what was
typed and a sentence beside the field; the schedule picker fills the crontab; a GET on a
POST-only console URL goes back to its page."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape

import httpx
import pytest
from sqlalchemy import select

from tests.builders import newsletter
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import forms
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, UserRole


@dataclass
class Console:
    client: httpx.Client
    token: str
    db: Database

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.token, **data})


@pytest.fixture
def console(db: Database, settings: Settings) -> Iterator[Console]:
    newsletter(db)
    email = make_user(db, UserRole.admin)
    with web_server(settings, db) as base:
        client = sign_in(base, email)
        yield Console(client, csrf(client), db)


FORM = {
    "slug": "weekend",
    "name": "The Weekend Messenger",
    "sender": "The Messenger <weekend@messenger.example.ge>",
    "schedule": "",
    "repeat": "weekly",
    "day": "6",
    "at": "09:30",
    "timezone": "Asia/Tbilisi",
    "min_articles": "1",
    "max_articles": "10",
    "template_set": "digest",
    "allowed_origins": "https://Messenger.example.ge/\nhttps://www.messenger.example.ge",
}


def _problem(html: str, field: str) -> str:
    found = re.search(rf'id="{field}-problem"[^>]*>([^<]*)<', html)
    assert found, f"no problem shown beside {field}"
    return unescape(found[1])


def _value(html: str, field: str) -> str:
    found = re.search(rf'<input id="{field}" [^>]*value="([^"]*)"', html)
    assert found, f"no input {field}"
    return unescape(found[1])


def _stored(db: Database, slug: str) -> Newsletter:
    with db.session() as session:
        return session.scalars(select(Newsletter).where(Newsletter.slug == slug)).one()


def test_a_bad_newsletter_form_comes_back_typed_with_sentences(console: Console) -> None:
    typed = {
        **FORM,
        "name": "The Weekend Messenger",
        "schedule": "every morning",
        "timezone": "Mars/Olympus",
        "max_articles": "lots",
        "template_set": "nope",
        "allowed_origins": "https://messenger.example.ge/path",
    }
    answer = console.post("/admin/newsletters/new", **typed)
    assert answer.status_code == 422
    html = answer.text
    assert "That was not done" not in html and 'aria-label="Console"' in html  # the layout
    assert _value(html, "name") == "The Weekend Messenger"  # what was typed stays
    assert _value(html, "schedule") == "every morning"
    assert _value(html, "timezone") == "Mars/Olympus"
    assert _problem(html, "schedule").startswith("The schedule 'every morning' is not a crontab")
    assert _problem(html, "timezone").startswith("The time zone 'Mars/Olympus' is not an IANA")
    assert _problem(html, "max_articles") == "Give a whole number."
    assert (
        _problem(html, "template_set") == "There is no template set 'nope'; the sets are: digest."
    )
    assert "must be scheme and host only" in _problem(html, "allowed_origins")
    sentences = re.findall(r'class="notice error[^"]*"[^>]*>(?:<p>)?([^<]*)<', html)
    assert len(sentences) == 6  # the summary and five fields
    for sentence in sentences:
        assert sentence[0].isupper() and sentence.rstrip().endswith(".")
        assert "tidings " not in sentence and "--" not in sentence
    with console.db.session() as session:
        assert session.scalar(select(Newsletter).where(Newsletter.slug == "weekend")) is None


def test_the_picker_makes_the_crontab_and_origins_are_kept(console: Console) -> None:
    assert console.post("/admin/newsletters/new", **FORM).status_code == 303
    stored = _stored(console.db, "weekend")
    assert stored.schedule_cron == "30 9 * * 6"  # Saturday 09:30, crontab's weekday 6
    assert stored.allowed_origins == [
        "https://messenger.example.ge",
        "https://www.messenger.example.ge",
    ]
    page = console.client.get("/admin/newsletters/weekend").text
    # The schedule in words, then the next five sends.
    assert "Every Saturday at 09:30 (Asia/Tbilisi)" in page
    assert page.count("Saturday") == 6 and "09:30 (Asia/Tbilisi)" in page
    assert "https://www.messenger.example.ge" in page
    form = console.client.get("/admin/newsletters/weekend/edit").text
    assert _value(form, "schedule") == "30 9 * * 6" and _value(form, "at") == "09:30"
    assert '<option value="weekly" selected>' in form and '<option value="6" selected>' in form
    # The raw line left as shown and the picker changed (no JavaScript): the picker wins.
    edited = {**FORM, "schedule": "30 9 * * 6", "schedule_was": "30 9 * * 6"}
    edited |= {"repeat": "weekdays", "at": "07:05"}
    assert console.post("/admin/newsletters/weekend/edit", **edited).status_code == 303
    assert _stored(console.db, "weekend").schedule_cron == "5 7 * * 1-5"
    # A raw line typed by hand wins over the picker.
    edited |= {"schedule": "0 7,19 * * *", "schedule_was": "5 7 * * 1-5"}
    assert console.post("/admin/newsletters/weekend/edit", **edited).status_code == 303
    assert _stored(console.db, "weekend").schedule_cron == "0 7,19 * * *"
    custom = console.client.get("/admin/newsletters/weekend/edit").text
    assert '<option value="" selected>Custom (crontab line)' in custom


def test_a_bad_edit_and_a_bad_feed_stay_on_their_page(console: Console) -> None:
    answer = console.post(
        "/admin/newsletters/daily/edit",
        **{**FORM, "slug": "", "schedule": "61 7 * * *", "min_articles": "5", "max_articles": "2"},
    )
    assert answer.status_code == 422
    assert _value(answer.text, "schedule") == "61 7 * * *"
    assert _problem(answer.text, "schedule").startswith("The schedule '61 7 * * *'")
    assert _problem(answer.text, "min_articles") == (
        "The least number of articles is more than the most an edition takes."
    )
    assert _stored(console.db, "daily").schedule_cron == "0 8 * * *"  # nothing changed
    feed = console.post("/admin/newsletters/daily/feeds", url="ftp://messenger.example.ge/rss")
    assert feed.status_code == 422 and "The Daily Messenger" in feed.text
    assert _value(feed.text, "url") == "ftp://messenger.example.ge/rss"
    assert _problem(feed.text, "url").startswith(
        "That feed was not added: url must be an absolute http(s) URL"
    )
    taken = console.post("/admin/newsletters/new", **{**FORM, "slug": "daily"})
    assert taken.status_code == 422
    assert _problem(taken.text, "slug") == "A newsletter with the slug 'daily' exists already."


def test_missing_newsletter_gives_no_cli_advice(console: Console) -> None:
    answer = console.client.get("/admin/newsletters/nope")
    assert answer.status_code == 404
    assert "There is no newsletter 'nope'." in unescape(answer.text)
    assert "tidings " not in answer.text and 'aria-label="Console"' in answer.text


@pytest.mark.parametrize(
    ("path", "parent"),
    [
        ("/admin/newsletters/daily/poll", "/admin/newsletters/daily"),
        ("/admin/newsletters/daily/feeds", "/admin/newsletters/daily"),
        ("/admin/access/users", "/admin/access"),
        ("/admin/logout", "/admin"),
        # These match a GET route's pattern (/admin/subscribers/{id}) but are a form's URL.
        ("/admin/subscribers/bulk", "/admin/subscribers"),
        ("/admin/subscribers/add", "/admin/subscribers"),
    ],
)
def test_reloading_a_post_only_url_goes_back_to_its_page(
    console: Console, path: str, parent: str
) -> None:
    answer = console.client.get(path)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == parent
    assert "Method Not Allowed" not in answer.text


def test_refused_access_forms_come_back_typed(console: Console) -> None:
    bad = console.post("/admin/access/users", email="not an address", role="viewer")
    assert bad.status_code == 422 and 'aria-label="Console"' in bad.text
    assert _value(bad.text, "user-email") == "not an address"
    problem = _problem(bad.text, "user-email")
    assert problem[0].isupper() and problem.endswith(".")
    assert "<option selected>viewer</option>" in bad.text  # the role chosen stays chosen
    again = console.post("/admin/access/users", email="admin@messenger.example.ge", role="editor")
    assert again.status_code == 409
    assert _problem(again.text, "user-email") == (
        "A user admin@messenger.example.ge exists already."
    )
    token = console.post("/admin/access/tokens", name="   ", role="admin")
    assert token.status_code == 422
    assert _problem(token.text, "token-name").startswith("Say what the token is for")


def test_a_viewer_is_offered_no_action_and_no_mailbox(
    console: Console, db: Database, settings: Settings
) -> None:
    viewer = sign_in(str(console.client.base_url), make_user(db, UserRole.viewer))
    for path in ("/admin", "/admin/newsletters", "/admin/newsletters/daily", "/admin/editions"):
        html = viewer.get(path).text
        for action in ("Build a one-off edition", "Poll now", "Edit settings", "New newsletter"):
            assert action not in html, (path, action)
        assert "Add a feed" not in html and 'href="/mailbox"' not in html
        actions = [f.action for f in forms(html)]
        assert actions == ["/admin/logout"], (path, actions)  # signing out is all it may do
    assert viewer.get("/mailbox").status_code == 403
    assert viewer.get("/mailbox/1765000000000000000-abcdef12").status_code == 403
    anonymous = httpx.get(f"{console.client.base_url}/mailbox", follow_redirects=False)
    assert anonymous.status_code == 303 and "/admin/login" in anonymous.headers["location"]
    editor = sign_in(str(console.client.base_url), make_user(db, UserRole.editor))
    page = editor.get("/admin/newsletters/daily").text
    assert "Build a one-off edition" in page and "Poll now" in page
    assert "Every day at 08:00 (Asia/Tbilisi)" in page  # the schedule in words too
    assert "Edit settings" not in page and 'href="/mailbox"' in page
    assert editor.get("/mailbox").status_code == 200


def test_a_refused_dkim_key_comes_back_typed(console: Console) -> None:
    bad = console.post("/admin/dkim", domain="not a domain", selector="t2026", algorithm="ed25519")
    assert bad.status_code == 422 and 'aria-label="Console"' in bad.text
    assert _value(bad.text, "dkim-domain") == "not a domain"
    assert _value(bad.text, "dkim-selector") == "t2026"
    assert "<option selected>ed25519</option>" in bad.text
    assert _problem(bad.text, "dkim").startswith("The key was not made: ")


def test_a_refused_sign_in_keeps_the_address(console: Console) -> None:
    page = httpx.get(f"{console.client.base_url}/admin/login")
    token = forms(page.text)[0].hidden["csrf_token"]
    answer = httpx.post(
        f"{console.client.base_url}/admin/login",
        data={"csrf_token": token, "email": "admin@messenger.example.ge", "password": "wrong"},
        cookies=page.cookies,
    )
    assert answer.status_code == 401
    assert _value(answer.text, "email") == "admin@messenger.example.ge"
    assert "That email and password do not match." in answer.text


def test_a_path_or_form_value_that_does_not_fit_is_answered_with_a_page(console: Console) -> None:
    missing = console.client.get("/admin/subscribers/not-a-number")
    assert missing.status_code == 404 and "detail" not in missing.text
    bad_role = console.post("/admin/access/users", email="x@messenger.example.ge", role="owner")
    assert bad_role.status_code == 422 and 'aria-label="Console"' in bad_role.text
    assert "The form was not taken: “role” is missing or not valid." in unescape(bad_role.text)


def _ticked(html: str, field: str) -> bool:
    found = re.search(rf'<input type="checkbox" id="{field}" [^>]*>', html)
    assert found, f"no checkbox {field}"
    return " checked" in found[0]


def _text(html: str, field: str) -> str:
    found = re.search(rf'<textarea id="{field}" [^>]*>([^<]*)</textarea>', html)
    assert found, f"no textarea {field}"
    return unescape(found[1])


READER_SETTINGS = {
    "reader_time": "on",
    "postal_address": "The Messenger\r\n 14 Rustaveli Avenue \r\n\r\nTbilisi 0108, Georgia",
    "footer_text": "You get this because you asked for “The Weekend Messenger”.",
    "show_images": "on",
    "utm_source": "messenger-weekend",
}


def test_the_reader_settings_are_saved_shown_and_unticked(console: Console) -> None:
    blank = console.client.get("/admin/newsletters/new").text
    # A new newsletter welcomes its readers and shows pictures unless told otherwise.
    assert _ticked(blank, "welcome_enabled") and _ticked(blank, "show_images")
    assert not _ticked(blank, "reader_time")
    # welcome_enabled is not posted: an unticked box sends nothing.
    assert console.post("/admin/newsletters/new", **FORM, **READER_SETTINGS).status_code == 303
    stored = _stored(console.db, "weekend")
    assert (stored.reader_time, stored.welcome_enabled, stored.show_images) == (True, False, True)
    assert stored.postal_address == "The Messenger\n14 Rustaveli Avenue\nTbilisi 0108, Georgia"
    assert stored.footer_text == READER_SETTINGS["footer_text"]
    assert stored.utm_source == "messenger-weekend"
    page = console.client.get("/admin/newsletters/weekend").text
    assert "each reader’s own time of day" in page
    assert "14 Rustaveli Avenue" in page and "utm_source=messenger-weekend" in page
    form = console.client.get("/admin/newsletters/weekend/edit").text
    assert _ticked(form, "reader_time") and not _ticked(form, "welcome_enabled")
    assert _text(form, "postal_address") == stored.postal_address
    assert _value(form, "utm_source") == "messenger-weekend"
    # Unticked and emptied: off and removed.
    edited = {**FORM, "welcome_enabled": "on", "postal_address": "", "utm_source": " "}
    assert console.post("/admin/newsletters/weekend/edit", **edited).status_code == 303
    stored = _stored(console.db, "weekend")
    assert (stored.reader_time, stored.welcome_enabled, stored.show_images) == (False, True, False)
    assert (stored.postal_address, stored.footer_text, stored.utm_source) == (None, None, None)
    assert "none yet" in console.client.get("/admin/newsletters/weekend").text


def test_bad_reader_settings_come_back_beside_their_fields(console: Console) -> None:
    typed = {
        **FORM,
        "postal_address": "\n".join(f"Line {n}" for n in range(1, 9)),
        "footer_text": "Read us\u202eevil",
        "utm_source": "news letter?",
    }
    answer = console.post("/admin/newsletters/daily/edit", **typed)
    assert answer.status_code == 422
    html = answer.text
    assert (
        _problem(html, "postal_address") == "The postal address has 8 lines; at most 6 are taken."
    )
    assert _problem(html, "footer_text").startswith(
        "The footer text has an invisible control character (U+202E)"
    )
    assert _problem(html, "utm_source").startswith(
        "The UTM source 'news letter?' must be letters, digits"
    )
    assert _text(html, "postal_address") == typed["postal_address"]  # what was typed stays
    assert _value(html, "utm_source") == "news letter?"
    assert 'aria-describedby="utm_source-problem"' in html
    stored = _stored(console.db, "daily")
    assert (stored.postal_address, stored.footer_text, stored.utm_source) == (None, None, None)
