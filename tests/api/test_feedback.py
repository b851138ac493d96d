"""The API's way back over real HTTP, on SQLite and PostgreSQL: an edition's bounces (editor
tokens and up, paged by cursor), the sender's health (every token), a subscriber's history
and its undo (admin tokens only)."""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from tests.reports.feedback_rows import MAIL, OTHER, POST, Seeded, seed, suppressed_with_history
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Suppression, UserRole


@dataclass
class Api:
    base: str
    db: Database
    seeded: Seeded
    event_id: int
    tokens: dict[UserRole, str]

    def client(self, role: UserRole) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base}/api/v1",
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
        )


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[Api]:
    seeded = seed(db)
    event_id = suppressed_with_history(db, seeded, "lela")
    tokens = {role: create_token(db, f"{role.value} token", role, "test")[1] for role in UserRole}
    with web_server(settings, db) as base:
        yield Api(base, db, seeded, event_id, tokens)


def _error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_an_editions_bounces_page_by_cursor(api: Api) -> None:
    editor = api.client(UserRole.editor)
    path = f"/editions/{api.seeded.edition_id}/bounces"
    emails, cursor = [], None
    while True:
        answer = editor.get(path, params={"limit": 4, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        emails += [item["email"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert [e.split("@")[0] if e else None for e in emails] == [
        "alice", "bob", "dato", "eka", "gia", "irakli", "lela", "maka", None
    ]  # fmt: skip
    first = editor.get(path, params={"limit": 50}).json()["items"]
    dato = next(item for item in first if item["email"] == f"dato@{MAIL}")
    assert (dato["state"], dato["refusal"], dato["reply_code"]) == ("failed", "policy", 550)
    gia = next(item for item in first if item["email"] == f"gia@{MAIL}")
    assert gia["feedback"] == "complained" and gia["refusal"] is None
    assert [c["meaning"] for c in gia["came_back"]] == ["complaint"]
    _error(api.client(UserRole.viewer).get(path), 403, "forbidden")
    _error(editor.get("/editions/999999/bounces"), 404, "not_found")


def test_sender_health_for_every_token(api: Api) -> None:
    health = api.client(UserRole.viewer).get("/sender-health").json()
    assert (health["days"], health["sent"], health["refused"], health["bounced"]) == (7, 7, 3, 2)
    assert [(d["domain"], d["sent"], d["refused"], d["bounced"], d["rate_percent"])
            for d in health["domains"]] == [
        (MAIL, 2, 1, 1, 66.7), (POST, 1, 2, 0, 66.7), ("(unknown)", 0, 0, 1, None)
    ]  # fmt: skip
    assert health["recent"][0]["meaning"] == "ignored" and not health["partial"]
    wide = api.client(UserRole.viewer).get("/sender-health", params={"days": 60}).json()
    assert {d["domain"]: d["refused"] for d in wide["domains"]}[POST] == 3
    _error(api.client(UserRole.viewer).get("/sender-health?days=0"), 422, "invalid_request")
    _error(httpx.get(f"{api.base}/api/v1/sender-health"), 401, "unauthenticated")


def test_history_and_undo_are_for_admin_tokens(api: Api) -> None:
    lela = api.seeded.subscribers["lela"]
    for role in (UserRole.viewer, UserRole.editor):
        _error(api.client(role).get(f"/subscribers/{lela}/history"), 403, "forbidden")
        _error(api.client(role).post(f"/subscriber-events/{api.event_id}/undo"), 403, "forbidden")
    admin = api.client(UserRole.admin)
    history = admin.get(f"/subscribers/{lela}/history").json()
    assert [(h["kind"], h["undoable"]) for h in history] == [
        ("suppressed", True),
        ("bounce_point", True),
    ]
    assert history[0]["detail"] == "hard_bounce: 550 5.1.1 No such user"

    done = admin.post(f"/subscriber-events/{api.event_id}/undo")
    assert done.status_code == 200, done.text
    assert done.json() == {
        "event_id": api.event_id,
        "changed": f"removed the suppression of lela@{OTHER} (hard_bounce)",
    }
    with api.db.session() as session:
        assert (
            session.scalar(select(Suppression).where(Suppression.email == f"lela@{OTHER}")) is None
        )
    history = admin.get(f"/subscribers/{lela}/history").json()
    assert [h["kind"] for h in history] == ["unsuppressed", "suppressed", "bounce_point"]
    undone = history[1]
    assert undone["undone_at"] and undone["undone_by"].startswith("api token")
    assert not undone["undoable"]
    _error(admin.post(f"/subscriber-events/{api.event_id}/undo"), 409, "conflict")
    _error(admin.post("/subscriber-events/999999/undo"), 404, "not_found")
    _error(admin.get("/subscribers/999999/history"), 404, "not_found")


def test_the_document_names_the_new_paths(api: Api) -> None:
    document = httpx.get(f"{api.base}/api/v1/openapi.json").json()
    assert {
        "/editions/{edition_id}/bounces",
        "/sender-health",
        "/subscribers/{subscriber_id}/history",
        "/subscriber-events/{event_id}/undo",
    } <= set(document["paths"])


def test_an_editions_counts_carry_what_came_back(api: Api) -> None:
    """Beside its states, an edition shows the deliveries that bounced or were complained
    about after the relay took them (three bounced and one complaint are seeded)."""
    answer = api.client(UserRole.viewer).get(f"/editions/{api.seeded.edition_id}")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["bounced"], answer.json()["complained"]) == (3, 1)
