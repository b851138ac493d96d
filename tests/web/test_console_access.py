"""Every console route refuses anonymous visitors and the wrong role; every form refuses a
post without its CSRF token (the RFC 8058 one-click POST is the one exception)."""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.builders import newsletter, subscribers
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import form_to
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Subscription, SubscriptionStatus, UserRole
from tidings.mail.tokens import Purpose, sign
from tidings.web.app import CONSOLE_ROUTERS

#: Signing in, a forgotten password and an invitation need no session (each has its own
#: CSRF token, and the last two a signed link).
PUBLIC_POSTS = {"/admin/login", "/admin/forgot", "/admin/reset/{token}", "/admin/welcome/{token}"}
SELF_SERVICE = {"/admin/logout", "/admin/password"}  # any signed-in role
#: POSTs an editor may make; every other console POST is for admins only.
EDITOR_POSTS = {
    "/admin/editions/new",
    "/admin/editions/{edition_id}/{change}",
    "/admin/newsletters/{slug}/poll",
}
VALUES = {
    "slug": "daily",
    "edition_id": "1",
    "subscriber_id": "1",
    "suppression_id": "1",
    "source_id": "1",
    "key": "abcdefgh1234",
    "change": "pause",
}


def _routes() -> list[tuple[str, str]]:
    found = []
    for router in CONSOLE_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute) and route.path.startswith("/admin")
            found.extend((method, route.path) for method in sorted(route.methods))
    return found


def _url(path: str) -> str:
    for name, value in VALUES.items():
        path = path.replace("{" + name + "}", value)
    return path


@dataclass
class Site:
    base: str
    routes: list[tuple[str, str]]
    db: Database


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    subscribers(db, "daily", 1)
    for role in UserRole:
        make_user(db, role)
    with web_server(settings, db) as base:
        yield Site(base, _routes(), db)


def test_the_console_has_the_expected_routes(site: Site) -> None:
    posts = {path for method, path in site.routes if method == "POST"}
    assert posts >= EDITOR_POSTS | SELF_SERVICE | PUBLIC_POSTS
    assert len(site.routes) > 25


def test_anonymous_visitors_are_sent_to_sign_in(site: Site) -> None:
    # A visitor with a valid pre-sign-in form token: past the CSRF guard, stopped by sign-in.
    anonymous = httpx.Client(base_url=site.base)
    token = form_to(anonymous.get("/admin/login").text, "/admin/login").hidden["csrf_token"]
    for method, path in site.routes:
        if path in PUBLIC_POSTS or path == "/admin/login":
            continue
        data = {"csrf_token": token} if method == "POST" else None
        answer = anonymous.request(method, _url(path), data=data, follow_redirects=False)
        assert answer.status_code == 303, (method, path)
        assert answer.headers["location"].startswith("/admin/login"), (method, path)


@pytest.mark.parametrize("role", [UserRole.viewer, UserRole.editor])
def test_roles_are_refused_what_they_may_not_do(site: Site, role: UserRole) -> None:
    client = sign_in(site.base, f"{role.value}@messenger.example.ge")
    token = csrf(client)
    for method, path in site.routes:
        if method != "POST" or path in PUBLIC_POSTS | SELF_SERVICE:
            continue
        allowed = role == UserRole.editor and path in EDITOR_POSTS
        answer = client.post(_url(path), data={"csrf_token": token}, follow_redirects=False)
        if allowed:
            assert answer.status_code != 403 or "form has expired" in answer.text, path
        else:
            assert answer.status_code == 403, (role, path, answer.status_code)
            assert "Your role may not do this" in answer.text
    # Reading is open to every role.
    assert client.get("/admin/subscribers").status_code == 200
    assert client.get("/admin/subscribers/import", follow_redirects=False).status_code == 403


def test_every_console_form_needs_its_token(site: Site) -> None:
    admin = sign_in(site.base, "admin@messenger.example.ge")
    for method, path in site.routes:
        if method != "POST":
            continue
        for data in ({}, {"csrf_token": "forged"}):
            answer = admin.post(_url(path), data=data, follow_redirects=False)
            assert answer.status_code == 403, (path, data)
            assert "This form has expired" in answer.text
    # A token from another session does not work either.
    other = sign_in(site.base, "editor@messenger.example.ge")
    answer = admin.post("/admin/editions/1/pause", data={"csrf_token": csrf(other)})
    assert answer.status_code == 403


def test_public_forms_need_their_token_except_one_click(site: Site, settings: Settings) -> None:
    with site.db.session() as session:
        subscription = session.query(Subscription).one()
    leave = sign(settings.secret, Purpose.unsubscribe, subscription.id)
    prefs = sign(settings.secret, Purpose.preferences, subscription.id)
    confirm = sign(settings.secret, Purpose.confirm, subscription.id)
    paths = [
        f"/u/{leave}",
        f"/u/{leave}/undo",
        f"/preferences/{prefs}",
        f"/preferences/{prefs}/leave-all",
        f"/confirm/{confirm}",
    ]
    for path in paths:
        assert httpx.post(site.base + path, data={"csrf_token": "x"}).status_code == 403, path
    with site.db.session() as session:
        assert session.get_one(Subscription, subscription.id).status == SubscriptionStatus.active
    one_click = httpx.post(
        site.base + f"/u/{sign(settings.secret, Purpose.unsubscribe, subscription.id)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert one_click.status_code == 200


def test_sign_in_is_rate_limited_and_a_wrong_password_fails(site: Site) -> None:
    client = httpx.Client(base_url=site.base)
    codes = []
    for _ in range(11):
        page = client.get("/admin/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = client.post(
            "/admin/login",
            data={"csrf_token": token, "email": "admin@messenger.example.ge", "password": "nope"},
        )
        codes.append(answer.status_code)
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_one_time_password_must_be_changed_first(site: Site) -> None:
    from tidings.access.accounts import create_user

    _, one_time = create_user(site.db, "new@messenger.example.ge", UserRole.editor)
    client = sign_in(site.base, "new@messenger.example.ge", one_time)
    answer = client.get("/admin/subscribers", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/password"
    page = client.get("/admin/password")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    new = "a-much-better-password"
    changed = client.post(
        "/admin/password",
        data={"csrf_token": token, "current": one_time, "new": new, "repeat": new},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert client.get("/admin/subscribers").status_code == 200
    # The old session died with the old password.
    stale = sign_in(site.base, "new@messenger.example.ge", new)
    assert stale.get("/admin").status_code == 200
