"""What sending at each reader's own time costs the scheduler, on PostgreSQL.

    .venv/bin/python bench/reader_time_tick.py [--subscribers 200000] [--zones 40]

One newsletter, N subscribers (half active) spread over Z zones (plus readers with no zone
and an invalid one). In the same run and database, for the newsletter sending at one time
for all (the baseline) and then at each reader's time:
- the first tick of a slot: compose, render and fan out (one edition, or one per zone);
- a steady tick (every edition already there), which the every-minute job repeats: for
  reader time one DISTINCT over the readers' zones plus one look-up per zone.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

from common import ROOT, fill_subscribers, fresh_database
from sqlalchemy import text

sys.path.insert(0, str(ROOT))
from tests.builders import articles
from tidings.config import Settings, load_settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade
from tidings.schedule.slots import ZoneMemory, serve_due_slots


def _timed(
    db: Database, settings: Settings, now: datetime, memory: ZoneMemory | None = None
) -> tuple[float, int, int]:
    """Seconds for one tick, editions created, deliveries queued."""
    started = time.perf_counter()
    outcomes = serve_due_slots(db, settings, now, memory)
    seconds = time.perf_counter() - started
    created = [o for o in outcomes if o.result.created]
    return seconds, len(created), sum(o.result.deliveries for o in created)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--zones", type=int, default=40)
    args = parser.parse_args()
    zones = sorted(z for z in available_timezones() if "/" in z)[::7][: args.zones]
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        os.environ.update(
            {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_DATA_DIR": folder,
                "TIDINGS_SECRET_KEY": "bench-" + "k" * 40,
            }
        )
        settings = load_settings().model_copy(update={"schedule_grace_hours": 24})
        db = open_database(url)
        upgrade(db.engine)
        fill_subscribers(db, args.subscribers)
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE subscribers SET timezone = CASE WHEN id % 50 = 0 THEN NULL "
                    "WHEN id % 50 = 1 THEN 'Mars/Olympus' "
                    "ELSE (CAST(:zones AS text[]))[1 + id % :n] END"
                ),
                {"zones": zones, "n": len(zones)},
            )
            connection.execute(text("ANALYZE"))
        day = datetime(2026, 12, 1, tzinfo=UTC)
        articles(db, "daily", 96, day - timedelta(days=1), step=timedelta(minutes=30), seen=day)
        end_of_day = day + timedelta(hours=23, minutes=59)
        rows = []
        for reader_time, tick in ((False, end_of_day), (True, end_of_day + timedelta(days=1))):
            with db.engine.begin() as connection:
                connection.execute(
                    text("UPDATE newsletters SET reader_time = :on"), {"on": reader_time}
                )
            first = _timed(db, settings, tick)
            steady = min(_timed(db, settings, tick)[0] for _ in range(5))
            memory = ZoneMemory()
            _timed(db, settings, tick, memory)
            kept = min(_timed(db, settings, tick, memory)[0] for _ in range(5))
            rows.append((reader_time, first, steady, kept))
        db.dispose()
    print(f"{args.subscribers} subscribers, {len(zones)} zones (+ none and invalid)")
    for reader_time, (first_s, editions, deliveries), steady_s, kept_s in rows:
        name = "reader time     " if reader_time else "one time for all"
        print(
            f"{name}: first tick {first_s:6.2f} s ({editions} editions, {deliveries} "
            f"deliveries); steady tick {steady_s * 1000:7.1f} ms, "
            f"{kept_s * 1000:7.1f} ms with the zones kept (the scheduler's case)"
        )
    (_, base_first, base_steady, base_kept), (_, zone_first, zone_steady, zone_kept) = rows
    print(f"ratio first tick              : {zone_first[0] / base_first[0]:.1f}x")
    print(f"ratio steady tick             : {zone_steady / base_steady:.1f}x")
    print(f"ratio steady tick, zones kept : {zone_kept / base_kept:.1f}x")


if __name__ == "__main__":
    main()
