"""Rate limits in the database, tested directly on SQLite and PostgreSQL: the limit per client
and window, clients apart, rules apart, no address stored, and parallel checks that never
let more than the limit through."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tidings.access.ratelimit import RateLimit, allow
from tidings.db.engine import Database
from tidings.db.models import RateEvent

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
