"""Import subscribers into one newsletter from a CSV file or the API's records, set-based and
re-runnable.

The rows are streamed into a staging table (COPY on PostgreSQL), merged per address in SQL, and
then applied in batches of ``import_batch_size`` addresses, each batch its own transaction, so
an interrupted import can simply be run again. On PostgreSQL two connections apply batches
side by side (:mod:`parallel`: the server's per-row foreign-key checks are most of the cost).
Rules, per address:

- a suppressed address is skipped (never created, never subscribed, never activated);
- a new address becomes a subscriber; for a known one, the file's non-empty values replace
  the stored ones and its attributes are merged in;
- a missing subscription is created (active with ``confirmed``, else pending); a pending one
  becomes active with ``confirmed``; an unsubscribed one stays unsubscribed.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, text

from tidings.audience.imports.csvrows import RowError, SubscriberRow, read_records, read_rows
from tidings.audience.imports.merge import ImportOptions, MergeCounts, apply_batch
from tidings.audience.imports.parallel import APPLIERS, apply_in_parallel
from tidings.audience.imports.staging import (
    create_staging,
    drop_staging,
    load_rows,
    merge_duplicates,
    planner_for_bulk,
)
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.errors import InvalidInput
from tidings.mail.addresses import DEFAULT_LIMITS, AttributeLimits


@dataclass
class ImportReport(MergeCounts):
    """What an import did; ``invalid`` lists the refused rows with their line numbers."""

    rows_read: int = 0
    addresses: int = 0
    duplicates_merged: int = 0
    invalid: list[RowError] = field(default_factory=list)

    def summary(self) -> list[tuple[str, int]]:
        """The counts, labelled for people."""
        return [
            ("rows read", self.rows_read),
            ("new subscribers", self.created),
            ("subscribers updated", self.updated),
            ("subscribers unchanged", self.unchanged),
            ("duplicate rows merged", self.duplicates_merged),
            ("new subscriptions", self.subscribed),
            ("subscriptions activated", self.activated),
            ("left unsubscribed", self.kept_unsubscribed),
            ("suppressed, skipped", self.suppressed),
            ("invalid rows", len(self.invalid)),
        ]


ProgressCallback = Callable[[str, int, int], None]
"""Called with (phase, done, total); total is 0 while unknown."""


#: Rows read from a file or a list of records: valid ones, and refusals with their reason.
ImportItems = Iterable[SubscriberRow | RowError]


def stage_rows(
    connection: Connection,
    items: ImportItems,
    report: ImportReport,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> None:
    """Count the rows, note the invalid ones, and load the valid ones into the staging table
    in batches."""
    batch: list[SubscriberRow] = []
    for item in items:
        report.rows_read += 1
        if isinstance(item, RowError):
            report.invalid.append(item)
        else:
            batch.append(item)
        if len(batch) >= batch_size:
            load_rows(connection, batch)
            batch.clear()
            if progress:
                progress("reading", report.rows_read, 0)
    load_rows(connection, batch)
    if progress:
        progress("reading", report.rows_read, 0)


def import_rows_into(
    connection: Connection,
    items: ImportItems,
    options: ImportOptions,
    progress: ProgressCallback | None = None,
    appliers: int = APPLIERS,
) -> ImportReport:
    """Run a whole import of ``items`` (from ``csvrows``) on ``connection``, committing after
    each batch."""
    report = ImportReport()
    create_staging(connection)
    planner_for_bulk(connection, True)
    try:
        stage_rows(connection, items, report, options.batch_size, progress)
        report.addresses = merge_duplicates(connection)
        report.duplicates_merged = report.rows_read - len(report.invalid) - report.addresses
        connection.commit()
        apply_batches(connection, options, report, appliers, progress)
    finally:
        connection.rollback()
        drop_staging(connection)
        planner_for_bulk(connection, False)
        connection.commit()
    refresh_statistics(connection)
    return report


def apply_batches(
    connection: Connection,
    options: ImportOptions,
    report: ImportReport,
    appliers: int,
    progress: ProgressCallback | None,
) -> None:
    """Merge the staged addresses batch by batch, each committed: on PostgreSQL ``appliers``
    batches at a time (:mod:`parallel`), on SQLite (one writer) one after another."""
    total = report.addresses
    merged = 0

    def done(high: int) -> None:
        nonlocal merged
        merged = max(merged, high)
        if progress:
            progress("merging", merged, total)

    if is_postgres(connection) and appliers > 1 and total > options.batch_size:
        apply_in_parallel(connection, options, total, appliers, report, done)
        return
    for low in _batch_starts(total, options.batch_size):
        high = min(low + options.batch_size - 1, total)
        apply_batch(connection, options, low, high, report)
        connection.commit()
        done(high)


def refresh_statistics(connection: Connection) -> None:
    """ANALYZE after a bulk change, so the planner does not plan with an empty table's
    statistics until autovacuum gets round to it (PostgreSQL; SQLite plans without them)."""
    if is_postgres(connection):
        connection.execute(text("ANALYZE subscribers, subscriptions"))
        connection.commit()


def _batch_starts(total: int, size: int) -> Iterable[int]:
    return range(1, total + 1, size)


def _import(
    db: Database,
    slug: str,
    items: ImportItems,
    confirmed: bool,
    batch_size: int,
    source: str,
    progress: ProgressCallback | None,
    appliers: int = APPLIERS,
) -> ImportReport:
    with db.session() as session:
        newsletter_id = newsletter_by_slug(session, slug).id
    options = ImportOptions(
        newsletter_id=newsletter_id,
        confirmed=confirmed,
        consent_source=source,
        batch_size=batch_size,
    )
    with db.engine.connect() as connection:
        return import_rows_into(connection, items, options, progress, appliers)


def import_subscribers(
    db: Database,
    slug: str,
    path: Path,
    confirmed: bool,
    batch_size: int,
    progress: ProgressCallback | None = None,
    limits: AttributeLimits = DEFAULT_LIMITS,
    appliers: int = APPLIERS,
) -> ImportReport:
    """Import a CSV file of subscribers into newsletter ``slug`` (the rules above); rows
    with more attributes than ``limits`` allow are refused with the reason. On PostgreSQL,
    ``appliers`` connections merge batches side by side."""
    try:
        stream = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        try:
            rows = read_rows(stream, limits)
            return _import(
                db,
                slug,
                rows,
                confirmed,
                batch_size,
                f"csv import: {path.name}",
                progress,
                appliers,
            )
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path} is not UTF-8 text: {exc.reason}") from None


def import_records(
    db: Database,
    slug: str,
    records: Sequence[Mapping[str, str]],
    confirmed: bool,
    batch_size: int,
    limits: AttributeLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Import subscribers given as objects (the API's bulk import), through the same
    validating, merging, set-based path as a CSV file; refusals name the record's position."""
    rows = read_records(records, limits)
    return _import(db, slug, rows, confirmed, batch_size, "api import", None)
