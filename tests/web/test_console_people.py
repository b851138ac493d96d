"""People in the console over real HTTP, on SQLite and PostgreSQL: an admin changes roles,
disables, enables and removes users (their sessions end at once; the last admin stays, with
the reason beside the row), "Forgot your password?" mails a link that works once, and new
users are invited by mail when mail is configured."""

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.builders import newsletter
from tests.web.console import PASSWORD, csrf, make_user, sign_in
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tests.webserver import web_server
from tidings.access.accounts import user_id_by_email
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole

ADMIN = "admin@messenger.example.ge"
EDITOR = "editor@messenger.example.ge"
NEW = "a-fresh-and-private-phrase"


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    make_user(db, UserRole.admin)
    make_user(db, UserRole.editor)
    with site_with_mail(db, settings) as running:
        yield running


def _row(page: str, user_id: int) -> str:
    found = re.search(rf'<tr id="user-{user_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row for user {user_id}"
    return found.group(1)


def _signed_out(client: httpx.Client) -> bool:
    answer = client.get("/admin", follow_redirects=False)
    return answer.status_code == 303 and answer.headers["location"].startswith("/admin/login")


def _login(base: str, email: str, password: str) -> httpx.Response:
    client = httpx.Client(base_url=base)
    form = form_to(client.get("/admin/login").text, "/admin/login")
    return client.post("/admin/login", data={**form.hidden, "email": email, "password": password})


def test_an_admin_manages_people_and_sessions_end_at_once(site: Site) -> None:
    admin = sign_in(site.base, ADMIN)
    editor = sign_in(site.base, EDITOR)
    token = csrf(admin)
    editor_id = user_id_by_email(site.db, EDITOR)
    admin_id = user_id_by_email(site.db, ADMIN)

    # A role change applies from the editor's next page; the session goes on.
    assert (
        admin.post(
            f"/admin/access/users/{editor_id}/role", data={"csrf_token": token, "role": "viewer"}
        ).status_code
        == 303
    )
    assert "(viewer)" in editor.get("/admin").text

    # Disabled: the open session ends at once; sign-in says why, but only to the password.
    admin.post(f"/admin/access/users/{editor_id}/disable", data={"csrf_token": token})
    assert _signed_out(editor)
    row = _row(admin.get("/admin/access").text, editor_id)
    assert "disabled" in row and "Enable" in row
    right = _login(site.base, EDITOR, PASSWORD)
    assert right.status_code == 403 and "This account is disabled" in right.text
    wrong = _login(site.base, EDITOR, PASSWORD + "x")
    assert wrong.status_code == 401 and "disabled" not in wrong.text
    assert "That email and password do not match." in wrong.text

    admin.post(f"/admin/access/users/{editor_id}/enable", data={"csrf_token": token})
    editor = sign_in(site.base, EDITOR)
    assert not _signed_out(editor)

    # The last admin stays: refused beside their own row, and nothing changed.
    for action, data in [
        ("disable", {}),
        ("remove", {}),
        ("role", {"role": "editor"}),
    ]:
        refused = admin.post(
            f"/admin/access/users/{admin_id}/{action}", data={"csrf_token": token, **data}
        )
        assert refused.status_code == 409, action
        assert "is the last admin" in _row(refused.text, admin_id), action
        assert "is the last admin" not in _row(refused.text, editor_id)
    assert not _signed_out(admin)
    assert "(admin)" in admin.get("/admin").text

    # Removed: the session ends with the user.
    removed = admin.post(
        f"/admin/access/users/{editor_id}/remove",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert removed.status_code == 200 and EDITOR not in removed.text
    assert _signed_out(editor)


def _forgot(base: str, email: str) -> httpx.Response:
    client = httpx.Client(base_url=base)
    login = client.get("/admin/login")
    assert 'href="/admin/forgot"' in login.text
    form = form_to(client.get("/admin/forgot").text, "/admin/forgot")
    return client.post("/admin/forgot", data={**form.hidden, "email": email})


def _without_tokens(html: str) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', html)


def test_forgot_password_mails_a_link_that_works_once(site: Site) -> None:
    other_session = sign_in(site.base, EDITOR)
    unknown = _forgot(site.base, "nobody@messenger.example.ge")
    known = _forgot(site.base, EDITOR)
    assert unknown.status_code == known.status_code == 200
    assert _without_tokens(unknown.text) == _without_tokens(known.text)
    assert "a link to choose a new password is on its way" in known.text
    caught = site.wait_for_mail(1)
    assert [c.rcpt_tos for c in caught] == [[EDITOR]]
    body = caught[0].message.get_body(("plain",))
    assert body is not None
    link = re.search(r"http://\S+/admin/reset/\S+", body.get_content())
    assert link
    path = link.group(0).removeprefix(site.settings.base_url)

    browser = httpx.Client(base_url=site.base)
    page = browser.get(path)
    assert page.status_code == 200 and EDITOR in page.text
    form = form_to(page.text, path)
    weak = browser.post(path, data={**form.hidden, "new": "aaaaaaaaaaaa", "repeat": "aaaaaaaaaaaa"})
    assert weak.status_code == 422 and "too easy to guess" in weak.text
    assert 'Repeats like "aaa" are easy to guess.' in weak.text.replace("&#34;", '"')
    done = browser.post(
        path, data={**form.hidden, "new": NEW, "repeat": NEW}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin"
    assert "(editor)" in browser.get("/admin").text  # signed in by the reset
    assert _signed_out(other_session)  # every other session ended
    assert browser.get(path).status_code == 410  # used
    assert _login(site.base, EDITOR, PASSWORD).status_code == 401
    assert _login(site.base, EDITOR, NEW).status_code == 303
    assert len(site.smtp.caught) == 1  # the unknown address got nothing


def test_forgot_password_is_rate_limited(site: Site) -> None:
    codes = [_forgot(site.base, "nobody@messenger.example.ge").status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]


def test_new_users_are_invited_by_mail(site: Site) -> None:
    admin = sign_in(site.base, ADMIN)
    made = admin.post(
        "/admin/access/users",
        data={"csrf_token": csrf(admin), "email": "new@messenger.example.ge", "role": "viewer"},
    )
    assert "has been sent an invitation" in made.text
    assert "one-time password, once" not in made.text
    caught = site.wait_for_mail(1)
    assert caught[0].message["Subject"] == "You are invited to the Tidings console"
    body = caught[0].message.get_body(("plain",))
    assert body is not None
    path = "/admin/welcome/" + body.get_content().split("/admin/welcome/", 1)[1].split()[0]
    browser = httpx.Client(base_url=site.base)
    page = browser.get(path)
    assert "Welcome to Tidings" in page.text
    form = form_to(page.text, path)
    browser.post(path, data={**form.hidden, "new": NEW, "repeat": NEW})
    assert "(viewer)" in browser.get("/admin").text


def test_without_mail_a_new_user_gets_a_one_time_password(db: Database, settings: Settings) -> None:
    make_user(db, UserRole.admin)
    with web_server(settings, db) as base:
        admin = sign_in(base, ADMIN)
        made = admin.post(
            "/admin/access/users",
            data={"csrf_token": csrf(admin), "email": "new@messenger.example.ge", "role": "viewer"},
        )
        one_time = re.search(r"<code>([^<]+)</code>", made.text)
        assert one_time and "invitation" not in made.text
        assert _login(base, "new@messenger.example.ge", one_time.group(1)).status_code == 303
