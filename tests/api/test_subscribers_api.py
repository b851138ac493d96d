"""The subscribers API over real HTTP, on both databases: GET /subscribers honours ``limit``
and its items carry the fields of GET /subscribers/{id}; POST /suppressions answers 201 with
the entry and takes a reason; ``send_confirmation`` mails a pending subscriber the
confirmation link (caught by a real SMTP server) at most once in ten minutes, and without it
nothing is sent; the history endpoint shows each event's source."""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.builders import newsletter, subscribers
from tests.web.site import Site, eventually, site_with_mail
from tidings.access.apitokens import create_token
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole


@dataclass
class Api:
    site: Site
    client: httpx.Client


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[Api]:
    newsletter(db)
    subscribers(db, "daily", 5)
    _, secret = create_token(db, "admin token", UserRole.admin, "test")
    with site_with_mail(db, settings) as site:
        client = httpx.Client(
            base_url=f"{site.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
        )
        yield Api(site, client)
        client.close()


def test_the_list_honours_limit_and_its_items_equal_the_single_read(api: Api) -> None:
    api.client.patch("/subscribers/2", json={"locale": "ka-GE", "attributes": {"city": "Gori"}})
    first = api.client.get("/subscribers", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["email"] for item in page["items"]] == ["reader0@example.ge", "reader1@example.ge"]
    assert page["next_cursor"]
    rest = api.client.get("/subscribers", params={"limit": 200, "cursor": page["next_cursor"]})
    assert [item["email"] for item in rest.json()["items"]] == [
        "reader2@example.ge",
        "reader3@example.ge",
        "reader4@example.ge",
    ]
    assert rest.json()["next_cursor"] is None
    for item in page["items"]:
        single = api.client.get(f"/subscribers/{item['id']}").json()
        assert item == single
    second = page["items"][1]
    assert second["locale"] == "ka-GE" and second["attributes"] == {"city": "Gori"}
    assert second["subscriptions"][0]["status"] == "active"
    assert api.client.get("/subscribers", params={"limit": 0}).status_code == 422
    assert api.client.get("/subscribers", params={"limit": 201}).status_code == 422


def test_post_suppression_answers_201_with_the_entry_and_its_reason(api: Api) -> None:
    made = api.client.post(
        "/suppressions",
        json={"email": "Reader1@Example.GE", "reason": "complaint", "detail": "phoned in"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["email"] == "reader1@example.ge" and body["reason"] == "complaint"
    assert body["detail"] == "phoned in" and body["id"] > 0 and body["created_at"]
    again = api.client.post("/suppressions", json={"email": "reader1@example.ge"})
    assert again.status_code == 200 and again.json() == body
    plain = api.client.post("/suppressions", json={"email": "nobody@example.ge"})
    assert plain.status_code == 201 and plain.json()["reason"] == "manual"
    assert (
        api.client.post(
            "/suppressions", json={"email": "x@example.ge", "reason": "whim"}
        ).status_code
        == 422
    )
    # The suppressed reader is no longer listed as active, and the list says so.
    active = api.client.get("/subscribers", params={"status": "active"}).json()["items"]
    assert "reader1@example.ge" not in [item["email"] for item in active]
    one = api.client.get("/subscribers", params={"status": "suppressed"}).json()["items"]
    assert [(i["email"], i["suppressed"], i["subscriptions"][0]["shown_as"]) for i in one] == [
        ("reader1@example.ge", True, "suppressed")
    ]
    history = api.client.get(f"/subscribers/{one[0]['id']}/history").json()
    assert (history[0]["kind"], history[0]["source"]) == ("suppressed", "api")


def test_send_confirmation_mails_a_pending_subscriber_once(api: Api) -> None:
    quiet = api.client.post("/subscribers", json={"email": "eka@example.ge", "newsletter": "daily"})
    assert quiet.status_code == 201 and quiet.json()["subscriptions"][0]["status"] == "pending"
    asked = api.client.post(
        "/subscribers",
        json={"email": "nino@example.ge", "newsletter": "daily", "send_confirmation": True},
    )
    assert asked.status_code == 201, asked.text
    (caught,) = api.site.wait_for_mail(1)
    assert caught.rcpt_tos == ["nino@example.ge"]
    message = caught.message
    assert "/confirm/" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    nino = asked.json()["id"]
    # The same limit as a sign-up: asking again at once sends nothing more.
    again = api.client.post(
        "/subscribers",
        json={"email": "nino@example.ge", "newsletter": "daily", "send_confirmation": True},
    )
    assert again.status_code == 201

    def mailed_event() -> bool:
        kinds = [e["kind"] for e in api.client.get(f"/subscribers/{nino}/history").json()]
        return "confirm_mailed" in kinds

    eventually(mailed_event)
    history = api.client.get(f"/subscribers/{nino}/history").json()
    assert [(e["kind"], e["source"]) for e in reversed(history)] == [
        ("added", "api"),
        ("confirm_mailed", "api"),
    ]
    assert [c.rcpt_tos for c in api.site.smtp.caught] == [["nino@example.ge"]]  # not Eka


def test_an_import_with_send_confirmation_mails_the_new_pending_ones(api: Api) -> None:
    answer = api.client.post(
        "/subscribers/import",
        json={
            "newsletter": "daily",
            "send_confirmation": True,
            "subscribers": [{"email": "a@example.ge"}, {"email": "reader0@example.ge"}],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["confirmations_queued"] == 1  # reader0 was active already
    (caught,) = api.site.wait_for_mail(1)
    assert caught.rcpt_tos == ["a@example.ge"]
