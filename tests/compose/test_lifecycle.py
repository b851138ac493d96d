"""Scheduled one-off editions start on time; pause, resume and cancel move an edition's state
once, and workers only send while it is sending."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.compose.lifecycle import (
    cancel_edition,
    pause_edition,
    resume_edition,
    send_draft_now,
    start_due_drafts,
)
from tidings.compose.oneoff import schedule_one_off, send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver.runner import run_worker
from tidings.errors import InvalidInput


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def _drain(db: Database, settings: Settings) -> None:
    asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))


def _status(db: Database, edition_id: int) -> EditionStatus:
    with db.session() as session:
        return session.get_one(Edition, edition_id).status


def _states(db: Database, edition_id: int) -> list[DeliveryState]:
    with db.session() as session:
        return sorted(
            session.scalars(select(Delivery.state).where(Delivery.edition_id == edition_id))
        )


def _setup(db: Database, readers: int = 3) -> list[int]:
    newsletter(db)
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", readers)
    return ids


def test_a_scheduled_draft_starts_on_time_for_who_is_subscribed_then(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    _, settings = smtp
    ids = _setup(db, readers=2)
    at = datetime.now(UTC) + timedelta(hours=1)
    edition_id = schedule_one_off(db, settings, "daily", OneOff(article_ids=ids), at)
    assert _status(db, edition_id) == EditionStatus.scheduled and _states(db, edition_id) == []
    assert start_due_drafts(db, settings, at - timedelta(minutes=1)) == []
    subscribers(db, "daily", 3)  # a third reader joins before the send
    assert start_due_drafts(db, settings, at) == [edition_id]
    assert start_due_drafts(db, settings, at) == []  # started once only
    assert _status(db, edition_id) == EditionStatus.sending
    with db.session() as session:
        queued = session.execute(
            select(Delivery.state, Delivery.next_attempt_at).where(
                Delivery.edition_id == edition_id
            )
        ).all()
    assert queued == [(DeliveryState.queued, at)] * 3  # due at the scheduled time
    with pytest.raises(InvalidInput):
        schedule_one_off(db, settings, "daily", OneOff(article_ids=ids), datetime.now(UTC))


def test_paused_editions_send_nothing_until_resumed(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    _setup(db)
    edition_id = send_one_off(db, settings, "daily", OneOff(article_ids=[])).edition_id
    pause_edition(db, edition_id)
    _drain(db, settings)
    assert handler.caught == [] and _status(db, edition_id) == EditionStatus.paused
    with pytest.raises(InvalidInput):
        pause_edition(db, edition_id)
    resume_edition(db, edition_id)
    _drain(db, settings)
    assert len(handler.caught) == 3 and _status(db, edition_id) == EditionStatus.sent
    with pytest.raises(InvalidInput):
        cancel_edition(db, edition_id)  # nothing left to cancel once sent
    with db.session() as session:
        assert session.get_one(Edition, edition_id).final_counts == {"sent": 3}


def test_cancel_keeps_the_ledger_and_marks_what_was_not_sent(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    _setup(db)
    edition_id = send_one_off(db, settings, "daily", OneOff(article_ids=[])).edition_id
    cancel_edition(db, edition_id)
    _drain(db, settings)
    assert handler.caught == []
    assert _status(db, edition_id) == EditionStatus.cancelled
    assert _states(db, edition_id) == [DeliveryState.cancelled] * 3
    with pytest.raises(InvalidInput):
        resume_edition(db, edition_id)
    with db.session() as session:  # settled: its counts are kept, the ledger not re-read
        assert session.get_one(Edition, edition_id).final_counts == {"cancelled": 3}


def test_a_draft_can_be_sent_at_once_but_only_once(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    ids = _setup(db)
    later = datetime.now(UTC) + timedelta(days=1)
    edition_id = schedule_one_off(db, settings, "daily", OneOff(article_ids=ids), later)
    send_draft_now(db, settings, edition_id)
    with pytest.raises(InvalidInput):
        send_draft_now(db, settings, edition_id)
    _drain(db, settings)
    assert len(handler.caught) == 3 and _status(db, edition_id) == EditionStatus.sent
    assert start_due_drafts(db, settings, later) == []
