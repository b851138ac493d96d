"""PATCH /api/v1/editions/{id} over real HTTP on both databases: a scheduled edition's
subject, intro, articles and time change until it starts; then 409 with one sentence."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.builders import articles, newsletter, subscribers
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.compose.oneoff import scheduled_draft
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole


@dataclass
class Api:
    client: httpx.Client
    db: Database
    article_ids: list[int]


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[Api]:
    newsletter(db)
    ids = articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 2)
    _, secret = create_token(db, "editor token", UserRole.editor, "test")
    with web_server(settings, db) as base:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=headers) as client:
            yield Api(client, db, ids)


def test_patch_changes_a_scheduled_edition_until_it_starts(api: Api) -> None:
    created = api.client.post(
        "/editions",
        json={
            "newsletter": "daily",
            "article_ids": api.article_ids[:2],
            "subject": "Morning",
            "send": "scheduled",
            "scheduled_for": "2099-01-01T08:00:00+04:00",
        },
    )
    assert created.status_code == 201, created.text
    edition_id = created.json()["id"]
    changed = api.client.patch(
        f"/editions/{edition_id}",
        json={
            "subject": "Evening",
            "intro_markdown": "- first\n- second",
            "article_ids": [api.article_ids[2], api.article_ids[0]],
            "send_at": "2099-01-02T19:30:00+04:00",
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["subject"] == "Evening" and body["status"] == "scheduled"
    assert body["scheduled_for"].startswith("2099-01-02T15:30:00")
    draft = scheduled_draft(api.db, edition_id)
    assert draft.article_ids == [api.article_ids[2], api.article_ids[0]]
    assert draft.intro_markdown == "- first\n- second"
    only_subject = api.client.patch(f"/editions/{edition_id}", json={"subject": "Night"})
    assert only_subject.status_code == 200 and only_subject.json()["subject"] == "Night"
    assert scheduled_draft(api.db, edition_id).article_ids == draft.article_ids

    naive = api.client.patch(f"/editions/{edition_id}", json={"send_at": "2099-01-03T08:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["message"] == (
        "The send time (send_at) needs its UTC offset, as in 2099-01-01T08:00+04:00."
    )
    past = api.client.patch(f"/editions/{edition_id}", json={"send_at": "2000-01-03T08:00Z"})
    assert past.status_code == 422 and "in the past" in past.json()["error"]["message"]
    empty = api.client.patch(f"/editions/{edition_id}", json={"article_ids": []})
    assert empty.status_code == 422

    sent = api.client.post(f"/editions/{edition_id}/send")
    assert sent.status_code == 200 and sent.json()["status"] == "sending"
    late = api.client.patch(f"/editions/{edition_id}", json={"subject": "Too late"})
    assert late.status_code == 409, late.text
    assert late.json()["error"] == {
        "code": "conflict",
        "message": f"Edition {edition_id} is sending: only a scheduled edition can be changed.",
        "details": [],
    }
    missing = api.client.patch("/editions/999999", json={"subject": "x"})
    assert missing.status_code == 404
