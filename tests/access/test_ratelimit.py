"""Rate limits in the database, tested directly on SQLite and PostgreSQL: the limit per client
and window, clients apart, rules apart, no address stored, parallel checks that never let
more than the limit through, and the upkeep's prune of buckets nobody comes back to."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tidings.access.ratelimit import LONGEST_WINDOW, RateLimit, allow, prune
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import RateEvent
from tidings.db.types import utcnow
from tidings.schedule.scheduler import ledger_upkeep

SECRET = "a-secret-for-the-rate-limit-tests"
THREE_A_MINUTE = RateLimit("signup", 3, timedelta(minutes=1))


def test_the_limit_holds_per_client_within_the_window(db: Database) -> None:
    answers = [allow(db, SECRET, THREE_A_MINUTE, "203.0.113.7") for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert allow(db, SECRET, THREE_A_MINUTE, "203.0.113.8")  # another client
    other_rule = RateLimit("login", 3, timedelta(minutes=1))
    assert allow(db, SECRET, other_rule, "203.0.113.7")  # another rule


def test_events_older_than_the_window_no_longer_count_and_are_deleted(db: Database) -> None:
    for _ in range(3):
        assert allow(db, SECRET, THREE_A_MINUTE, "203.0.113.7")
    assert not allow(db, SECRET, THREE_A_MINUTE, "203.0.113.7")
    with db.session() as session:  # a minute passes
        session.execute(update(RateEvent).values(at=datetime.now(UTC) - timedelta(minutes=1)))
        session.commit()
    assert allow(db, SECRET, THREE_A_MINUTE, "203.0.113.7")
    with db.session() as session:
        assert len(session.scalars(select(RateEvent)).all()) == 1  # the old ones are gone


def test_the_address_is_never_stored(db: Database) -> None:
    allow(db, SECRET, THREE_A_MINUTE, "203.0.113.7")
    allow(db, "another-secret-entirely-0123456789", THREE_A_MINUTE, "203.0.113.7")
    with db.session() as session:
        buckets = session.scalars(select(RateEvent.bucket)).all()
    assert len(buckets) == 2 and len(set(buckets)) == 2  # keyed: another secret, another name
    assert all(b.startswith("signup:") and "203.0.113" not in b for b in buckets)


def test_parallel_checks_never_let_more_than_the_limit_through(db: Database) -> None:
    rule = RateLimit("burst", 5, timedelta(minutes=1))
    start = threading.Barrier(16)
    answers: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        start.wait()
        allowed = allow(db, SECRET, rule, "198.51.100.1")
        with lock:
            answers.append(allowed)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 16
    assert answers.count(True) == 5


def _events(db: Database) -> list[tuple[str, datetime]]:
    with db.session() as session:
        return sorted(
            (bucket, at) for bucket, at in session.execute(select(RateEvent.bucket, RateEvent.at))
        )


def test_the_upkeep_deletes_old_events_of_buckets_nobody_comes_back_to(
    db: Database, settings: Settings
) -> None:
    for client in ("203.0.113.7", "203.0.113.8"):
        assert allow(db, SECRET, THREE_A_MINUTE, client)
    (gone, _), (kept, _) = _events(db)
    old = utcnow() - LONGEST_WINDOW - timedelta(minutes=1)
    recent = utcnow() - LONGEST_WINDOW + timedelta(hours=1)  # past its rule's window: kept
    with db.session() as session:
        session.execute(update(RateEvent).where(RateEvent.bucket == gone).values(at=old))
        session.execute(update(RateEvent).where(RateEvent.bucket == kept).values(at=recent))
        session.add(RateEvent(bucket=kept, at=old))
        session.commit()
    assert ledger_upkeep(db, settings) == []
    assert [bucket for bucket, _ in _events(db)] == [kept]


def test_the_prune_goes_in_batches_until_nothing_old_is_left(db: Database) -> None:
    now = utcnow()
    with db.session() as session:
        for n in range(5):
            session.add(RateEvent(bucket=f"signup:old{n}", at=now - LONGEST_WINDOW))
        session.add(RateEvent(bucket="signup:new", at=now - LONGEST_WINDOW + timedelta(seconds=1)))
        session.commit()
    assert prune(db, now, batch_size=2) == 5
    assert [bucket for bucket, _ in _events(db)] == ["signup:new"]
    assert prune(db, now, batch_size=2) == 0


def test_a_rule_whose_events_the_prune_would_cut_short_is_refused() -> None:
    assert RateLimit("longest", 1, LONGEST_WINDOW).window == LONGEST_WINDOW
    with pytest.raises(ValueError, match="LONGEST_WINDOW"):
        RateLimit("too-long", 1, LONGEST_WINDOW + timedelta(seconds=1))
