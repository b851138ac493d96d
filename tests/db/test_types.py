from datetime import UTC, datetime, timedelta, timezone

import pytest

from tidings.db.types import as_utc
from tidings.errors import InvalidInput


def test_as_utc_converts_and_takes_naive_times_as_utc() -> None:
    tbilisi = timezone(timedelta(hours=4))
    assert as_utc(datetime(2026, 1, 1, 8, tzinfo=tbilisi)) == datetime(2026, 1, 1, 4, tzinfo=UTC)
    assert as_utc(datetime(2026, 1, 1, 8)) == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert as_utc(datetime(9999, 12, 31, 9, 59, tzinfo=timezone(timedelta(hours=-14)))).year == 9999


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    ],
)
def test_as_utc_refuses_a_time_that_leaves_the_calendar(moment: datetime) -> None:
    with pytest.raises(InvalidInput, match="out of range once in UTC"):
        as_utc(moment)
