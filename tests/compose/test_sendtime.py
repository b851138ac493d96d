"""The one rule for a send time (compose/sendtime.py), and both front doors that use it: the
console's date-and-time field (a wall-clock time in the newsletter's zone) and the API's
scheduled_for (an instant with its offset)."""

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import confirmation
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.compose.sendtime import IN_THE_PAST, NO_TIME, schedule_at, send_time
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, UserRole
from tidings.errors import InvalidInput

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_a_wall_time_is_read_on_the_newsletters_clocks() -> None:
    assert send_time("2030-06-02T08:00", "Asia/Tbilisi", NOW) == datetime(2030, 6, 2, 4, tzinfo=UTC)
    # Summer and winter in one zone: the offset of that day, not of today.
    new_york = "America/New_York"
    assert send_time("2030-07-01T08:00", new_york, NOW) == datetime(2030, 7, 1, 12, tzinfo=UTC)
    assert send_time("2030-12-01T08:00", new_york, NOW) == datetime(2030, 12, 1, 13, tzinfo=UTC)
    naive = datetime(2030, 6, 2, 8, 0)
    assert send_time(naive, "Asia/Tbilisi", NOW) == datetime(2030, 6, 2, 4, tzinfo=UTC)


def test_a_time_with_an_offset_is_that_instant_whatever_the_zone() -> None:
    given = "2030-06-02T08:00+00:00"
    assert send_time(given, "Asia/Tbilisi", NOW) == datetime(2030, 6, 2, 8, tzinfo=UTC)
    lima = datetime(2030, 6, 2, 3, tzinfo=timezone(timedelta(hours=-5)))
    assert send_time(lima, "Asia/Tbilisi", NOW) == datetime(2030, 6, 2, 8, tzinfo=UTC)


def test_the_hour_the_clocks_skip_is_refused_and_a_repeated_hour_is_the_first() -> None:
    with pytest.raises(InvalidInput, match="does not exist in America/New_York"):
        send_time("2030-03-10T02:30", "America/New_York", NOW - timedelta(days=365))
    # 01:30 happens twice on 2030-11-03: first in summer time (-04:00).
    twice = send_time("2030-11-03T01:30", "America/New_York", NOW)
    assert twice == datetime(2030, 11, 3, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "  ", "tomorrow", "2030-13-01T08:00", None])
def test_no_readable_time_is_refused_with_the_consoles_words(value: str | None) -> None:
    with pytest.raises(InvalidInput) as refused:
        send_time(value, "Asia/Tbilisi", NOW)
    assert str(refused.value) == NO_TIME


def test_now_and_the_past_are_refused_and_so_is_a_time_beyond_the_calendar() -> None:
    for past in ("2030-06-01T16:00", "2030-06-01T12:00+00:00", NOW - timedelta(seconds=1)):
        with pytest.raises(InvalidInput) as refused:
            send_time(past, "Asia/Tbilisi", NOW)
        assert str(refused.value) == IN_THE_PAST
    with pytest.raises(InvalidInput, match="out of range once in UTC"):
        send_time("9999-12-31T23:00", "America/New_York", NOW)


def test_schedule_at_reads_the_newsletters_zone(db: Database, settings: Settings) -> None:
    newsletter(db, timezone="America/New_York")
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    edition_id = schedule_at(db, settings, "daily", OneOff(article_ids=[]), "2099-01-01T08:00")
    with db.session() as session:
        scheduled = session.get_one(Edition, edition_id).scheduled_for
    assert scheduled == datetime(2099, 1, 1, 13, tzinfo=UTC)


def test_console_and_api_read_the_same_time_the_same_way(db: Database, settings: Settings) -> None:
    """The console once put the newsletter's zone on a time that had an offset already, and
    took a time the clocks skip; both front doors now give one answer."""
    newsletter(db)  # Asia/Tbilisi, +04:00
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    _, secret = create_token(db, "editor", UserRole.editor, "test")
    with web_server(settings, db) as base:
        console = sign_in(base, make_user(db, UserRole.editor))
        token = csrf(console)

        def schedule(send_at: str) -> httpx.Response:
            form = {"csrf_token": token, "newsletter": "daily", "do": "schedule"}
            asked = console.post("/admin/editions/new", data={**form, "send_at": send_at})
            if asked.status_code != 200 or "confirm_token" not in asked.text:
                return asked  # refused before the confirmation step
            return console.post("/admin/editions/new", data=confirmation(asked.text))

        assert schedule("2099-01-01T08:00+00:00").status_code == 303
        api = httpx.post(
            f"{base}/api/v1/editions",
            json={"newsletter": "daily", "send": "scheduled", "scheduled_for": "2099-01-01T08:00Z"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert api.status_code == 201, api.text
        past = schedule("2000-01-01T08:00")
        assert past.status_code == 200 and IN_THE_PAST in past.text
        assert NO_TIME in schedule("").text
    with db.session() as session:
        times = session.scalars(select(Edition.scheduled_for).order_by(Edition.id)).all()
    assert times == [datetime(2099, 1, 1, 8, tzinfo=UTC)] * 2
