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
from tests.webserver import serve, web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Subscription, UserRole
from tidings.mail.tokens import Purpose, sign
from tidings.web.app import create_app
from tidings.web.security import PUBLIC_CACHE

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
    # Only the public archive may be cached (and only what it found); the rest is personal.
    public = response.request.url.path.startswith("/archive/") and response.status_code == 200
    assert headers.get("cache-control") == (PUBLIC_CACHE if public else "no-store"), where
    if public:
        assert "'nonce-" not in csp, where  # a cached page must not share a script nonce


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


# --- errors: what the app answers itself carries the policy too -------------------------

KB = 1024


@pytest.fixture
def small_cap(db: Database, settings: Settings) -> Iterator[httpx.Client]:
    """The real app with the smallest body cap, plus one route that fails (a 500)."""
    newsletter(db)
    app = create_app(settings.model_copy(update={"max_request_bytes": 64 * KB}), db)

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test-boom", boom)
    with serve(app) as base, httpx.Client(base_url=base) as client:
        yield client


def test_a_413_carries_the_policy_wherever_the_cap_answers(small_cap: httpx.Client) -> None:
    big = b"x" * (100 * KB)
    refused = [
        # A route that reads the form: the cap is hit while it reads.
        small_cap.post("/subscribe/daily", data={"email": "a@example.ge", "name": "x" * 100 * KB}),
        # A route that answers (405) without reading: the declared length is refused.
        small_cap.post("/healthz", content=big),
        # The API, declared and chunked, with no token: refused before anything is read.
        small_cap.post("/api/v1/subscribers/import", content=big),
        small_cap.post("/api/v1/subscribers/import", content=iter([big[:KB]] * 100)),
        # A chunked form: no declared length, cut off while read.
        small_cap.post(
            "/subscribe/daily",
            content=iter([b"email=a%40example.ge&name="] + [big[:KB]] * 100),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]
    assert [r.status_code for r in refused][:2] == [413, 413]
    assert refused[2].status_code in (401, 413) and refused[3].status_code == 401
    assert refused[4].status_code == 413
    for answer in refused:
        assert_policy(answer)


def test_misses_wrong_methods_and_bugs_carry_the_policy(small_cap: httpx.Client) -> None:
    answers = {
        404: [small_cap.get("/no/such/page"), small_cap.get("/api/v1/no-such")],
        405: [small_cap.put("/healthz"), small_cap.delete("/api/v1/newsletters")],
        500: [small_cap.get("/test-boom")],
    }
    for status, found in answers.items():
        for answer in found:
            assert answer.status_code == status, (answer.request.url, answer.status_code)
            assert_policy(answer)


def test_the_public_archive_may_be_cached_and_nothing_else(
    admin_client: tuple[httpx.Client, Settings], db: Database
) -> None:
    client, _ = admin_client
    for path in ("/archive/daily", "/archive/daily/feed.atom"):
        answer = httpx.get(f"{client.base_url}{path}")
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == PUBLIC_CACHE == "public, max-age=300"
        assert_policy(answer)
    for path in ("/archive/no-such", "/archive/daily/999999", "/subscribe/daily", "/healthz"):
        answer = httpx.get(f"{client.base_url}{path}")
        assert answer.headers["cache-control"] == "no-store", path
    assert client.get("/admin").headers["cache-control"] == "no-store"
