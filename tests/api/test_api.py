"""The JSON API over real HTTP: tokens and roles, the error shape, pushes from a CMS,
subscribers, editions with Idempotency-Key, and cursor pages."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import event, func, select

from tests.builders import newsletter, subscribers
from tests.webserver import web_server
from tidings.access.apitokens import create_token, revoke_token
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, UserRole


@dataclass
class Api:
    base: str
    db: Database
    tokens: dict[UserRole, tuple[int, str]]

    def client(self, role: UserRole) -> httpx.Client:
        secret = self.tokens[role][1]
        return httpx.Client(
            base_url=f"{self.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
        )


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[Api]:
    newsletter(db)
    subscribers(db, "daily", 3)
    tokens = {role: create_token(db, f"{role.value} token", role, "test") for role in UserRole}
    with web_server(settings, db) as base:
        yield Api(base, db, tokens)


def _error(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def test_tokens_are_required_and_revocable(api: Api) -> None:
    _error(httpx.get(f"{api.base}/api/v1/newsletters"), 401, "unauthenticated")
    bad = httpx.get(f"{api.base}/api/v1/newsletters", headers={"Authorization": "Bearer tid_x"})
    _error(bad, 401, "unauthenticated")
    viewer = api.client(UserRole.viewer)
    assert viewer.get("/newsletters").status_code == 200
    revoke_token(api.db, api.tokens[UserRole.viewer][0])
    _error(viewer.get("/newsletters"), 401, "unauthenticated")


def test_roles_limit_what_a_token_may_do(api: Api) -> None:
    viewer, editor = api.client(UserRole.viewer), api.client(UserRole.editor)
    article = {"url": "https://messenger.example.ge/a/1", "title": "Budget passes"}
    _error(
        viewer.post("/newsletters/daily/articles", json={"articles": [article]}), 403, "forbidden"
    )
    assert (
        editor.post("/newsletters/daily/articles", json={"articles": [article]}).status_code == 200
    )
    new = {"email": "nino@example.ge", "newsletter": "daily"}
    _error(editor.post("/subscribers", json=new), 403, "forbidden")
    _error(editor.delete("/subscribers/1"), 403, "forbidden")
    assert api.client(UserRole.admin).post("/subscribers", json=new).status_code == 201


def test_validation_errors_name_the_field(api: Api) -> None:
    admin = api.client(UserRole.admin)
    error = _error(
        admin.post("/subscribers", json={"email": "x@example.ge"}), 422, "invalid_request"
    )
    assert {"field": "newsletter", "problem": "Field required"} in error["details"]  # type: ignore[operator]
    refused = admin.post("/subscribers", json={"email": "not-an-address", "newsletter": "daily"})
    assert "@-sign" in str(_error(refused, 422, "invalid_input")["message"])
    _error(admin.get("/newsletters/nope"), 404, "not_found")
    _error(admin.get("/no/such/path"), 404, "not_found")


def test_cms_push_then_one_off_edition_with_idempotency_key(api: Api) -> None:
    editor = api.client(UserRole.editor)
    now = datetime.now(UTC)
    pushed = editor.post(
        "/newsletters/daily/articles",
        json={
            "articles": [
                {
                    "url": f"https://messenger.example.ge/news/{i}",
                    "title": f"Abashidze names envoy {i}",
                    "section": "Diplomacy",
                    "published": (now - timedelta(minutes=i)).isoformat(),
                }
                for i in range(3)
            ]
            + [{"title": "no url"}]
        },
    ).json()
    assert pushed["new"] == 3 and len(pushed["rejected"]) == 1
    ids = [a["id"] for a in editor.get("/newsletters/daily/articles").json()][:2]
    body = {"newsletter": "daily", "article_ids": ids, "subject": "Envoys"}
    key = {"Idempotency-Key": "send-envoys-1"}
    first = editor.post("/editions", json=body, headers=key)
    again = editor.post("/editions", json=body, headers=key)
    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and first.json()["total"] == 3
    other = editor.post("/editions", json={**body, "subject": "Other"}, headers=key)
    _error(other, 422, "invalid_input")
    with api.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Edition)) == 1
        assert session.scalar(select(func.count()).select_from(Delivery)) == 3
    edition_id = first.json()["id"]
    assert editor.post(f"/editions/{edition_id}/pause").json()["status"] == "paused"
    _error(editor.post(f"/editions/{edition_id}/pause"), 422, "invalid_input")
    cancelled = editor.post(f"/editions/{edition_id}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"] == {"cancelled": 3}


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db``'s engine while the block runs (the test's server
    shares it)."""
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_edition_list_pages_by_id_in_a_bounded_number_of_queries(api: Api) -> None:
    """A page of editions with their progress costs the same queries for 2 rows or 12 (it
    was three more per row)."""
    editor = api.client(UserRole.editor)
    pushed = editor.post(
        "/newsletters/daily/articles",
        json={"articles": [{"url": "https://messenger.example.ge/p", "title": "Paged"}]},
    )
    assert pushed.status_code == 200, pushed.text
    article = editor.get("/newsletters/daily/articles").json()[0]["id"]
    created = [
        editor.post("/editions", json={"newsletter": "daily", "article_ids": [article]}).json()
        for _ in range(12)
    ]
    for edition in created[:4]:  # over: their counts are stored, not counted again
        assert editor.post(f"/editions/{edition['id']}/cancel").status_code == 200
    editor.get("/editions", params={"limit": 1})  # the token's first use is behind us
    with _statements(api.db) as few:
        assert len(editor.get("/editions", params={"limit": 2}).json()["items"]) == 2
    with _statements(api.db) as many:
        assert len(editor.get("/editions", params={"limit": 12}).json()["items"]) == 12
    assert len(many) == len(few), many
    pages, cursor = [], None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = editor.get("/editions", params=params).json()
        pages.append([item["id"] for item in page["items"]])
        for item in page["items"]:
            assert item == editor.get(f"/editions/{item['id']}").json()
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [edition["id"] for edition in created]
    assert pages == [ids[:5], ids[5:10], ids[10:]]
    assert pages[0] and editor.get(f"/editions/{ids[0]}").json()["counts"] == {"cancelled": 3}
    assert editor.get(f"/editions/{ids[5]}").json()["counts"] == {"queued": 3}
    daily = editor.get("/editions", params={"newsletter": "daily", "limit": 200}).json()
    assert [item["id"] for item in daily["items"]] == ids and daily["next_cursor"] is None
    assert editor.get("/editions", params={"newsletter": "nope"}).json()["items"] == []


def test_scheduled_edition_waits_as_a_draft(api: Api) -> None:
    editor = api.client(UserRole.editor)
    editor.post(
        "/newsletters/daily/articles",
        json={"articles": [{"url": "https://messenger.example.ge/x", "title": "Later"}]},
    )
    when = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    created = editor.post(
        "/editions", json={"newsletter": "daily", "send": "scheduled", "scheduled_for": when}
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "scheduled" and created.json()["total"] == 0
    past = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    late = editor.post(
        "/editions", json={"newsletter": "daily", "send": "scheduled", "scheduled_for": past}
    )
    _error(late, 422, "invalid_input")


def test_scheduled_for_is_an_instant_in_the_future(api: Api) -> None:
    """The API's side of the one send-time rule (compose/sendtime.py): an offset is required,
    the past is refused in the console's words, a time beyond the calendar is a 422."""
    editor = api.client(UserRole.editor)
    editor.post(
        "/newsletters/daily/articles",
        json={"articles": [{"url": "https://messenger.example.ge/t", "title": "Timed"}]},
    )

    def scheduled(when: str | None) -> httpx.Response:
        body = {"newsletter": "daily", "send": "scheduled", "scheduled_for": when}
        return editor.post("/editions", json=body)

    for naive in ("2099-01-01T08:00:00", None):
        refused = _error(scheduled(naive), 422, "invalid_input")
        assert refused["message"] == "scheduled_for: give a time with its UTC offset."
    past = _error(scheduled("2000-01-01T08:00:00+04:00"), 422, "invalid_input")
    assert past["message"] == "The send time is in the past: use send now instead."
    beyond = _error(scheduled("9999-12-31T23:59:59-14:00"), 422, "invalid_input")
    assert "out of range" in str(beyond["message"])
    tbilisi = scheduled("2099-01-01T08:00:00+04:00")
    assert tbilisi.status_code == 201 and tbilisi.json()["scheduled_for"].startswith(
        "2099-01-01T04:00:00"
    )
    with api.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Edition)) == 1


def test_subscribers_crud_import_and_cursor_pages(api: Api) -> None:
    admin = api.client(UserRole.admin)
    imported = admin.post(
        "/subscribers/import",
        json={
            "newsletter": "daily",
            "confirmed": True,
            "subscribers": [{"email": f"bulk{i}@example.ge", "city": "Batumi"} for i in range(60)]
            + [{"email": "broken"}],
        },
    ).json()
    # Positions are indexes into the list: the 61st record is at 60.
    assert imported["created"] == 60 and imported["invalid"][0]["position"] == 60
    seen: list[str] = []
    cursor = None
    while True:
        params = {"newsletter": "daily", **({"cursor": cursor} if cursor else {})}
        page = admin.get("/subscribers", params=params).json()
        seen += [item["email"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 63 and len(set(seen)) == 63
    subscriber_id = next(
        item["id"] for item in admin.get("/subscribers", params={"q": "bulk7@"}).json()["items"]
    )
    changed = admin.patch(
        f"/subscribers/{subscriber_id}",
        json={
            "name": "Tamar\nKhutsishvili",
            "timezone": "Asia/Tbilisi",
            "attributes": {"city": ""},
        },
    ).json()
    assert changed["name"] == "Tamar Khutsishvili" and changed["attributes"] == {}
    subscription_id = changed["subscriptions"][0]["id"]
    left = admin.patch(f"/subscriptions/{subscription_id}", json={"status": "unsubscribed"})
    assert left.json()["subscriptions"][0]["status"] == "unsubscribed"
    assert admin.delete(f"/subscribers/{subscriber_id}").status_code == 204
    _error(admin.get(f"/subscribers/{subscriber_id}"), 404, "not_found")


def test_a_nul_in_one_record_refuses_that_record_alone(api: Api) -> None:
    """PostgreSQL cannot store a NUL in JSON: one such attribute failed the whole bulk import
    there (422, no position) while SQLite stored it. Now both refuse that record alone, with
    its position and the reason, and store the others; a PATCH is refused the same way."""
    admin = api.client(UserRole.admin)
    records = [
        {"email": "first@example.ge", "city": "Batumi"},
        {"email": "nul-value@example.ge", "city": "Bat\u0000umi"},
        {"email": "nul-key@example.ge", "ci\u0000ty": "Kutaisi"},
        {"email": "last@example.ge", "city": "Poti"},
    ]
    answer = admin.post(
        "/subscribers/import",
        json={"newsletter": "daily", "confirmed": True, "subscribers": records},
    )
    assert answer.status_code == 200, answer.text
    imported = answer.json()
    assert imported["created"] == 2 and imported["subscribed"] == 2
    assert [error["position"] for error in imported["invalid"]] == [1, 2]
    assert all("NUL character" in error["reason"] for error in imported["invalid"])
    assert "'city'" in imported["invalid"][0]["reason"]
    found = {
        item["email"]
        for item in admin.get("/subscribers", params={"q": "@example.ge"}).json()["items"]
    }
    assert {"first@example.ge", "last@example.ge"} <= found
    assert not {"nul-value@example.ge", "nul-key@example.ge"} & found
    first = next(
        item["id"] for item in admin.get("/subscribers", params={"q": "first@"}).json()["items"]
    )
    refused = admin.patch(f"/subscribers/{first}", json={"attributes": {"city": "Ba\u0000tumi"}})
    assert "NUL character" in str(_error(refused, 422, "invalid_input")["message"])
    assert admin.get(f"/subscribers/{first}").json()["attributes"] == {"city": "Batumi"}


def test_adding_and_changing_answer_with_the_subscriber(api: Api) -> None:
    """POST /subscribers and PATCH /subscriptions answer with the subscriber the service
    names, whoever else holds a similar address."""
    admin = api.client(UserRole.admin)
    added = admin.post(
        "/subscribers",
        json={"email": "Nino@Example.GE", "name": "Nino", "newsletter": "daily", "confirmed": True},
    )
    assert added.status_code == 201, added.text
    nino = added.json()
    assert nino["email"] == "nino@example.ge" and nino["subscriptions"][0]["status"] == "active"
    again = admin.post("/subscribers", json={"email": "nino@example.ge", "newsletter": "daily"})
    assert again.status_code == 201 and again.json()["id"] == nino["id"]
    subscription_id = nino["subscriptions"][0]["id"]
    left = admin.patch(f"/subscriptions/{subscription_id}", json={"status": "unsubscribed"})
    assert left.json()["id"] == nino["id"]
    assert left.json()["subscriptions"][0]["status"] == "unsubscribed"
    _error(admin.patch("/subscriptions/999999", json={"status": "active"}), 404, "not_found")


def test_newsletters_page_by_id(api: Api) -> None:
    for slug in ("weekly", "sport", "culture"):
        newsletter(api.db, slug)
    viewer = api.client(UserRole.viewer)
    first = viewer.get("/newsletters", params={"limit": 3}).json()
    assert [n["slug"] for n in first["items"]] == ["daily", "weekly", "sport"]
    rest = viewer.get("/newsletters", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [n["slug"] for n in rest["items"]] == ["culture"] and rest["next_cursor"] is None
    assert viewer.get("/newsletters", params={"cursor": "c999999"}).json()["items"] == []


def test_patch_changes_what_is_given_and_refuses_null_for_a_setting(api: Api) -> None:
    """Null for a setting that must have a value (timezone, schedule, sender...) was a 500:
    it is a 422 naming the field, in the API's error shape, and nothing changes. Null stays
    the way to remove a reply-to address or a weekly schedule."""
    admin = api.client(UserRole.admin)
    before = admin.get("/newsletters/daily").json()
    for setting in ("timezone", "schedule", "sender", "name", "min_articles", "template_set"):
        refused = _error(
            admin.patch("/newsletters/daily", json={setting: None}), 422, "invalid_request"
        )
        assert str(refused["message"]).startswith(f"{setting}: ")
        assert refused["details"] == [
            {
                "field": setting,
                "problem": "Value error, give a value, or leave it out to keep the current one",
            }
        ]
    assert admin.get("/newsletters/daily").json() == before
    changed = admin.patch(
        "/newsletters/daily",
        json={"timezone": "Europe/Berlin", "weekly_schedule": "0 9 * * 1", "reply_to": None},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        **before,
        "timezone": "Europe/Berlin",
        "weekly_schedule": "0 9 * * 1",
        "reply_to": None,
    }
    assert admin.get("/newsletters/daily").json() == changed.json()
    cleared = admin.patch("/newsletters/daily", json={"weekly_schedule": None}).json()
    assert cleared["weekly_schedule"] is None and cleared["timezone"] == "Europe/Berlin"
    bad = _error(
        admin.patch("/newsletters/daily", json={"timezone": "Mars/Olympus"}), 422, "invalid_input"
    )
    assert "IANA" in str(bad["message"])
    _error(admin.patch("/newsletters/nope", json={"name": "Nope"}), 404, "not_found")
    document = httpx.get(f"{api.base}/api/v1/openapi.json").json()
    patch_schema = document["components"]["schemas"]["NewsletterPatch"]["properties"]
    assert patch_schema["timezone"]["type"] == "string" and "anyOf" not in patch_schema["timezone"]
    assert {"type": "null"} in patch_schema["reply_to"]["anyOf"]


def test_reader_settings_in_the_resource_at_create_and_patch(api: Api) -> None:
    admin = api.client(UserRole.admin)
    shown = admin.get("/newsletters/daily").json()
    assert {k: shown[k] for k in READER_DEFAULTS} == READER_DEFAULTS
    created = admin.post(
        "/newsletters",
        json={
            "slug": "evening",
            "name": "The Evening Messenger",
            "sender": "The Messenger <evening@messenger.example.ge>",
            "reader_time": True,
            "postal_address": "The Messenger\r\n14 Rustaveli Avenue\nTbilisi 0108",
            "welcome_enabled": False,
            "utm_source": "messenger",
        },
    )
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in READER_DEFAULTS} == {
        "reader_time": True,
        "postal_address": "The Messenger\n14 Rustaveli Avenue\nTbilisi 0108",
        "footer_text": None,
        "welcome_enabled": False,
        "show_images": True,
        "utm_source": "messenger",
    }
    changed = admin.patch(
        "/newsletters/evening",
        json={"show_images": False, "footer_text": "Written in Tbilisi.", "utm_source": None},
    ).json()
    assert (changed["show_images"], changed["footer_text"], changed["utm_source"]) == (
        False,
        "Written in Tbilisi.",
        None,
    )
    assert changed["reader_time"] is True and changed["postal_address"].count("\n") == 2
    refused = _error(
        admin.patch("/newsletters/evening", json={"welcome_enabled": None}), 422, "invalid_request"
    )
    assert str(refused["message"]).startswith("welcome_enabled: ")
    bad = _error(
        admin.patch("/newsletters/evening", json={"utm_source": "a&b=c"}), 422, "invalid_input"
    )
    assert str(bad["message"]).startswith("The UTM source 'a&b=c' must be letters, digits")
    long = _error(
        admin.patch("/newsletters/evening", json={"footer_text": "word " * 300}),
        422,
        "invalid_input",
    )
    assert "at most 1,000" in str(long["message"])
    assert admin.get("/newsletters/evening").json() == changed  # nothing changed
    document = httpx.get(f"{api.base}/api/v1/openapi.json").json()
    patch_schema = document["components"]["schemas"]["NewsletterPatch"]["properties"]
    assert patch_schema["reader_time"]["type"] == "boolean"
    assert {"type": "null"} in patch_schema["postal_address"]["anyOf"]


READER_DEFAULTS = {
    "reader_time": False,
    "postal_address": None,
    "footer_text": None,
    "welcome_enabled": True,
    "show_images": True,
    "utm_source": None,
}


def test_openapi_document_is_served(api: Api) -> None:
    document = httpx.get(f"{api.base}/api/v1/openapi.json").json()
    assert document["info"]["title"] == "Tidings API"
    assert {"/editions", "/subscribers", "/newsletters/{slug}/articles"} <= set(document["paths"])
