"""A worker's own view of its leases, and how much it may claim.

Every claim gets a new lease token; the book remembers, per token, the deliveries whose
result is not written yet and until when (on this process's monotonic clock) the lease is
surely still ours. A delivery is only started while its lease has a good margin left, and
one the database says is no longer ours is never started or written.
"""

import time
from collections import deque
from dataclasses import dataclass, field

from tidings.deliver.ledger import Claim

#: A send starts only while more than this share of its lease is left (renewals come every
#: quarter lease at most, so a healthy worker always has about three quarters left).
START_MARGIN = 1 / 3
#: Claim at most what the observed send rate starts within this share of a lease.
CLAIM_SHARE = 0.5
RATE_WINDOW_SECONDS = 5.0


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
