"""The worker's own view of its leases, and how much it may claim (pure, no database)."""

import time
from datetime import UTC, datetime

from tidings.deliver.leases import LeaseBook, claim_limit, renew_interval
from tidings.deliver.ledger import Claim


def _claim(delivery_id: int, token: str) -> Claim:
    return Claim(delivery_id, 1, delivery_id, f"<m{delivery_id}@x>", 1, datetime.now(UTC), token)


def test_every_claim_gets_a_token_of_its_own() -> None:
    book = LeaseBook("host:1:abc", 60)
    assert [book.new_token(), book.new_token()] == ["host:1:abc:1", "host:1:abc:2"]


def test_a_lease_running_out_unrenewed_stops_new_sends() -> None:
    book = LeaseBook("w", 6)
    token = book.new_token()
    book.claimed(token, [1, 2], time.monotonic())
    assert book.may_start(_claim(1, token))
    # Claimed 5 s ago and never renewed (the database did not answer): 1 s of 6 is left.
    book.claimed(token, [1, 2], time.monotonic() - 5)
    assert not book.may_start(_claim(1, token))
    # A renewal that holds them brings it back.
    book.renewed([token], frozenset({1, 2}), time.monotonic())
    assert book.may_start(_claim(1, token))


def test_a_delivery_the_renewal_did_not_hold_is_lost() -> None:
    book = LeaseBook("w", 60)
    token = book.new_token()
    book.claimed(token, [1, 2], time.monotonic())
    assert book.renewed([token], frozenset({2}), time.monotonic()) == 1
    assert book.is_lost(1) and not book.may_start(_claim(1, token))
    assert book.may_start(_claim(2, token))
    book.settled([(1, token), (2, token)])
    assert book.tokens() == []


def test_claims_are_bounded_by_pool_and_send_rate() -> None:
    # Unknown rate: one per connection. 3 s a message on 4 connections and a 60 s lease:
    # 1.33/s starts 40 within half a lease. Fast: at most a batch.
    assert claim_limit(0.0, 60, pool=4, batch=200) == 4
    assert claim_limit(4 / 3, 60, pool=4, batch=200) == 40
    assert claim_limit(1000.0, 60, pool=4, batch=200) == 200


def test_leases_are_renewed_every_quarter_lease_and_at_least_every_two_seconds() -> None:
    assert renew_interval(4) == 1.0
    assert renew_interval(8) == 2.0
    assert renew_interval(600) == 2.0
