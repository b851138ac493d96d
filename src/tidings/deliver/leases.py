"""A worker's own view of its leases, their renewal, and how much it may claim.

Every claim gets a new lease token; the book remembers, per token, the deliveries whose
result is not written yet and until when (on this process's monotonic clock) the lease is
surely still ours. A delivery is only started while its lease has a good margin left, and
one the database says is no longer ours is never started or written. The keeper renews the
leases for as long as the worker lives, whatever its send path waits on.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tidings.db.errors import is_transient, outage_name
from tidings.db.models import EditionStatus
from tidings.deliver.ledger import Claim, Renewal

log = logging.getLogger(__name__)

#: A send starts only while more than this share of its lease is left (renewals come every
#: quarter lease at most, so a healthy worker always has about three quarters left).
START_MARGIN = 1 / 3
#: Claim at most what the observed send rate starts within this share of a lease.
CLAIM_SHARE = 0.5
RATE_WINDOW_SECONDS = 5.0
RENEW_AT_MOST_SECONDS = 2.0


@dataclass
class LeaseBook:
    """The claims this worker holds, by lease token."""

    worker: str
    lease_seconds: float
    _seq: int = 0
    _pending: dict[str, set[int]] = field(default_factory=dict)
    _deadline: dict[str, float] = field(default_factory=dict)
    _lost: set[int] = field(default_factory=set)

    def new_token(self) -> str:
        """A token for the next claim: "<worker>:<claim number>", never reused."""
        self._seq += 1
        return f"{self.worker}:{self._seq}"

    def claimed(self, token: str, delivery_ids: list[int], asked_at: float) -> None:
        """Note a claim; ``asked_at`` is the monotonic time before it was asked for, so the
        local deadline is never later than the one the database holds."""
        if delivery_ids:
            self._pending[token] = set(delivery_ids)
            self._deadline[token] = asked_at + self.lease_seconds

    def tokens(self) -> list[str]:
        """The tokens with deliveries whose result is not written yet."""
        return sorted(self._pending)

    def renewed(self, tokens: list[str], held: frozenset[int], asked_at: float) -> int:
        """Apply a renewal of ``tokens``: deadlines move on, and deliveries the database no
        longer lets us hold are lost; how many were newly lost."""
        lost = 0
        for token in tokens:
            ids = self._pending.get(token)
            if ids is None:
                continue
            gone = ids - held
            if gone:
                lost += len(gone - self._lost)
                self._lost |= gone
            if ids - gone:
                self._deadline[token] = asked_at + self.lease_seconds
        return lost

    def may_start(self, claim: Claim) -> bool:
        """Whether this delivery is still ours with a good margin of lease left."""
        if claim.delivery_id in self._lost:
            return False
        deadline = self._deadline.get(claim.lease_token, 0.0)
        return deadline - time.monotonic() > self.lease_seconds * START_MARGIN

    def is_lost(self, delivery_id: int) -> bool:
        return delivery_id in self._lost

    def settled(self, claims: list[tuple[int, str]]) -> None:
        """These (delivery, token) pairs are written (or dropped): forget them."""
        for delivery_id, token in claims:
            ids = self._pending.get(token)
            if ids is not None:
                ids.discard(delivery_id)
                if not ids:
                    del self._pending[token]
                    self._deadline.pop(token, None)
            self._lost.discard(delivery_id)


def renew_interval(lease_seconds: float) -> float:
    """How often leases are renewed: a quarter lease, and at least every 2 s, so a pause or
    a cancel also reaches the claimed-but-unstarted deliveries quickly."""
    return min(lease_seconds / 4, RENEW_AT_MOST_SECONDS)


class LeaseKeeper:
    """Renews the book's leases; learns from each renewal which deliveries were lost and
    which editions stopped sending meanwhile."""

    def __init__(self, book: LeaseBook, renew: Callable[[list[str]], Renewal]) -> None:
        self.book = book
        #: Blocking database work, run in a thread (never behind the worker's database
        #: lock: a slow claim or write must not delay a renewal).
        self._renew = renew
        #: Editions that are no longer sending (paused, cancelled), as the last renewal saw.
        self.stopped: dict[int, EditionStatus] = {}

    async def renew(self) -> None:
        """Renew every lease the book holds now."""
        tokens = self.book.tokens()
        if not tokens:
            self.stopped.clear()
            return
        asked_at = time.monotonic()
        renewal = await asyncio.to_thread(self._renew, tokens)
        lost = self.book.renewed(tokens, renewal.held, asked_at)
        if lost:
            log.warning("lost the lease of %d deliveries (taken back by another worker)", lost)
        self.stopped.clear()
        self.stopped.update(renewal.stopped)

    async def run(self) -> None:
        """Renew every :func:`renew_interval` until cancelled; a database error is logged
        and the next renewal tries again."""
        every = renew_interval(self.book.lease_seconds)
        while True:
            await asyncio.sleep(every)
            try:
                await self.renew()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.error("cannot renew leases (%s); retrying", outage_name(exc))


@dataclass
class SendRate:
    """Sends finished per second, over the last few seconds."""

    _times: deque[float] = field(default_factory=deque)

    def tick(self) -> None:
        now = time.monotonic()
        self._times.append(now)
        while self._times and now - self._times[0] > RATE_WINDOW_SECONDS:
            self._times.popleft()

    def per_second(self) -> float:
        if not self._times:
            return 0.0
        span = max(time.monotonic() - self._times[0], 1.0)
        return len(self._times) / span


def claim_limit(rate: float, lease_seconds: float, pool: int, batch: int) -> int:
    """How many deliveries a worker may hold unstarted or in flight: what it can start
    within part of a lease at the observed rate, at least one per connection, at most a
    batch. Before any send finished the rate is unknown: one per connection."""
    by_rate = int(rate * lease_seconds * CLAIM_SHARE)
    return max(pool, min(batch, by_rate))
