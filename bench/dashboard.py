"""The console dashboard at scale, on PostgreSQL.

    .venv/bin/python bench/dashboard.py [--subscribers 1000000] [--days 90] [--repeat 5]

Fills a throw-away database with N subscribers and one daily edition per day for D days,
each sent to every active subscriber (N/2 deliveries a day), lets the ledger upkeep store
each finished edition's counts (once), then times the dashboard's ``overview`` and
``history`` beside a bare COUNT(*) of the deliveries (what any answer that counts the ledger
itself would at least cost).
"""

import argparse
import time

from common import fill_subscribers, fresh_database, median_seconds
from sqlalchemy import text

from tidings.db.engine import open_database
from tidings.db.migrate import upgrade
from tidings.db.types import utcnow
from tidings.deliver.ledger import finish_editions
from tidings.reports.insights import history, overview

EDITIONS = """
INSERT INTO editions (id, newsletter_id, kind, cadence, slot, status, cutoff_at, subject,
    created_at, started_at, finished_at)
SELECT d, 1, 'scheduled', 'daily', now() - make_interval(days => d), 'sent',
    now() - make_interval(days => d), 'Edition ' || d, now() - make_interval(days => d),
    now() - make_interval(days => d), now() - make_interval(days => d)
FROM generate_series(1, :days) AS d
"""
DELIVERIES = """
INSERT INTO deliveries (edition_id, subscriber_id, state, attempts, next_attempt_at,
    message_id, sent_at, created_at)
SELECT e.id, s.subscriber_id, 'sent', 1, e.started_at, '<b.' || e.id || '.' || s.subscriber_id
    || '@x>', e.started_at + interval '5 minutes', e.started_at
FROM editions e JOIN subscriptions s ON s.newsletter_id = 1 AND s.status = 'active'
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with fresh_database() as url:
        db = open_database(url)
        upgrade(db.engine)
        started = time.perf_counter()
        fill_subscribers(db, args.subscribers)
        with db.engine.begin() as connection:
            connection.execute(text(EDITIONS), {"days": args.days})
            connection.execute(text(DELIVERIES))
            connection.execute(text("ANALYZE"))
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
        print(
            f"filled {args.subscribers:,} subscribers and {rows:,} deliveries "
            f"in {time.perf_counter() - started:.1f} s"
        )
        # What a worker's upkeep does once when editions end: store their final counts.
        started = time.perf_counter()
        with db.session() as session:
            finish_editions(session, utcnow())
            session.commit()
        taken = time.perf_counter() - started
        print(f"final counts of {args.days} editions stored once in {taken:.1f} s")

        def bare_count() -> None:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT count(*) FROM deliveries")).scalar_one()

        floor = 1000 * median_seconds(bare_count, args.repeat)
        for label, work in (
            ("overview", lambda: overview(db)),
            ("history", lambda: history(db, None)),
        ):
            taken = 1000 * median_seconds(work, args.repeat)
            print(
                f"{label:<10}{taken:>10.1f} ms median   ({taken / floor:.2f}x a bare COUNT(*) "
                f"of the deliveries, {floor:.1f} ms)"
            )
        db.dispose()


if __name__ == "__main__":
    main()
