"""What one shared sending rate costs the database on PostgreSQL: sends reserved per second
of wall time when workers reserve in batches (as ``deliver/pacing`` does) against one
UPDATE per message (the baseline), in the same run, on the same row.

    .venv/bin/python bench/send_limits.py [--sends 4000] [--threads 4] [--batch 12] [--rounds 5]

Each round, ``--threads`` sessions (one per thread, like worker processes) reserve
``--sends`` sends between them on one relay's clock (a rate high enough that nothing is
refused): once one send per UPDATE, once ``--batch`` per UPDATE. Medians of the rounds and
their ratio are printed.
"""

import argparse
import statistics
import sys
import threading
import time

from common import ROOT, fresh_database

sys.path.insert(0, str(ROOT))
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade
from tidings.deliver import limitadmin, limits
from tidings.deliver.limitkeys import key_for
from tidings.deliver.limits import Reserved

RELAY = "smtp.example.ge:587"


def reserve_all(db: Database, sends: int, threads: int, batch: int) -> float:
    """Wall seconds for ``threads`` sessions to reserve ``sends`` sends, ``batch`` at a time."""
    key = key_for("relay", RELAY)
    per_thread = sends // threads
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        left = per_thread
        while left > 0:
            count = min(batch, left)
            with db.session() as session:
                got = limits.reserve(session, key, count, 1e9)
                session.commit()
            assert isinstance(got, Reserved)
            left -= count

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with fresh_database() as url:
        db = open_database(url)
        upgrade(db.engine)
        limitadmin.set_limit(db, "relay", RELAY, per_second=limits.MAX_PER_SECOND, connections=None)
        single, batched = [], []
        for _ in range(args.rounds):
            single.append(reserve_all(db, args.sends, args.threads, 1))
            batched.append(reserve_all(db, args.sends, args.threads, args.batch))
        db.dispose()
    one, many = statistics.median(single), statistics.median(batched)
    print(f"{args.sends} sends, {args.threads} sessions, medians of {args.rounds} rounds")
    print(f"  one UPDATE per send (baseline): {one:.3f} s, {args.sends / one:,.0f} sends/s")
    print(
        f"  {args.batch} sends per UPDATE:          {many:.3f} s, {args.sends / many:,.0f} sends/s"
    )
    print(f"  ratio: batched reserves {one / many:.1f}x as many sends per second")


if __name__ == "__main__":
    main()
