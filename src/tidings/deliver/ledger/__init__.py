"""The send ledger: every change of a delivery's state is made here.

- :mod:`.states`: which states are still to do (open, due), and counts by state;
- :mod:`.fanout`: one queued delivery per reader of an edition;
- :mod:`.claims`: due deliveries leased to a worker, leases renewed, who a claim goes to;
- :mod:`.results`: each attempt's result, written only while its lease holds;
- :mod:`.sent`: an edition is sent the moment its last delivery is final;
- :mod:`.closing`: expired leases taken back, unsent deliveries cancelled, editions closed.

These are query helpers: they run on the session they are given and never commit.
"""

from tidings.deliver.ledger.claims import (
    Claim,
    Recipient,
    Renewal,
    claim_due,
    recipients,
    renew_leases,
)
from tidings.deliver.ledger.closing import cancel_unsent, finish_editions, reclaim_expired
from tidings.deliver.ledger.fanout import fan_out, wants_sections
from tidings.deliver.ledger.results import Outcome, Recorded, record_outcomes
from tidings.deliver.ledger.sent import UNDERWAY, close_sent, nothing_open
from tidings.deliver.ledger.states import (
    DUE_STATES,
    OPEN_STATES,
    anything_due,
    has_due_work,
    recent_sent,
    state_counts,
)

__all__ = [
    "DUE_STATES",
    "OPEN_STATES",
    "UNDERWAY",
    "Claim",
    "Outcome",
    "Recipient",
    "Recorded",
    "Renewal",
    "anything_due",
    "cancel_unsent",
    "claim_due",
    "close_sent",
    "fan_out",
    "finish_editions",
    "has_due_work",
    "nothing_open",
    "recent_sent",
    "recipients",
    "reclaim_expired",
    "record_outcomes",
    "renew_leases",
    "state_counts",
    "wants_sections",
]
