"""The sending limits' database side on both databases: the shared clock's reservations
(concurrent ones on PostgreSQL), connection slots under leases, slow-downs and the climb
back, and the admin's bad input refused in one line. Times are given, never waited for."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.deliver.limitsupport import limit_row, limit_statements, reserve
from tests.deliver.linksupport import wait_until_blocked
from tidings.db.engine import Database
from tidings.db.models import SendLimitScope, SendLimitSlot
from tidings.deliver import dbclock, limitadmin, limitkeys, limits, limitslots
from tidings.deliver.limitkeys import Key
from tidings.deliver.limits import NotBefore, Reserved
from tidings.errors import InvalidInput

GMAIL = Key(SendLimitScope.domain, "gmail.com")
RELAY = Key(SendLimitScope.relay, "smtp.example.ge:587")
T0 = 1_800_000_000.0
NOW = datetime.fromtimestamp(T0, UTC)
LEASE = timedelta(seconds=15)


def test_reservations_follow_the_shared_clock(db: Database) -> None:
    assert reserve(db, GMAIL, 3, T0) is None  # no limit: no rate to keep
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=10.0, connections=None)
    first = reserve(db, GMAIL, 3, T0)
    assert first == Reserved(pytest.approx(T0), 3, 10.0, pytest.approx(T0))
    assert isinstance(first, Reserved)
    assert [first.at(i) for i in range(3)] == pytest.approx([T0, T0 + 0.1, T0 + 0.2])
    second = reserve(db, GMAIL, 5, T0)  # same instant: after the first batch
    assert isinstance(second, Reserved) and second.first == pytest.approx(T0 + 0.3)
    # The clock is now 0.8 s ahead; with 0.5 s allowed ahead nothing more is reserved.
    spent = reserve(db, GMAIL, 1, T0, ahead=0.5)
    assert isinstance(spent, NotBefore) and spent.at == pytest.approx(T0 + 0.3)
    # Later than the clock: the batch starts now, not at the old clock (no credit piles up).
    later = reserve(db, GMAIL, 1, T0 + 60)
    assert isinstance(later, Reserved) and later.first == pytest.approx(T0 + 60)


def test_concurrent_reservations_never_overlap(db: Database, db_name: str) -> None:
    """Eight sessions reserving at once, at the same given instant, get times that tile
    the clock exactly 1/rate apart: no time twice, none skipped."""
    if db_name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=50.0, connections=None)
    got: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def reserve_many() -> None:
        start.wait()
        for _ in range(25):
            reserved = reserve(db, RELAY, 3, T0, ahead=1e9)
            assert isinstance(reserved, Reserved)
            with lock:
                got.extend(reserved.at(i) for i in range(reserved.count))

    threads = [threading.Thread(target=reserve_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = sorted(got)
    assert len(times) == 8 * 25 * 3
    # Float seconds near 1.8e9 carry about a microsecond of rounding per step: far below
    # the 20 ms spacing.
    assert times == pytest.approx([T0 + i / 50.0 for i in range(len(times))], abs=1e-3)


def test_slots_are_shared_and_leased(db: Database) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=2)

    def take(holder: str, now: datetime) -> int | None:
        with db.session() as session:
            slot = limitslots.take_slot(session, RELAY, holder, LEASE, now)
            session.commit()
            return slot

    assert take("w1", NOW) == 0
    assert take("w2", NOW) == 1
    assert take("w1", NOW) is None  # two workers, two slots: never a third
    assert take("w2", NOW + timedelta(seconds=14)) is None
    # w1 renews with its heartbeat; w2 dies: its slot comes back when its lease runs out.
    with db.session() as session:
        assert limitslots.renew_slots(session, "w1", timedelta(seconds=30), NOW) == 1
        session.commit()
    assert take("w3", NOW + timedelta(seconds=16)) == 1
    assert take("w4", NOW + timedelta(seconds=16)) is None
    # A clean stop gives every slot back at once.
    with db.session() as session:
        assert limitslots.release_holder(session, "w1") == 1
        session.commit()
    assert take("w4", NOW + timedelta(seconds=17)) == 0
    with db.session() as session:
        holders = session.scalars(select(SendLimitSlot.holder).order_by(SendLimitSlot.slot))
        assert list(holders) == ["w4", "w3"]
    assert [v.slots_held for v in limitadmin.limits_overview(db)] == [2]


def _take(db: Database, holder: str, now: datetime) -> int | None:
    with db.session() as session:
        slot = limitslots.take_slot(session, RELAY, holder, LEASE, now)
        session.commit()
        return slot


def test_a_free_slot_costs_one_statement(db: Database) -> None:
    """One INSERT ... RETURNING takes a free slot (or a dead holder's); when none is free,
    one more statement says so (it tells a race lost to another taker from a full key)."""
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=2)
    with limit_statements(db) as seen:
        assert _take(db, "w1", NOW) == 0
    assert len(seen) == 1, seen
    assert _take(db, "w2", NOW) == 1
    with limit_statements(db) as seen:
        assert _take(db, "w3", NOW) is None
    assert len(seen) == 2, seen
    with limit_statements(db) as seen:  # both leases ran out: the first is taken over
        assert _take(db, "w3", NOW + LEASE) == 0
    assert len(seen) == 1, seen


def test_a_taker_that_loses_the_race_for_a_slot_takes_the_next(db: Database, db_name: str) -> None:
    """Two takers pick the same free slot at once (the first has not committed when the
    second's INSERT starts): the second waits, finds a live lease there, and takes the
    next free slot instead of reporting every slot busy."""
    if db_name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=2)
    got: list[int | None] = []
    with db.session() as first:
        assert limitslots.take_slot(first, RELAY, "w1", LEASE, NOW) == 0
        second = threading.Thread(target=lambda: got.append(_take(db, "w2", NOW)))
        second.start()
        wait_until_blocked(db, "INSERT INTO send_limit_slots")
        first.commit()
    second.join()
    assert got == [1]


def test_no_slot_past_a_lowered_limit_is_handed_out(db: Database) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=4)
    assert [_take(db, f"w{i}", NOW) for i in range(4)] == [0, 1, 2, 3]
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=2)
    with db.session() as session:
        limitslots.release_slot(session, RELAY, 3, "w3")  # past the limit: frees nothing
        session.commit()
    assert _take(db, "w4", NOW) is None
    with db.session() as session:
        limitslots.release_slot(session, RELAY, 1, "w1")
        session.commit()
    # Slots 0 and 2 are still held: two connections, as many as the lowered limit allows.
    assert _take(db, "w4", NOW) is None
    with db.session() as session:
        limitslots.release_slot(session, RELAY, 2, "w2")
        session.commit()
    assert _take(db, "w4", NOW) == 1  # the free one below the limit, not slot 2, 3 or 4
    assert _take(db, "w5", NOW) is None
    assert _take(db, "w5", NOW + LEASE) == 0  # 0, 1 and 2 ran out: the lowest is taken


def _slow(db: Database, key: Key, now: datetime, measured: float = 0.0) -> float | None:
    with db.session() as session:
        rate = limits.slow_down(session, key, "421 4.7.0 slow down", measured, now)
        session.commit()
        return rate


def _climb(db: Database, now: datetime) -> None:
    with db.session() as session:
        limits.climb(session, now)
        session.commit()


def test_slow_downs_halve_the_rate_and_quiet_minutes_raise_it(db: Database) -> None:
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=40.0, connections=None)
    assert _slow(db, GMAIL, NOW) == 20.0
    # Replies within the spacing are the same signal: recorded, not halved again.
    assert _slow(db, GMAIL, NOW + timedelta(seconds=1)) == 20.0
    assert _slow(db, GMAIL, NOW + timedelta(seconds=6)) == 10.0
    row = limit_row(db, GMAIL)
    assert row is not None and row.slow_downs == 3 and row.last_reply == "421 4.7.0 slow down"
    for _ in range(8):
        assert _slow(db, GMAIL, NOW + timedelta(seconds=6)) is not None
    # Quiet: a tenth more per minute, once per minute however often asked, up to the cap.
    quiet = NOW + timedelta(seconds=6)
    _climb(db, quiet + timedelta(seconds=61))
    _climb(db, quiet + timedelta(seconds=62))
    row = limit_row(db, GMAIL)
    assert row is not None and row.rate == pytest.approx(11.0)
    for minute in range(2, 40):
        _climb(db, quiet + timedelta(seconds=61 * minute))
    row = limit_row(db, GMAIL)
    assert row is not None and row.rate == 40.0


def test_a_slow_down_without_a_rate_starts_from_what_was_measured(db: Database) -> None:
    assert _slow(db, RELAY, NOW, measured=30.0) == 15.0
    assert _slow(db, GMAIL, NOW, measured=0.5) == limits.FLOOR_PER_SECOND
    # Learnt rows (no cap of the admin's) climb without end, and are forgotten after a
    # quiet hour.
    _climb(db, NOW + timedelta(minutes=2))
    row = limit_row(db, RELAY)
    assert row is not None and row.rate == pytest.approx(16.5)
    _climb(db, NOW + limits.FORGET_AFTER + timedelta(seconds=1))
    assert limit_row(db, RELAY) is None and limit_row(db, GMAIL) is None


def test_a_cap_below_the_floor_is_the_floor(db: Database) -> None:
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=0.5, connections=None)
    assert _slow(db, GMAIL, NOW) == 0.5


@pytest.mark.parametrize(
    ("scope", "name", "per_second", "connections", "says"),
    [
        ("mx", "gmail.com", 1.0, None, "scope must be relay or domain"),
        ("relay", "smtp.example.ge", 1.0, None, "host:port"),
        ("relay", "smtp.example.ge:99999", 1.0, None, "host:port"),
        ("relay", "a" * 300 + ":25", 1.0, None, "host:port"),
        ("domain", "a" * 300 + ".ge", 1.0, None, "is not a domain name"),
        ("domain", "gmail.com", 0.0, None, "--per-second must be from"),
        ("domain", "gmail.com", -3.0, None, "--per-second must be from"),
        ("domain", "gmail.com", float("nan"), None, "--per-second must be from"),
        ("domain", "gmail.com", None, 0, "--connections must be from 1"),
        ("domain", "gmail.com", None, None, "give --per-second and/or --connections"),
        ("domain", "bad domain..", 1.0, None, "is not a domain name"),
    ],
)
def test_bad_limits_are_refused(
    db: Database,
    scope: str,
    name: str,
    per_second: float | None,
    connections: int | None,
    says: str,
) -> None:
    with pytest.raises(InvalidInput, match=says):
        limitadmin.set_limit(db, scope, name, per_second, connections)
    assert limitadmin.limits_overview(db) == []


def test_domains_are_keyed_lower_case_in_their_ascii_form() -> None:
    assert limitkeys.domain_name("Reader@GMail.COM") == "gmail.com"
    assert limitkeys.domain_name("ნინო@ფოსტა.გე") == "xn--lodzmeh.xn--node"
    assert limitkeys.key_for("relay", "SMTP.Example.GE:587") == RELAY


def test_learnt_domains_are_bounded(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay answering 4.7.x for every domain must not make a row per domain."""
    monkeypatch.setattr(limits, "MAX_LEARNT_DOMAINS", 2)
    rates = [_slow(db, Key(SendLimitScope.domain, f"d{i}.example"), NOW, 10.0) for i in range(4)]
    assert rates == [5.0, 5.0, None, None]
    assert _slow(db, Key(SendLimitScope.domain, "d0.example"), NOW + timedelta(seconds=6)) == 2.5
    assert len(limitadmin.limits_overview(db)) == 2


def test_reservations_run_on_the_databases_clock(db: Database) -> None:
    """No time given: the statement reads the database's (SQLite's julianday, PostgreSQL's
    now()), returned beside the reserved times; here both run on this host, so it is the
    host's Unix time give or take the clocks' rounding."""
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=10.0, connections=None)
    before = time.time()
    with db.session() as session:
        first = limits.reserve(session, GMAIL, 2, 1.0)
        second = limits.reserve(session, GMAIL, 1, 1.0)
        session.commit()
    after = time.time()
    assert isinstance(first, Reserved) and isinstance(second, Reserved)
    assert before - 1.0 <= first.now <= after + 1.0
    assert first.first == pytest.approx(first.now)
    assert second.first == pytest.approx(first.first + 0.2)
    with pytest.raises(ValueError, match="1 to 50"):
        reserve(db, GMAIL, limits.MAX_RESERVE + 1, T0)


def test_slot_leases_run_on_the_databases_clock(db: Database) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=1)
    with db.session() as session:
        assert limitslots.take_slot(session, RELAY, "w1", LEASE) == 0
        assert limitslots.renew_slots(session, "w1", timedelta(minutes=5)) == 1
        now = dbclock.db_time(session)
        session.commit()
        expires = session.scalar(select(SendLimitSlot.expires_at))
    assert expires is not None
    assert expires - now == pytest.approx(timedelta(minutes=5), abs=timedelta(seconds=5))
