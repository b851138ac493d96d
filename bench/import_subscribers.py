"""Import N generated subscribers into PostgreSQL and compare with a plain COPY of the file.

    .venv/bin/python bench/import_subscribers.py [--rows 1000000] [--repeat 1]

Both runs use the same CSV in the same PostgreSQL server, each into a fresh database, so the
ratio is meaningful on a noisy shared machine. The Tidings figure includes everything the
import does: address validation (email-validator), staging with COPY, merging duplicates and
the INSERT ... SELECT of subscribers and subscriptions.
"""

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from common import fresh_database

from tidings.audience.imports.importer import import_subscribers
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.db.engine import open_database
from tidings.db.migrate import upgrade


def generate(path: Path, rows: int) -> None:
    rng = random.Random(1)
    zones = ["Asia/Tbilisi", "Europe/Berlin", "Europe/London", "America/New_York", ""]
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,locale,timezone,city\n")
        for i in range(rows):
            zone = rng.choice(zones)
            out.write(f"reader{i}@example{i % 1000}.ge,Reader {i},ka,{zone},City {i % 300}\n")


def time_tidings(path: Path) -> float:
    with fresh_database() as url:
        db = open_database(url)
        upgrade(db.engine)
        create_newsletter(db, NewsletterSpec(slug="bench", name="Bench", sender="b@example.org"))
        started = time.perf_counter()
        report = import_subscribers(db, "bench", path, confirmed=True, batch_size=50_000)
        elapsed = time.perf_counter() - started
        db.dispose()
    assert report.created == report.subscribed == report.rows_read, report
    return elapsed


def time_plain_copy(path: Path) -> float:
    with fresh_database() as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as connection:
            connection.execute(
                "CREATE TABLE plain (email text, name text, locale text, timezone text, city text)"
            )
            started = time.perf_counter()
            with (
                connection.cursor() as cursor,
                cursor.copy("COPY plain FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
                path.open("rb") as source,
            ):
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            connection.commit()
            return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "subscribers.csv"
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.rows} rows, {size_mb:.0f} MB CSV, {args.repeat} run(s) each")
        copy_times, tidings_times = [], []
        for _ in range(args.repeat):
            copy_times.append(time_plain_copy(path))
            tidings_times.append(time_tidings(path))
        copy_s = statistics.median(copy_times)
        tidings_s = statistics.median(tidings_times)
        for label, seconds in (("plain COPY", copy_s), ("tidings import", tidings_s)):
            rate = args.rows / seconds
            print(f"{label:<15}: {seconds:7.2f} s  {rate:>10,.0f} rows/s (median)")
        print(f"ratio          : the import takes {tidings_s / copy_s:.1f}x the time of plain COPY")


if __name__ == "__main__":
    main()
