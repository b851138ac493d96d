"""One state machine at every front door: the console, the CLI and the API refuse a move the
table does not allow with the same sentence, and show the same sending rate, computed over
the time actually spent sending (11 messages in 2 s are 5.5 per second)."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.conftest import Cli
from tests.deliver.ledgerrows import draft, sending
from tests.web.console import csrf, make_user, sign_in
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, Edition, EditionStatus, UserRole
from tidings.deliver import ledger
from tidings.reports.progress import edition_progress, sending_rate


@dataclass
class Doors:
    base: str
    editor: httpx.Client
    viewer: httpx.Client
    api: httpx.Client


@pytest.fixture
def doors(db: Database, settings: Settings) -> Iterator[Doors]:
    make_user(db, UserRole.editor)
    make_user(db, UserRole.viewer)
    _, secret = create_token(db, "editor token", UserRole.editor, "test")
    with web_server(settings, db) as base:
        yield Doors(
            base,
            sign_in(base, "editor@messenger.example.ge"),
            sign_in(base, "viewer@messenger.example.ge"),
            httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}),
        )


def _sent_in_two_seconds(db: Database, settings: Settings) -> int:
    """An edition of 11 readers started at T and whose last message went at T + 2 s."""
    made = sending(db, settings, readers=11)
    start = datetime.now(UTC) - timedelta(minutes=5)
    with db.session() as session:
        session.execute(
            update(Edition).where(Edition.id == made.edition_id).values(started_at=start)
        )
        claims = ledger.claim_due(session, "w:1", 11, timedelta(seconds=30), datetime.now(UTC))
        outcomes = [
            claim.outcome(DeliveryState.sent, 250, "ok", start + timedelta(seconds=0.2 * (i + 1)))
            for i, claim in enumerate(claims[:10])
        ]
        outcomes.append(claims[10].outcome(DeliveryState.sent, 250, "ok", outcomes[-1].at))
        assert ledger.record_outcomes(session, outcomes).closed == (made.edition_id,)
        session.commit()
    return made.edition_id


def test_the_rate_is_over_the_time_spent_sending(
    db: Database, settings: Settings, doors: Doors, cli: Cli
) -> None:
    edition_id = _sent_in_two_seconds(db, settings)
    progress = edition_progress(db, edition_id)
    assert progress.status == EditionStatus.sent and progress.per_second == pytest.approx(5.5)
    json = doors.viewer.get(f"/admin/editions/{edition_id}/progress.json").json()
    assert json["per_second"] == 5.5
    assert doors.api.get(f"/editions/{edition_id}").json()["per_second"] == 5.5
    page = doors.viewer.get(f"/admin/editions/{edition_id}").text
    assert '<span id="rate">5.5</span> per second' in page
    shown = cli("edition", "status", str(edition_id))
    assert shown.exit_code == 0 and "rate: 5.50/s" in shown.stdout
    # While sending, the time runs to now; paused or over, to the last message sent.
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    last = start + timedelta(seconds=2)
    now = start + timedelta(seconds=10)
    assert sending_rate(11, start, last, EditionStatus.sending, now) == 1.1
    assert sending_rate(11, start, last, EditionStatus.paused, now) == 5.5
    assert sending_rate(3, start, start, EditionStatus.sent, now) == 3.0  # at least 1 s
    assert sending_rate(0, None, None, EditionStatus.scheduled, now) == 0.0


@pytest.mark.parametrize("change", ["pause", "cancel"])
def test_every_front_door_refuses_a_sent_edition_with_one_sentence(
    db: Database, settings: Settings, doors: Doors, cli: Cli, change: str
) -> None:
    edition_id = _sent_in_two_seconds(db, settings)
    sentence = f"Edition {edition_id} has already been sent."
    page = doors.editor.get(f"/admin/editions/{edition_id}").text
    assert '<form method="post" action="/admin/editions/' not in page  # no buttons
    answer = doors.editor.post(
        f"/admin/editions/{edition_id}/{change}", data={"csrf_token": csrf(doors.editor)}
    )
    assert answer.status_code == 422 and sentence in answer.text
    refused = doors.api.post(f"/editions/{edition_id}/{change}")
    assert refused.status_code == 422 and refused.json()["error"]["message"] == sentence
    shown = cli("edition", change, str(edition_id))
    assert shown.exit_code == 1 and sentence in shown.output
    assert edition_progress(db, edition_id).status == EditionStatus.sent


def test_the_buttons_are_the_tables_and_viewers_see_none(
    db: Database, settings: Settings, doors: Doors, cli: Cli
) -> None:
    made = sending(db, settings, readers=2)
    path = f"/admin/editions/{made.edition_id}"
    page = doors.editor.get(path).text
    assert f'action="{path}/pause"' in page and f'action="{path}/cancel"' in page
    assert f'action="{path}/resume"' not in page and f'action="{path}/send"' not in page
    assert 'action="/admin/editions/' not in doors.viewer.get(path).text
    resumed = cli("edition", "resume", str(made.edition_id))
    assert resumed.exit_code == 1
    assert f"Edition {made.edition_id} is sending: it cannot be resumed." in resumed.output
    refused = doors.api.post(f"/editions/{made.edition_id}/resume")
    assert refused.json()["error"]["message"] == (
        f"Edition {made.edition_id} is sending: it cannot be resumed."
    )
    assert cli("edition", "pause", str(made.edition_id)).exit_code == 0
    page = doors.editor.get(path).text
    assert f'action="{path}/resume"' in page and f'action="{path}/pause"' not in page


def test_the_cli_list_reads_at_80_columns(
    db: Database, settings: Settings, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = _sent_in_two_seconds(db, settings)
    scheduled = draft(db, settings, readers=1, slug="weekly").edition_id
    monkeypatch.setenv("COLUMNS", "80")
    listed = cli("edition", "list")
    assert listed.exit_code == 0, listed.output
    print(listed.stdout)
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.split()[:1] == [str(scheduled)])
    assert "scheduled" in row and "0/0" in row
    with db.session() as session:
        at = session.get_one(Edition, scheduled).scheduled_for
    assert at is not None and f"{at:%Y-%m-%d %H:%M}" in row  # the time it goes out
    row = next(line for line in lines if line.split()[:1] == [str(done)])
    assert "sent" in row and "11/11" in row and "5.50/s" in row
