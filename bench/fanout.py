"""How long the set-based fan-out of one edition takes for N subscribers on PostgreSQL.

    .venv/bin/python bench/fanout.py [--subscribers 1000000]

Beside it, in the same run and database, a plain INSERT ... SELECT of the same number of
rows into an unindexed table with no constraints: the floor for writing that many rows.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import fresh_database
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.builders import articles
from tidings.audience.imports.importer import import_subscribers
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import load_settings
from tidings.db.engine import open_database
from tidings.db.migrate import upgrade
from tidings.db.types import utcnow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        os.environ.update(
            {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_DATA_DIR": folder,
                "TIDINGS_SECRET_KEY": "bench-" + "k" * 40,
            }
        )
        settings = load_settings()
        db = open_database(url)
        upgrade(db.engine)
        create_newsletter(db, NewsletterSpec(slug="bench", name="Bench", sender="b@example.org"))
        people = Path(folder) / "people.csv"
        people.write_text(
            "email\n" + "".join(f"r{i}@example{i % 100}.ge\n" for i in range(args.subscribers))
        )
        import_subscribers(db, "bench", people, confirmed=True, batch_size=100_000)
        ids = articles(db, "bench", 3, utcnow())
        started = time.perf_counter()
        result = send_one_off(db, settings, "bench", OneOff(article_ids=ids))
        fan_out_s = time.perf_counter() - started
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE plain (a int, b int, c text)"))
            started = time.perf_counter()
            connection.execute(
                text("INSERT INTO plain SELECT 1, subscriber_id, 'queued' FROM subscriptions")
            )
        plain_s = time.perf_counter() - started
        db.dispose()
    assert result.deliveries == args.subscribers
    print(f"{args.subscribers} subscribers")
    print(f"compose + fan-out (one transaction): {fan_out_s:6.2f} s")
    print(f"plain INSERT ... SELECT, no indexes : {plain_s:6.2f} s")
    print(f"ratio                              : {fan_out_s / plain_s:.1f}x")


if __name__ == "__main__":
    main()
