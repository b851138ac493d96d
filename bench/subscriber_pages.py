"""Console subscriber list at scale: keyset pages against OFFSET pages, on PostgreSQL.

    .venv/bin/python bench/subscriber_pages.py [--subscribers 1000000] [--repeat 15]

Fills a throw-away database with N subscribers (half active, a quarter pending, a quarter
unsubscribed) in one INSERT ... SELECT each, then times the console's own ``search`` for the
first and for the last page, unfiltered and filtered by newsletter and status, beside the
same pages fetched the usual way (ORDER BY id OFFSET k LIMIT 50). Prints medians and ratios.
"""

import argparse
import sys
import time

from common import ROOT, fill_subscribers, fresh_database, median_seconds
from sqlalchemy import text

sys.path.insert(0, str(ROOT))
from tidings.audience.search import PAGE_SIZE, AudienceFilter, search
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade
from tidings.db.models import SubscriptionStatus


def offset_page(db: Database, offset: int, status: str | None) -> list[int]:
    where = (
        "WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.subscriber_id = subscribers.id"
        " AND s.newsletter_id = 1 AND s.status = :status)"
        if status
        else ""
    )
    with db.session() as session:
        rows = session.execute(
            text(f"SELECT id FROM subscribers {where} ORDER BY id OFFSET :k LIMIT :n"),  # noqa: S608
            {"k": offset, "n": PAGE_SIZE, "status": status},
        )
        return [row[0] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    n = args.subscribers
    with fresh_database() as url:
        db = open_database(url)
        upgrade(db.engine)
        started = time.perf_counter()
        fill_subscribers(db, n)
        print(f"filled {n:,} subscribers in {time.perf_counter() - started:.1f} s")
        active = AudienceFilter(1, SubscriptionStatus.active, "")
        last_after = n - PAGE_SIZE
        cases = [
            (
                "all, first page",
                lambda: search(db, AudienceFilter(), 0),
                lambda: offset_page(db, 0, None),
            ),
            (
                "all, last page",
                lambda: search(db, AudienceFilter(), last_after),
                lambda: offset_page(db, n - PAGE_SIZE, None),
            ),
            (
                "active, first page",
                lambda: search(db, active, 0),
                lambda: offset_page(db, 0, "active"),
            ),
            (
                "active, last page",
                lambda: search(db, active, last_after),
                lambda: offset_page(db, n // 2 - PAGE_SIZE, "active"),
            ),
        ]
        print(f"{'page':<22}{'keyset ms':>12}{'OFFSET ms':>12}{'OFFSET/keyset':>15}")
        for label, keyset, offset in cases:
            k = 1000 * median_seconds(keyset, args.repeat)
            o = 1000 * median_seconds(offset, args.repeat)
            print(f"{label:<22}{k:>12.2f}{o:>12.2f}{o / k:>14.1f}x")
        contains = 1000 * median_seconds(
            lambda: search(db, AudienceFilter(query="reader99999")), args.repeat
        )
        print(f"text search 'reader99999' (substring, scans): {contains:.1f} ms median")
        db.dispose()


if __name__ == "__main__":
    main()
