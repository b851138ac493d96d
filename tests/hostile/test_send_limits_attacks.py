"""Reviewer R1's hostile review of the sending limits kept in the database (migration 0016,
deliver/limits.py, deliver/pacing.py, ``tidings limits``): a host whose clock is wrong, a
careless admin, a hostile relay's reply text. Every defect it found is fixed: the tests are
the attacks that now hold (a comment names the defect each once showed). Times are given to
the functions or read from the database's clock, never waited for."""

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import Cli
from tests.deliver.limitsupport import limit_row, limit_statements, reserve
from tests.deliver.test_pacing import _drain, _relay, _sending_to, slowing_server
from tests.smtpserver import RecordingHandler
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.db.models import Delivery, DeliveryState, SendLimit, SendLimitScope, SendLimitSlot
from tidings.db.types import utcnow
from tidings.deliver import limitadmin, limitkeys, limits, limitslots, pacing
from tidings.deliver.limitkeys import Key
from tidings.deliver.limits import NotBefore, Reserved
from tidings.deliver.pacing import Pacer, is_slow_down
from tidings.deliver.worker_db import WorkerDatabase
from tidings.errors import InvalidInput
from tidings.mail.transport import TransientDeliveryError

GMAIL = Key(SendLimitScope.domain, "gmail.com")
RELAY = Key(SendLimitScope.relay, "smtp.example.ge:587")
T0 = 1_800_000_000.0
NOW = datetime.fromtimestamp(T0, UTC)
LEASE = timedelta(seconds=15)
TEN_MINUTES = 600.0


def _take(db: Database, key: Key, holder: str, now: datetime | None = None) -> int | None:
    with db.session() as session:
        slot = limitslots.take_slot(session, key, holder, LEASE, now)
        session.commit()
        return slot


# -- a host whose clock is wrong -------------------------------------------------------


def _wait_on(db: Database, off: float) -> float | NotBefore | None:
    """What a worker whose clock is ``off`` seconds wrong gets from gmail.com's rate: how
    long it is to wait, on its own clock, for the send time it reserved."""

    async def take() -> float | NotBefore | None:
        pacer = Pacer(db, "w1", None, LEASE, clock=lambda: time.time() + off)
        await pacer.refresh(force=True)
        got = await pacer._take_time(GMAIL)
        return got - pacer._clock() if isinstance(got, float) else got

    return asyncio.run(take())


# Was a defect (fixed): limits.reserve took `now` from the worker's own clock; a host 10 min
# ahead moved the shared clock 10 min into the future and every other host was refused
# (NotBefore) for 10 minutes. Reservations now run on the database's clock.
def test_a_host_ten_minutes_ahead_does_not_stop_everyone_else(db: Database) -> None:
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=10.0, connections=None)
    fast = _wait_on(db, TEN_MINUTES)
    assert isinstance(fast, float) and fast < 2.0  # nor does it wait 10 minutes itself
    # A host with the right time, a moment later: the rate allows ten sends a second.
    honest = _wait_on(db, 0.0)
    assert isinstance(honest, float) and honest < 2.0


# Was a defect (fixed): a host 10 min behind compared the shared clock with its own `now`:
# clock > now + ahead, so it was refused for as long as other hosts kept sending (its relay
# wait in Pacer._relay_time slept 10 min per try).
def test_a_host_ten_minutes_behind_is_not_starved(db: Database) -> None:
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=10.0, connections=None)
    honest = _wait_on(db, 0.0)
    assert isinstance(honest, float) and honest < 2.0
    slow = _wait_on(db, -TEN_MINUTES)
    assert isinstance(slow, float) and slow < 2.0  # not 10 minutes either


class _Transport:
    """Stands for a pool's connection: the pacer knows connections only by identity."""


# Was a defect (fixed): take_slot's lease fence compared expires_at with the taker's own
# clock; a host 10 min ahead saw every live slot as expired and took it over, so two
# workers held the relay's one connection. Leases now run on the database's clock (the
# module's utcnow, which the pacer once passed, is set 10 minutes ahead here too).
def test_a_host_ten_minutes_ahead_does_not_take_live_slots(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=1)
    assert _take(db, RELAY, "honest") == 0
    ahead = timedelta(seconds=TEN_MINUTES)
    monkeypatch.setattr(pacing, "utcnow", lambda: utcnow() + ahead, raising=False)

    async def take() -> bool:
        pacer = Pacer(db, "ahead", RELAY, LEASE, clock=lambda: time.time() + TEN_MINUTES)
        await pacer.refresh(force=True)
        return await pacer.take_slot(_Transport())  # type: ignore[arg-type]

    assert asyncio.run(take()) is False


# -- a careless admin ------------------------------------------------------------------


# Was a defect (fixed): set_limit keeps rate = min(old rate, new cap): raising a cap that no
# slow-down lowered leaves the old, lower rate in force for good (climb only raises slowed
# rows: slowed_at IS NULL never matches)
def test_raising_a_cap_raises_the_rate_in_force(db: Database) -> None:
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=10.0, connections=None)
    view = limitadmin.set_limit(db, "domain", "gmail.com", per_second=100.0, connections=None)
    assert view.per_second == 100.0
    assert view.rate == 100.0


# Was a defect (fixed): a cap changed in the table by hand left the shared clock where the
# old rate put it: after 0.001/s the clock is 1000 s ahead, and 100/s sent nothing for
# 1000 s. A clock further ahead than the current rate can have put it now starts over.
def test_a_new_rate_is_not_held_back_by_the_old_rates_clock(db: Database) -> None:
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=0.001, connections=None)
    assert isinstance(reserve(db, GMAIL, now=T0), Reserved)
    with db.session() as session:  # the admin fixes the typo; no slow-down in the way
        row = session.get_one(SendLimit, ("domain", "gmail.com"))
        row.per_second = row.rate = 100.0
        session.commit()
    assert isinstance(reserve(db, GMAIL, now=T0 + 1.0), Reserved)


# Was a defect (fixed): set_limit accepts any rate above 0; at 1e-12/s the second pace()
# makes datetime.fromtimestamp(clock - ahead) out of range and raises ValueError inside
# SendPool._take (pace is outside its try): the sender task dies with the job still leased
# (and renewed) by a live worker
def test_a_tiny_rate_is_refused_or_paced_without_crashing(db: Database) -> None:
    try:
        limitadmin.set_limit(db, "domain", "tiny.example", per_second=1e-12, connections=None)
    except InvalidInput:
        return  # refused in one line: fine

    async def pace_twice() -> None:
        pacer = Pacer(db, "w1", None, LEASE)
        first = await pacer.pace("reader@tiny.example")
        assert first.later is None
        second = await pacer.pace("other@tiny.example")
        assert second.later is not None

    asyncio.run(pace_twice())


# Was a defect (fixed): a relay slot is held for the life of its connection: lowering
# max_connections while slots are held changes nothing for a running worker
# (Pacer.holds_slot only asks whether it took one; renew_slots renews every slot, even those
# numbered past the new limit)
def test_lowering_a_relays_connections_takes_effect_on_running_workers(db: Database) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=2)

    async def lower() -> list[bool]:
        pacer = Pacer(db, "w1", RELAY, LEASE)
        await pacer.refresh(force=True)
        connections = [_Transport(), _Transport()]
        assert [await pacer.take_slot(t) for t in connections] == [True, True]  # type: ignore[arg-type]
        limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=1)
        await pacer.refresh(force=True)
        return [pacer.holds_slot(t) for t in connections]  # type: ignore[arg-type]

    assert sum(asyncio.run(lower())) <= 1


def _set_refused(cli: Cli, *args: str) -> None:
    result = cli("limits", "set", *args)
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.output


# Were defects (fixed): key_for/domain_name accepted names with newlines, escape, NUL and
# other control characters (stored as limits no address can match, printed raw by the CLI);
# a port of "\u00b2" passed str.isdigit() and then int() raised ValueError (a traceback).


@pytest.mark.parametrize(
    "args",
    [
        ("domain", "gmail.com\nevil.example", "--per-second", "1"),
        ("domain", "x\x1b[31m.example", "--per-second", "1"),
        ("domain", "tab\there.example", "--per-second", "1"),
        ("relay", "smtp\n.example.ge:587", "--per-second", "1"),
        ("relay", "smtp.example.ge:\u00b2", "--per-second", "1"),
        ("relay", "a" * 300 + ":587", "--per-second", "1"),  # held (fixed in bd982a2)
    ],
)
def test_names_with_control_characters_are_refused(
    cli: Cli, settings: Settings, args: tuple[str, ...]
) -> None:
    assert cli("db", "upgrade").exit_code == 0
    _set_refused(cli, *args)
    assert "no sending limits" in cli("limits", "show").stdout


# -- a hostile relay's reply text --------------------------------------------------------


# Was a defect (fixed): the relay's reply is stored as is in send_limits.last_reply; a NUL
# (PostgreSQL refuses it) or a byte aiosmtplib decoded with surrogateescape (neither
# database can encode it) makes the slow-down write fail, so the relay's 'slow down' is
# dropped (logged only) every time it is said
def test_a_slow_down_with_binary_text_is_still_recorded(db: Database) -> None:
    refusal = TransientDeliveryError(421, "4.7.0 slow\x00 down \udcff\udcfe now")

    async def hear() -> None:
        pacer = Pacer(db, "w1", RELAY, LEASE)
        assert pacer.heard("", refusal) == RELAY
        await pacer.close()

    asyncio.run(hear())
    row = limit_row(db, RELAY)
    assert row is not None and row.slow_downs == 1
    assert row.last_reply is not None and "slow" in row.last_reply


# Was a defect (fixed): `tidings limits show` prints the relay's reply (and the limit's
# name) through rich with markup on: '[/bold]' in a hostile reply crashes the command
# (MarkupError) and '[red]...' is swallowed; use markup=False or rich.markup.escape
def test_limits_show_prints_a_hostile_reply_as_text(cli: Cli, settings: Settings) -> None:
    assert cli("db", "upgrade").exit_code == 0
    reply = "421 4.7.0 [/bold] slow [red]down[/red]"
    database = open_database(settings.resolved_database_url)
    try:
        with database.session() as session:
            limits.slow_down(session, RELAY, reply, 10.0, utcnow())
            session.commit()
    finally:
        database.dispose()
    result = cli("limits", "show")
    assert result.exit_code == 0, result.output
    assert reply in result.stdout


# -- attacks that held ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "slows"),
    [
        (550, "5.7.1 rejected by policy", False),  # policy, not a slow-down
        (250, "2.0.0 ok, not 4.7.0 at all", False),  # acceptance mentioning 4.7.0
        (451, "4.7.1 try again later", True),
        (421, "too many connections", True),
        (452, "4.2.2 mailbox full", False),
    ],
)
def test_only_temporary_4_7_or_421_replies_slow_down(code: int, text: str, slows: bool) -> None:
    assert is_slow_down(code, text) is slows


def test_fifty_slow_downs_at_once_halve_the_rate_once(db: Database, db_name: str) -> None:
    """The same slow-down reply on 50 connections at once, from concurrent sessions on
    PostgreSQL: one halving, 50 replies recorded."""
    if db_name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    limitadmin.set_limit(db, "domain", "gmail.com", per_second=64.0, connections=None)
    start = threading.Barrier(10)
    errors: list[BaseException] = []

    def slow(i: int) -> None:
        start.wait()
        try:
            for j in range(5):
                with db.session() as session:
                    at = NOW + timedelta(milliseconds=10 * (i + j))
                    limits.slow_down(session, GMAIL, "421 4.7.0 slow down", 0.0, at)
                    session.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    row = limit_row(db, GMAIL)
    assert row is not None and row.slow_downs == 50 and row.rate == 32.0


def test_a_huge_reply_is_bounded_and_domains_match_whatever_their_spelling(db: Database) -> None:
    with db.session() as session:
        limits.slow_down(session, GMAIL, "421 4.7.0 " + "x" * 100_000, 0.0, NOW)
        session.commit()
    row = limit_row(db, GMAIL)
    assert row is not None and row.last_reply is not None and len(row.last_reply) <= 512
    assert limitkeys.domain_name('"a@b"@GMail.COM.') == "gmail.com"
    assert limitkeys.key_for("domain", "ფოსტა.გე") == Key(
        SendLimitScope.domain, "xn--lodzmeh.xn--node"
    )
    assert limitkeys.domain_name("x@XN--LODZMEH.xn--node") == "xn--lodzmeh.xn--node"


def test_a_dead_workers_slots_come_back_and_clearing_takes_them(db: Database) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=1)
    assert _take(db, RELAY, "killed", NOW) == 0  # then SIGKILL: no release, no renewal
    assert _take(db, RELAY, "next", NOW + LEASE - timedelta(seconds=1)) is None
    assert _take(db, RELAY, "next", NOW + LEASE) == 0
    assert limitadmin.clear_limit(db, "relay", "smtp.example.ge:587")
    with db.session() as session:
        assert session.scalars(select(SendLimitSlot)).all() == []


def _limit_statements(db: Database, settings: Settings, addresses: list[str]) -> tuple[int, int]:
    """Drain one edition to ``addresses`` through aiosmtpd; (statements that touched the
    limits' tables, messages the server took)."""
    _sending_to(db, settings, addresses)
    handler = RecordingHandler()
    with limit_statements(db) as seen, slowing_server(handler) as port:
        _drain(db, _relay(settings, port))
    return len(seen), len(handler.recipients())


def test_a_worker_with_no_limits_pays_no_statement_per_message(
    db: Database, settings: Settings
) -> None:
    statements, sent = _limit_statements(db, settings, [f"reader{i}@example.ge" for i in range(60)])
    assert sent == 60
    assert statements < 12, statements  # the first read, and the upkeep's climb: not per message


# Was a defect (doc vs code, fixed): ARCHITECTURE says a send to a connection-limited domain
# costs two short statements; take_slot was a SELECT of the limit, a SELECT of every slot
# row and one INSERT per slot tried, then the release: 254-267 statements for 60 messages.
# A free slot is now taken in one INSERT ... SELECT ... ON CONFLICT ... RETURNING, and a
# worker's own takers of one key go one at a time (they no longer race each other for it)
def test_a_connection_limited_domain_costs_two_statements_a_message(
    db: Database, settings: Settings
) -> None:
    limitadmin.set_limit(db, "domain", "example.ge", per_second=None, connections=5)
    statements, sent = _limit_statements(db, settings, [f"reader{i}@example.ge" for i in range(60)])
    assert sent == 60
    assert statements <= 2 * sent + 12, statements


# Was a defect (fixed): climb raises a rate with no cap of the admin's by 10% a quiet minute
# for ever, and forgets only rows with no max_connections either: a relay with just
# --connections that once heard a 421 climbs past float8 in about 5 days; PostgreSQL then
# refuses the UPDATE (value out of range), WorkerDatabase.upkeep raises a DataError (not an
# OperationalError) and every worker's run() dies at its next upkeep
def test_a_learnt_rate_beside_a_connection_limit_never_overflows(
    db: Database, settings: Settings
) -> None:
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=4)
    with db.session() as session:
        quiet = utcnow() - timedelta(minutes=10)
        limits.slow_down(session, RELAY, "421 4.7.0 slow down", 20.0, quiet)
        session.commit()
    # Five days of quiet minutes, shown by the rate they leave behind (1.1 ** 7440 of 10/s).
    with db.session() as session:
        session.get_one(SendLimit, ("relay", RELAY.name)).rate = 1.7e308
        session.commit()
    WorkerDatabase(db, settings).upkeep()  # what every worker runs every 5 s
    row = limit_row(db, RELAY)
    assert row is not None and row.rate is not None and row.rate < 1e12


# Was a defect (fixed): a job handed back by the sending limits is never judged against the
# give-up time (verdict_for runs only after an attempt): a delivery 6 days old whose domain
# is at 0.001/s goes back queued again and again, is sent weeks late, and its edition stays
# 'sending' until then
def test_a_paced_job_past_its_give_up_time_gives_up(db: Database, settings: Settings) -> None:
    edition_id = _sending_to(db, settings, ["late@slow.example"])
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=6))
        )
        session.commit()
    limitadmin.set_limit(db, "domain", "slow.example", per_second=0.001, connections=None)
    slow = Key(SendLimitScope.domain, "slow.example")
    assert isinstance(reserve(db, slow), Reserved)  # another worker's send
    handler = RecordingHandler()
    with slowing_server(handler) as port:
        _drain(db, _relay(settings, port))
    with db.session() as session:
        state, reply = session.execute(
            select(Delivery.state, Delivery.last_reply).where(Delivery.edition_id == edition_id)
        ).one()
    assert handler.recipients() == []
    assert state == DeliveryState.failed, reply


def test_sixteen_sessions_racing_for_two_slots_get_two(db: Database, db_name: str) -> None:
    """Sixteen concurrent takers (separate PostgreSQL connections) at one instant, twice
    over with the leases then run out: never more holders than slots."""
    if db_name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    limitadmin.set_limit(db, "relay", "smtp.example.ge:587", per_second=None, connections=2)
    for at in (NOW, NOW + LEASE):
        start = threading.Barrier(16)
        won: list[int | None] = []

        def take(
            holder: str, at: datetime, start: threading.Barrier, won: list[int | None]
        ) -> None:
            start.wait()
            won.append(_take(db, RELAY, holder, at))

        threads = [threading.Thread(target=take, args=(f"w{i}", at, start, won)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(s for s in won if s is not None) == [0, 1]


# Was a defect (fixed): every receiving domain that hears a 4.7.x becomes a learnt row for
# an hour: a relay (or smarthost) that answers '451 4.7.1' to every RCPT makes one row per
# domain of the list; each worker reads them all every 5 s (known_limits has no bound) and
# each then costs a reserve UPDATE per message. Learnt domain rows need a bound (here
# 1,000), or a slow-down heard for many domains at once should slow the relay
def test_a_relay_slowing_every_domain_leaves_a_bounded_number_of_rows(db: Database) -> None:
    with db.session() as session:
        for i in range(1_500):
            key = Key(SendLimitScope.domain, f"d{i}.example")
            limits.slow_down(session, key, "451 4.7.1 try later", 5.0, NOW)
        session.commit()
        known = limits.known_limits(session)
    assert len(known.rated) <= 1_000


# Was a defect (fixed): domain_name uses Python's 'idna' codec (IDNA2003), which maps 'ß' to
# 'ss' and final sigma to sigma: mail to straße.de is paced under strasse.de's limit
# (another domain) and a limit set as xn--strae-oqa.de (its name in DNS since IDNA2008)
# never applies; use the idna package (UTS 46, non-transitional)
def test_idn_domains_are_keyed_by_their_dns_name() -> None:
    assert limitkeys.domain_name("reader@straße.de") == "xn--strae-oqa.de"
    assert limitkeys.domain_name("reader@straße.de") != limitkeys.domain_name("reader@strasse.de")
