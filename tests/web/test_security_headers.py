"""Every response of the app carries the security policy: walked from the app's own route
table, signed in as an admin, over real HTTP."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.routing import Mount

from tests.builders import articles, newsletter, subscribers
from tests.web.console import csrf, make_user, sign_in
from tests.webserver import web_server
from tidings.audience.tokens import Purpose, sign
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Subscription, UserRole
from tidings.web.app import create_app

#: A value for each path parameter: real where a real thing exists, else a miss.
PATH_VALUES = {"slug": "daily", "token": "not-a-token", "key": "no-such-key", "change": "pause"}

# One database is enough: the policy does not depend on storage.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _route_table(settings: Settings, db: Database) -> list[tuple[str, str]]:
    """(method, path) of every route of the app and of its mounted API."""
    app = create_app(settings, db)
    found = [(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops]
    for route in app.routes:
        if isinstance(route, Mount):
            schema = route.app.openapi()  # type: ignore[attr-defined]
            found += [
                (m.upper(), route.path + p) for p, ops in schema["paths"].items() for m in ops
            ]
    return found


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)


def assert_policy(response: httpx.Response) -> None:
    """The headers every response must carry."""
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") in ("DENY", "SAMEORIGIN"), where
    assert headers.get("referrer-policy") == "same-origin", where
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors" in csp and "default-src" in csp, where
    assert "'unsafe-eval'" not in csp and "script-src *" not in csp, where
    if "script-src" in csp:
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0], where
    assert headers.get("cache-control") == "no-store", where


@pytest.fixture
def admin_client(db: Database, settings: Settings) -> Iterator[tuple[httpx.Client, Settings]]:
    """An admin signed in to an app with the built-in catcher (so the mailbox is there)."""
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 2)
    with web_server(settings, db) as base:
        client = sign_in(base, make_user(db, UserRole.admin))
        yield client, settings
        client.close()


def test_every_route_answers_with_the_policy(
    admin_client: tuple[httpx.Client, Settings], db: Database
) -> None:
    client, settings = admin_client
    token = csrf(client)
    routes = [r for r in _route_table(settings, db) if r != ("POST", "/admin/logout")]
    assert len(routes) > 50  # the walk really covers the app
    codes = set()
    for method, path in routes:
        data = {"csrf_token": token} if method == "POST" else None
        response = client.request(method, _fill(path), data=data)
        codes.add(response.status_code)
        assert_policy(response)
    assert 200 in codes and 404 in codes  # real pages and misses were both seen
    for extra in ("/no/such/page", "/api/v1/no-such", "/healthz", "/sample/feed.xml"):
        assert_policy(client.get(extra))
    assert_policy(client.post("/admin/logout", data={"csrf_token": token}))
    assert_policy(httpx.get(f"{client.base_url}/admin/access"))  # anonymous: a redirect


def test_pages_with_a_readers_address_are_never_stored(
    admin_client: tuple[httpx.Client, Settings], db: Database
) -> None:
    client, settings = admin_client
    with db.session() as session:
        subscription_id = session.query(Subscription.id).limit(1).scalar()
    assert subscription_id is not None
    secret = settings.secret
    for path in (
        f"/preferences/{sign(secret, Purpose.preferences, subscription_id)}",
        f"/u/{sign(secret, Purpose.unsubscribe, subscription_id)}",
        f"/confirm/{sign(secret, Purpose.confirm, subscription_id)}",
    ):
        page = httpx.get(f"{client.base_url}{path}")
        assert page.status_code == 200 and "reader" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert_policy(page)


def test_framed_mail_keeps_its_sandbox_and_only_the_console_frames_it(
    admin_client: tuple[httpx.Client, Settings],
) -> None:
    client, _ = admin_client
    frame = client.get("/admin/editions/next/daily/preview.html")
    assert frame.status_code == 200
    csp = frame.headers["content-security-policy"]
    assert csp.startswith("sandbox") and "frame-ancestors 'self'" in csp
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    page = client.get("/admin/editions/next/daily")
    assert page.status_code == 200
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
