"""The send pool, on real claims and a real SMTP server: each job sent and judged, held back
while its edition is stopped or its lease is lost or running out, the rest handed back when
the pool stops."""

import time
from collections.abc import Iterator

import pytest

from tests.deliver.sendpool import Pool, claimed_jobs
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, EditionStatus
from tidings.mail.status import BounceKind


@pytest.fixture
def relay(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def test_each_job_is_sent_and_judged(
    db: Database, relay: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = relay
    _edition_id, jobs = claimed_jobs(db, settings, readers=4)
    refused = jobs[0].recipient.email
    handler.behaviour.rcpt_replies[refused] = "550 5.1.1 no such user"
    pool = Pool(settings, jobs)
    outcomes = pool.run()
    assert [o.delivery_id for o in outcomes] == [j.claim.delivery_id for j in jobs]
    assert [o.state for o in outcomes] == [DeliveryState.failed] + [DeliveryState.sent] * 3
    assert outcomes[0].bounce == BounceKind.hard
    assert {o.lease_token for o in outcomes} == {"w:1"}
    assert sorted(handler.recipients()) == sorted(j.recipient.email for j in jobs[1:])
    assert pool.pool.rate.per_second() > 0


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (EditionStatus.paused, DeliveryState.queued),
        (EditionStatus.cancelled, DeliveryState.cancelled),
    ],
)
def test_jobs_of_a_stopped_edition_are_not_sent(
    db: Database,
    relay: tuple[RecordingHandler, Settings],
    status: EditionStatus,
    state: DeliveryState,
) -> None:
    handler, settings = relay
    edition_id, jobs = claimed_jobs(db, settings, readers=3)
    pool = Pool(settings, jobs)
    pool.stopped[edition_id] = status
    outcomes = pool.run()
    assert [(o.state, o.reply) for o in outcomes] == [(state, f"not sent: edition {status}")] * 3
    assert handler.recipients() == []


def test_jobs_whose_lease_was_lost_are_neither_sent_nor_written(
    db: Database, relay: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = relay
    _edition_id, jobs = claimed_jobs(db, settings, readers=3)
    pool = Pool(settings, jobs)
    pool.book.renewed(["w:1"], frozenset(), time.monotonic())  # the database took them back
    assert pool.run() == []
    assert handler.recipients() == []
    assert pool.stats.not_started == 3
    assert pool.book.tokens() == []  # forgotten: they are not ours


def test_jobs_whose_lease_may_run_out_are_handed_back(
    db: Database, relay: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = relay
    _edition_id, jobs = claimed_jobs(db, settings, readers=2)
    pool = Pool(settings, jobs, leased=False)  # no renewal has vouched for the lease
    outcomes = pool.run()
    reply = "released: the lease could not be renewed in time"
    assert [(o.state, o.reply) for o in outcomes] == [(DeliveryState.queued, reply)] * 2
    assert all(o.next_attempt_at == o.at for o in outcomes)  # due again at once
    assert handler.recipients() == []
    assert pool.stats.not_started == 2


def test_stopping_hands_back_the_jobs_not_started(
    db: Database, relay: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = relay
    _edition_id, jobs = claimed_jobs(db, settings, readers=3)
    pool = Pool(settings, jobs)
    outcomes = pool.run(start=False)  # queued, but no connection took them yet
    reply = "released by a stopping worker"
    assert [(o.state, o.reply) for o in outcomes] == [(DeliveryState.queued, reply)] * 3
    assert handler.recipients() == []
