"""Import N generated subscribers into PostgreSQL and compare with a plain COPY of the file.

    .venv/bin/python bench/import_subscribers.py [--rows 1000000] [--repeat 1]
        [--batch-size 10000] [--baseline [COMMIT]] [--sqlite]

Every run uses the same CSV in the same PostgreSQL server, each into a fresh database, so the
ratios are meaningful on a noisy shared machine; the runs take turns, so load that comes and
goes falls on each of them. The Tidings figure includes everything the import does: address
validation, staging with COPY, merging duplicates, the INSERT ... SELECT of subscribers,
subscriptions and their consent events, and the closing ANALYZE. Beside it, the floor for
this schema: the file copied in, then the same subscribers, subscriptions and events written
by three INSERT ... SELECTs with no Python and no checks ("COPY + 3 INSERTs").

``--baseline`` also runs the import as it was at COMMIT (default: the last commit before
issue 13's work, f2ada4b): its four modules are read with ``git show`` into a temporary
package and run beside today's. ``--sqlite`` adds a run of today's import into SQLite.
"""

import argparse
import importlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from common import fresh_database, source_at

from tidings.audience.imports.importer import import_subscribers
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade

BASELINE_COMMIT = "f2ada4b"
IMPORT_MODULES = ("csvrows", "importer", "merge", "staging")
Importer = Callable[..., object]


def generate(path: Path, rows: int) -> None:
    rng = random.Random(1)
    zones = ["Asia/Tbilisi", "Europe/Berlin", "Europe/London", "America/New_York", ""]
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,locale,timezone,city\n")
        for i in range(rows):
            zone = rng.choice(zones)
            out.write(f"reader{i}@example{i % 1000}.ge,Reader {i},ka,{zone},City {i % 300}\n")


def baseline_importer(commit: str, folder: Path) -> Importer:
    """``import_subscribers`` as it was at ``commit``, from a package written to ``folder``."""
    package = folder / "baseline_imports"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in IMPORT_MODULES:
        source = source_at(commit, f"src/tidings/audience/imports/{name}.py")
        source = source.replace("tidings.audience.imports.", "baseline_imports.")
        (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("baseline_imports.importer")
    importer: Importer = module.import_subscribers
    return importer


Timing = tuple[float, float]
"""Seconds a run took, and how many of them went into reading (validating and staging)."""


def _time_import(db: Database, importer: Importer, path: Path, rows: int, batch: int) -> Timing:
    upgrade(db.engine)
    create_newsletter(db, NewsletterSpec(slug="bench", name="Bench", sender="b@example.org"))
    read_at = [0.0]

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "reading":
            read_at[0] = time.perf_counter() - started

    started = time.perf_counter()
    report = importer(db, "bench", path, confirmed=True, batch_size=batch, progress=progress)
    elapsed = time.perf_counter() - started
    db.dispose()
    counts = (report.created, report.subscribed, report.rows_read)  # type: ignore[attr-defined]
    assert counts == (rows, rows, rows), report
    return elapsed, read_at[0]


def time_postgres(importer: Importer, path: Path, rows: int, batch: int) -> Timing:
    with fresh_database() as url:
        return _time_import(open_database(url), importer, path, rows, batch)


def time_sqlite(path: Path, rows: int, batch: int) -> Timing:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        return _time_import(open_database(url), import_subscribers, path, rows, batch)


def _copy_in(connection: psycopg.Connection, path: Path, table: str = "TABLE") -> None:
    """Make the table ``plain`` (``table``: "TABLE" or "TEMP TABLE") and COPY the file in."""
    connection.execute(
        f"CREATE {table} plain (email text, name text, locale text, timezone text, city text)"
    )
    with (
        connection.cursor() as cursor,
        cursor.copy("COPY plain FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        path.open("rb") as source,
    ):
        while chunk := source.read(1 << 20):
            copy.write(chunk)


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def time_plain_copy(path: Path) -> Timing:
    with fresh_database() as url, psycopg.connect(_dsn(url)) as connection:
        started = time.perf_counter()
        _copy_in(connection, path)
        connection.commit()
        elapsed = time.perf_counter() - started
        return elapsed, elapsed


#: The rows an import of new, confirmed addresses writes, set-based from the staged file:
#: the least the server has to do for them with today's schema (its keys and indexes).
FLOOR_STATEMENTS = (
    "INSERT INTO subscribers (email, name, locale, timezone, attributes, created_at,"
    " updated_at) SELECT email, name, locale, NULLIF(timezone, ''),"
    " jsonb_build_object('city', city), now(), now() FROM plain",
    "INSERT INTO subscriptions (subscriber_id, newsletter_id, status, cadence, consent_at,"
    " consent_method, confirmed_at, created_at, updated_at) SELECT id, 1, 'active', 'daily',"
    " now(), 'import', now(), now(), now() FROM subscribers",
    "INSERT INTO subscriber_events (subscriber_id, kind, newsletter_id, source, created_at)"
    " SELECT id, 'imported', 1, 'import', now() FROM subscribers",
)


def time_sql_floor(path: Path) -> Timing:
    """COPY the file, then write the import's rows in three INSERT ... SELECTs (no Python,
    no checks): the floor for importing that many new readers into this schema."""
    with fresh_database() as url:
        db = open_database(url)
        upgrade(db.engine)
        create_newsletter(db, NewsletterSpec(slug="bench", name="Bench", sender="b@example.org"))
        db.dispose()
        with psycopg.connect(_dsn(url)) as connection:
            started = time.perf_counter()
            _copy_in(connection, path, "TEMP TABLE")
            copied = time.perf_counter() - started
            for statement in FLOOR_STATEMENTS:
                connection.execute(statement)
            connection.commit()
            return time.perf_counter() - started, copied


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=Settings.model_fields["import_batch_size"].default,
        help="addresses per transaction (default: the import_batch_size setting's default)",
    )
    parser.add_argument("--baseline", nargs="?", const=BASELINE_COMMIT, metavar="COMMIT")
    parser.add_argument("--sqlite", action="store_true", help="also time today's import on SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "subscribers.csv"
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        runs: dict[str, Callable[[], Timing]] = {
            "plain COPY": lambda: time_plain_copy(path),
            "COPY + 3 INSERTs": lambda: time_sql_floor(path),
            "tidings import": lambda: time_postgres(
                import_subscribers, path, args.rows, args.batch_size
            ),
        }
        if args.baseline:
            old = baseline_importer(args.baseline, Path(folder))
            runs[f"import @{args.baseline}"] = lambda: time_postgres(
                old, path, args.rows, args.batch_size
            )
        if args.sqlite:
            runs["import, SQLite"] = lambda: time_sqlite(path, args.rows, args.batch_size)
        print(
            f"{args.rows} rows, {size_mb:.0f} MB CSV, batches of {args.batch_size}, "
            f"{args.repeat} run(s) each"
        )
        times: dict[str, list[float]] = {label: [] for label in runs}
        reading: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(args.repeat):
            for label, run in runs.items():
                total, read = run()
                times[label].append(total)
                reading[label].append(read)
        medians = {label: statistics.median(values) for label, values in times.items()}
        copy_s = medians["plain COPY"]
        for label, seconds in medians.items():
            rate = args.rows / seconds
            read_s = statistics.median(reading[label])
            phases = "" if label == "plain COPY" else f"; reading took {read_s:.2f} s"
            print(
                f"{label:<17}: {seconds:7.2f} s {rate:>11,.0f} rows/s (median), "
                f"{seconds / copy_s:5.1f}x plain COPY's time{phases}"
            )
        if args.baseline:
            ratio = medians[f"import @{args.baseline}"] / medians["tidings import"]
            print(f"speed-up        : today's import is {ratio:.1f}x as fast as @{args.baseline}")


if __name__ == "__main__":
    main()
