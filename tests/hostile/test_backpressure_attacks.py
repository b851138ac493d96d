"""Hostile checks of the sending worker's back-pressure (no sender starts a message while
UNWRITTEN_LIMIT results wait to be written), of the worker stopping when its result writer
or lease renewer dies, and of the rewritten "is anything due" question.

Real parts throughout: in-process workers on the test's database (SQLite and PostgreSQL),
the aiosmtpd server of tests/smtpserver.py, another PostgreSQL connection holding a table
lock to make the database slow, and a TCP relay in front of PostgreSQL to take it away. The
only faults are one-shot errors injected into one database method of one worker, where
nothing real makes that method fail with a bug's error.
"""

import asyncio
import contextlib
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import and_, func, select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from tests.builders import one_off_edition
from tests.deliver.ledgerrows import sending
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.db.errors import is_transient
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver import ledger
from tidings.deliver.runner import connector, make_transports
from tidings.deliver.worker import Worker
from tidings.deliver.writebehind import UNWRITTEN_LIMIT


class BrokenOnce(Exception):
    """A bug's error (not a database outage), raised by one call only."""


def _here(settings: Settings, port: int, **more: Any) -> Settings:
    return settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}", **more})


def _once(real: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    """``real``, except that its first call raises ``error``."""
    calls = [0]

    def broken_once(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise error
        return real(*args, **kwargs)

    return broken_once


def _sent_in_ledger(db: Database) -> int:
    with db.session() as session:
        found = select(func.count()).where(Delivery.state == DeliveryState.sent)
        return session.scalar(found) or 0


def _states(db: Database) -> Counter[DeliveryState]:
    with db.session() as session:
        return Counter(session.scalars(select(Delivery.state)).all())


async def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _ended(task: "asyncio.Task[Any]", seconds: float) -> BaseException | None:
    """Wait for ``task`` at most ``seconds`` (it must have ended); its error, if any."""
    done, _ = await asyncio.wait([task], timeout=seconds)
    assert task in done, f"the worker was still running after {seconds} s"
    return task.exception()


async def _all_written_then_stopped(
    db: Database, count: int, stop: asyncio.Event, running: "asyncio.Task[Any]"
) -> None:
    """Until the ledger shows all ``count`` sent, then stop the worker; it ends cleanly."""
    await _until(lambda: _sent_in_ledger(db) == count, 25)
    stop.set()
    assert await _ended(running, 10) is None


def _drain(db: Database, settings: Settings) -> None:
    """Another worker, sound, sends whatever is due now (and stops when nothing is)."""

    async def run() -> None:
        worker = Worker(db, settings, make_transports(settings))
        await worker.run(drain=True, stop=asyncio.Event())

    asyncio.run(run())


# --- The worker stopping when its result writer or lease renewer dies (e922ed0) ----------


def _writer_dies_once(
    db: Database, here: Settings, probe: Callable[[Worker], Awaitable[None]] | None = None
) -> Worker:
    """Run a worker whose first result write fails with a bug's error (later ones work)
    until it ends by itself; then ``probe`` it, still inside its event loop."""

    async def scenario() -> Worker:
        worker = Worker(db, here, make_transports(here))
        worker.store.write = _once(worker.store.write, BrokenOnce("the writer broke once"))  # type: ignore[method-assign]
        running = asyncio.create_task(worker.run(drain=False, stop=asyncio.Event()))
        assert isinstance(await _ended(running, 20), BrokenOnce)
        if probe is not None:
            await probe(worker)
        return worker

    return asyncio.run(scenario())


def test_results_kept_by_a_writer_that_died_are_written_at_shutdown(
    db: Database, settings: Settings
) -> None:
    addresses = one_off_edition(db, settings, readers=200)
    with smtp_server() as (handler, port):
        here = _here(settings, port, smtp_pool_size=2, lease_seconds=5)
        worker = _writer_dies_once(db, here)
        accepted = len(handler.recipients())
        unwritten = worker.results.unwritten()
        in_ledger = _sent_in_ledger(db)
        time.sleep(5.5)  # its leases expire (nobody renews them once its loop is gone)
        _drain(db, here)
        received = Counter(handler.recipients())
    assert set(received) == set(addresses)
    assert accepted > 0
    # What should be: the worker stopped with its writer's error, but only after its last
    # flush wrote what the relay had accepted (the fault was a one-off), so nothing repeats.
    duplicates = sum(n - 1 for n in received.values())
    assert (unwritten, in_ledger, duplicates) == (0, accepted, 0)


def test_a_worker_whose_writer_died_leaves_no_task_running(
    db: Database, settings: Settings
) -> None:
    one_off_edition(db, settings, readers=200)
    left: list[str] = []

    async def probe(_: Worker) -> None:
        await asyncio.sleep(0.1)
        current = asyncio.current_task()
        left.extend(t.get_name() for t in asyncio.all_tasks() if t is not current)

    with smtp_server() as (_handler, port):
        _writer_dies_once(db, _here(settings, port, smtp_pool_size=2), probe)
    assert left == []


def test_a_worker_whose_renewer_died_still_closes_its_connections(
    db: Database, settings: Settings
) -> None:
    one_off_edition(db, settings, readers=100)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.05  # busy for longer than a renewal interval
        here = _here(settings, port, smtp_pool_size=2, lease_seconds=5)

        async def scenario() -> Worker:
            worker = Worker(db, here, make_transports(here))
            renew = worker.keeper._renew
            worker.keeper._renew = _once(renew, BrokenOnce("the renewer broke once"))
            running = asyncio.create_task(worker.run(drain=False, stop=asyncio.Event()))
            assert isinstance(await _ended(running, 20), BrokenOnce)
            return worker

        worker = asyncio.run(scenario())
        sent = len(handler.recipients())
    assert 0 < sent < 100
    assert worker.sends.transports == []  # what sends.close() leaves


def test_a_long_running_worker_rides_out_a_transient_error_of_one_result_write(
    db: Database, settings: Settings
) -> None:
    addresses = one_off_edition(db, settings, readers=120)
    lost = InterfaceError("UPDATE deliveries ...", {}, psycopg.InterfaceError("connection closed"))
    assert is_transient(lost)
    with smtp_server() as (handler, port):
        here = _here(settings, port, smtp_pool_size=2)

        async def scenario() -> bool:
            worker = Worker(db, here, make_transports(here))
            worker.store.write = _once(worker.store.write, lost)  # type: ignore[method-assign]
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(drain=False, stop=stop))
            with contextlib.suppress(AssertionError):
                await _until(lambda: running.done() or _sent_in_ledger(db) == 120, 20)
            ended_by_itself = running.done()
            stop.set()
            with contextlib.suppress(Exception):
                await running
            return ended_by_itself

        ended_by_itself = asyncio.run(scenario())
        received = Counter(handler.recipients())
    assert not ended_by_itself
    assert set(received) == set(addresses) and max(received.values()) == 1
    assert _states(db) == {DeliveryState.sent: 120}


# --- A slow or absent database while senders wait for room (05e17bc) --------------------


def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("another connection locks the ledger, or the server goes away: PostgreSQL")


@contextlib.contextmanager
def _ledger_locked(db: Database) -> Iterator[None]:
    """Another transaction holds the ledger: reads go on, no result, claim or renewal is
    written until it ends (PostgreSQL: a table lock; SQLite: the file's write lock, which
    the worker waits for within its busy timeout)."""
    if db.engine.dialect.name == "sqlite":
        writer = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        return
    with db.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE deliveries IN SHARE MODE"))
        try:
            yield
        finally:
            blocker.rollback()


class PgRelay:
    """A TCP relay in front of the test's PostgreSQL that can be cut (every connection
    through it dropped, new ones refused) and put back, to take the database away."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def _through_relay(db: Database) -> Iterator[tuple[PgRelay, Database]]:
    url = db.engine.url
    relay = PgRelay((url.host or "127.0.0.1", url.port or 5432))
    relay.restore()
    away = open_database(url.set(host="127.0.0.1", port=relay.port).render_as_string(False))
    try:
        yield relay, away
    finally:
        relay.cut()
        away.dispose()


def _ahead(handler: RecordingHandler, db: Database) -> int:
    """Messages the relay accepted that the ledger does not show as sent."""
    return len(handler.recipients()) - _sent_in_ledger(db)


def test_an_outage_while_senders_wait_for_room_bounds_them_and_hands_back_low_leases(
    db: Database, settings: Settings
) -> None:
    """The database goes away for longer than two thirds of a lease while a long-running
    worker sends: what the relay accepted beyond the ledger stays within the bound, and
    once the database is back the jobs whose lease ran low meanwhile are handed back, not
    started; in the end every reader has one message, recorded."""
    _postgres_only(db)
    addresses = one_off_edition(db, settings, readers=600)
    with _through_relay(db) as (relay, away), smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.003
        here = _here(settings, port, smtp_pool_size=4, lease_seconds=6)

        async def scenario() -> tuple[Worker, int]:
            worker = Worker(away, here, make_transports(here))
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: len(handler.recipients()) >= 100)
            relay.cut()
            await asyncio.sleep(4.5)  # renewals fail too: the leases run low
            ahead = await asyncio.to_thread(_ahead, handler, db)
            relay.restore()
            await _all_written_then_stopped(db, len(addresses), stop, running)
            return worker, ahead

        worker, ahead = asyncio.run(scenario())
        received = Counter(handler.recipients())
    print(f"outage: {ahead} ahead of the ledger, {worker.stats.not_started} handed back")
    assert 0 < ahead <= UNWRITTEN_LIMIT - 1 + 4, ahead
    assert worker.stats.not_started > 0  # handed back once the room came: leases too low
    assert set(received) == set(addresses) and max(received.values()) == 1
    assert _states(db) == {DeliveryState.sent: len(addresses)}


def test_a_draining_worker_fails_when_the_database_goes_away_while_senders_wait(
    db: Database, settings: Settings
) -> None:
    """--drain with the database away must fail (the caller sees it), not wait for room
    for ever: the senders wait, but the worker's own upkeep meets the outage."""
    _postgres_only(db)
    one_off_edition(db, settings, readers=600)
    with _through_relay(db) as (relay, away), smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.003
        here = _here(settings, port, smtp_pool_size=4)

        async def scenario() -> tuple[BaseException | None, float]:
            worker = Worker(away, here, make_transports(here))
            running = asyncio.create_task(worker.run(drain=True, stop=asyncio.Event()))
            await _until(lambda: len(handler.recipients()) >= 100)
            relay.cut()
            cut_at = time.monotonic()
            error = await _ended(running, 20)
            return error, time.monotonic() - cut_at

        error, took = asyncio.run(scenario())
    print(f"drain, database away: ended after {took:.1f} s with {type(error).__name__}")
    assert isinstance(error, OperationalError)
    assert took < 15, took


def test_a_stop_while_senders_wait_for_room_starts_nothing_and_writes_everything(
    db: Database, settings: Settings
) -> None:
    """SIGTERM (the stop event) while the ledger is locked and the senders wait for room:
    nothing more is sent, and once the database answers the worker writes what the relay
    accepted, hands back the rest, and ends."""
    addresses = one_off_edition(db, settings, readers=600)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.003
        here = _here(settings, port, smtp_pool_size=4)

        async def scenario() -> tuple[int, int, float]:
            worker = Worker(db, here, make_transports(here))
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: len(handler.recipients()) >= 100)
            with _ledger_locked(db):
                await asyncio.sleep(1.5)  # the senders fill the room and wait
                stop.set()
                at_stop = len(handler.recipients())
                await asyncio.sleep(1.5)
                after = len(handler.recipients())
                released_at = time.monotonic()
            assert await _ended(running, 10) is None
            return at_stop, after, time.monotonic() - released_at

        at_stop, after, took = asyncio.run(scenario())
        received = Counter(handler.recipients())
    print(f"stop while waiting: {at_stop} -> {after} sent, ended {took:.1f} s after the lock")
    assert after == at_stop
    assert took < 5, took
    assert max(received.values()) == 1
    states = _states(db)
    assert states[DeliveryState.sent] == len(received)
    assert states == {DeliveryState.sent: len(received), DeliveryState.queued: 600 - len(received)}
    assert len(addresses) == 600


def test_a_growing_pool_keeps_the_bound_of_its_connections_while_the_ledger_is_locked(
    db: Database, settings: Settings
) -> None:
    """The adaptive pool (as `tidings worker` runs it) grows while the database is slow:
    what the relay accepted beyond the ledger stays within UNWRITTEN_LIMIT - 1 plus one per
    connection it had."""
    addresses = one_off_edition(db, settings, readers=1_000)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.01  # slow: more connections raise the rate
        here = _here(settings, port, smtp_pool_size=1, smtp_max_connections=12)

        async def scenario() -> tuple[int, int]:
            worker = Worker(db, here, make_transports(here), connect=connector(here))
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: len(worker.sends.transports) >= 4)
            most = len(worker.sends.transports)
            with _ledger_locked(db):
                for _ in range(30):
                    await asyncio.sleep(0.1)
                    most = max(most, len(worker.sends.transports))
                ahead = await asyncio.to_thread(_ahead, handler, db)
            await _all_written_then_stopped(db, len(addresses), stop, running)
            return ahead, most

        ahead, most = asyncio.run(scenario())
        received = Counter(handler.recipients())
    print(f"growing pool: {ahead} ahead of the ledger with up to {most} connections")
    assert most > 1
    assert 0 < ahead <= UNWRITTEN_LIMIT - 1 + most, (ahead, most)
    assert set(received) == set(addresses) and max(received.values()) == 1


# --- "Is anything due", asked as three ordered subqueries (11dbcce) -----------------------


def _due_as_before(session: Session, now: datetime) -> bool:
    """The statement 11dbcce replaced: one OR over the sending editions' deliveries."""
    due = and_(
        Delivery.state.in_((DeliveryState.queued, DeliveryState.deferred)),
        Delivery.next_attempt_at <= now,
    )
    held = Delivery.state == DeliveryState.sending
    query = (
        select(Delivery.id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Edition.status == EditionStatus.sending, due | held)
        .limit(1)
    )
    return session.scalar(query) is not None


def test_is_anything_due_answers_as_the_statement_it_replaced(
    db: Database, settings: Settings
) -> None:
    """Every edition status (paused, cancelled, ...) with every mix of delivery states,
    due now or later, leases live or expired: the new question answers as the old one did,
    on both databases."""
    first = sending(db, settings, readers=3)
    second = sending(db, settings, readers=2, slug="weekly")
    editions = [first.edition_id, second.edition_id]
    now = datetime.now(UTC)
    moments = [now - timedelta(minutes=5), now, now + timedelta(minutes=5)]
    rng = random.Random(11)
    with db.session() as session:
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
    answers: Counter[bool] = Counter()
    for _ in range(150):
        with db.session() as session:
            for edition_id in editions:
                status = rng.choice(list(EditionStatus))
                session.execute(
                    update(Edition).where(Edition.id == edition_id).values(status=status)
                )
            for delivery_id in ids:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id)
                    .values(
                        state=rng.choice(list(DeliveryState)),
                        next_attempt_at=rng.choice(moments),
                        lease_expires_at=rng.choice([None, *moments]),
                    )
                )
            session.commit()
        with db.session() as session:
            new = ledger.has_due_work(session, now)
            old = _due_as_before(session, now)
            picture = session.execute(
                select(Edition.status, Delivery.state, Delivery.next_attempt_at).join(
                    Edition, Edition.id == Delivery.edition_id
                )
            ).all()
        assert new == old, picture
        answers[new] += 1
    assert answers[True] and answers[False]  # both answers were seen


@pytest.mark.parametrize("change", ["pause", "cancel"])
def test_a_pause_or_cancel_while_senders_wait_for_room_stops_the_sending(
    db: Database, settings: Settings, change: str
) -> None:
    """An editor pauses (or cancels) the edition while the ledger is locked and the senders
    wait for room: once the database answers, the worker sends at most about one renewal
    interval more, hands back (or cancels) the rest, and stops when told."""
    from tidings.compose.lifecycle import EDITION_CHANGES

    addresses = one_off_edition(db, settings, readers=600)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.01
        here = _here(settings, port, smtp_pool_size=2)

        async def scenario() -> tuple[int, int]:
            worker = Worker(db, here, make_transports(here))
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: len(handler.recipients()) >= 50)
            with db.session() as session:
                edition_id = session.scalars(select(Delivery.edition_id)).first()
            assert edition_id is not None
            with _ledger_locked(db):
                await asyncio.sleep(1)  # the senders fill the room and wait
                changing = asyncio.create_task(
                    asyncio.to_thread(EDITION_CHANGES[change], db, settings, edition_id)
                )
                await asyncio.sleep(0.5)
            await changing
            at_change = len(handler.recipients())
            await asyncio.sleep(3)
            stop.set()
            assert await _ended(running, 10) is None
            return at_change, len(handler.recipients())

        at_change, received = asyncio.run(scenario())
    print(f"{change} while waiting for room: {at_change} -> {received} sent")
    # At most a renewal interval (2 s) at ~200 a second over 2 connections, and the room.
    assert received - at_change <= UNWRITTEN_LIMIT + 2 + 400, (at_change, received)
    assert received < len(addresses)
    left = DeliveryState.queued if change == "pause" else DeliveryState.cancelled
    assert _states(db) == {DeliveryState.sent: received, left: len(addresses) - received}
