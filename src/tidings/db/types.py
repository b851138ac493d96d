"""Column types that behave the same on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from tidings.errors import InvalidInput

#: The largest id an id column holds (32-bit on PostgreSQL): a larger one names no row, and
#: given to the database it overflows (SQLite) or fails to compare (PostgreSQL).
MAX_ROW_ID = 2_147_483_647


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite keeps no zone, so values are normalised to UTC on the way in and marked UTC on the
    way out; naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON documents: JSONB on PostgreSQL (mergeable with ``||``), JSON text on SQLite.
JsonDocument: Any = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, a naive one taken as UTC already; one that leaves the years 1 to
    9999 on the way (9999-12-31T23:59:59-14:00, 0001-01-01T00:00:00+14:00) is refused."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{moment.isoformat()} is out of range once in UTC") from None
