"""How long finding a delivery by its Message-ID takes (each provider webhook event, and a
complaint report quoting one), for one edition of N deliveries on PostgreSQL: the lookup as
it was at a given commit (by edition and Message-ID: deliveries have no index on
message_id, so it reads the edition) against today's (by edition and reader, through the
(edition, subscriber) index), in the same run and database.

    .venv/bin/python bench/message_id_lookup.py [--deliveries 200000] [--lookups 200]

N active readers get one edition through the real fan-out (a set-based INSERT ... SELECT);
K of their deliveries, drawn at random, are looked up by each: the old code given the
Message-ID, today's given the Message-ID and the reader found by the event's address (its
look-up is timed too). Printed: the median time per lookup of each, their ratio, and each
one's plan for the middle lookup (the node, its index and the buffers it touched). With a
single edition every reader has one delivery, so the planner may take the index on
subscriber_id alone (as cheap here); once readers have several, it takes the (edition,
subscriber) one (tests/inbound/test_message_id_lookup.py checks that plan).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from common import ROOT, fill_subscribers, fresh_database, module_at
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

sys.path.insert(0, str(ROOT))
from tests.builders import articles
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import load_settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade
from tidings.inbound.targets import Target, of_message_id, readers_of

TARGETS = "src/tidings/inbound/targets.py"
#: The HEAD before the lookup went by reader.
BEFORE = "929cbb3"

Lookup = Callable[[Any, str, str], Target | None]


def _edition(db: Database, deliveries: int) -> list[tuple[str, str]]:
    """One edition of ``deliveries`` deliveries; (Message-ID, reader's address) of each."""
    fill_subscribers(db, 2 * deliveries)  # half of them active
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=1))
    settings = load_settings()
    result = send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    assert result.deliveries == deliveries, result
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
        rows = connection.execute(
            text(
                "SELECT d.message_id, s.email FROM deliveries d"
                " JOIN subscribers s ON s.id = d.subscriber_id"
            )
        )
        return [(row.message_id, row.email) for row in rows]


def _timed(db: Database, lookup: Lookup, sample: list[tuple[str, str]]) -> list[float]:
    """Seconds of each lookup (each must find its delivery), on one session."""
    seconds = []
    with db.session() as session:
        for message_id, email in sample:
            started = time.perf_counter()
            found = lookup(session, message_id, email)
            seconds.append(time.perf_counter() - started)
            assert found is not None and found.email == email, (message_id, found)
    return seconds


def _plan(db: Database, lookup: Lookup, message_id: str, email: str) -> str:
    """The plan of the statement that reads deliveries by Message-ID, in a few words."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Connection, cursor: object, statement: str, params: Any, *_: object) -> None:
        if "deliveries.message_id =" in statement:
            seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.session() as session:
            lookup(session, message_id, email)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    ((statement, params),) = seen
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
            plan = cursor.fetchone()[0][0]["Plan"]
        driver.rollback()
    while plan.get("Relation Name") != "deliveries":
        plan = plan["Plans"][0]
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    index = plan.get("Index Name") or plan.get("Plans", [{}])[0].get("Index Name")
    return f"{plan['Node Type']}{f' on {index}' if index else ''}, {buffers} buffers"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--before", default=BEFORE, help="the commit of the old lookup")
    args = parser.parse_args()
    old = module_at(args.before, TARGETS, f"targets_{args.before}")

    def before(session: Any, message_id: str, email: str) -> Target | None:
        return old.of_message_id(session, message_id)  # type: ignore[no-any-return]

    def now(session: Any, message_id: str, email: str) -> Target | None:
        return of_message_id(session, message_id, readers_of(session, [email]))

    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        os.environ.update(
            {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_DATA_DIR": folder,
                "TIDINGS_SECRET_KEY": "bench-" + "k" * 40,
            }
        )
        db = open_database(url)
        upgrade(db.engine)
        everyone = _edition(db, args.deliveries)
        step = max(1, len(everyone) // args.lookups)
        sample = everyone[::step][: args.lookups]
        lookups = {"before": before, "now": now}
        median = {}
        for name, lookup in lookups.items():
            _timed(db, lookup, sample[:5])  # warm the cache and the connection
            median[name] = statistics.median(_timed(db, lookup, sample))
        middle = sample[len(sample) // 2]
        plans = {name: _plan(db, lookup, *middle) for name, lookup in lookups.items()}
        db.dispose()
    print(f"one edition of {args.deliveries} deliveries, {len(sample)} lookups, median each")
    print(f"by edition and Message-ID ({args.before}): {median['before'] * 1000:8.3f} ms")
    print(f"  {plans['before']}")
    print(f"by edition and reader (now)      : {median['now'] * 1000:8.3f} ms")
    print(f"  {plans['now']}")
    print(f"now vs before: {median['before'] / median['now']:.0f}x faster")


if __name__ == "__main__":
    main()
