"""PostgreSQL's subscription step of an import batch, in one statement: the missing
subscriptions, their ``imported`` events from the INSERT's RETURNING, the pending ones made
active with their ``confirmed`` events, and the count of those left unsubscribed.

The portable steps (:mod:`tidings.audience.imports.merge`) find the batch's subscribers four
times and the new subscriptions once more by their creation time; here data-modifying CTEs
find them once, which is most of what the batch costs beyond the rows themselves.
"""

from datetime import datetime

from sqlalchemy import Connection, text

from tidings.db.models import Cadence, HistoryKind, SubscriptionStatus
from tidings.feedback.history import DETAIL_LIMIT, SOURCE_LIMIT

# The batch's subscribers are looked up one by one in the email index, whatever the planner
# believes of the table's size: subscribers grows by a batch at a time during an import, and
# with statistics from before it, a hash join read the whole table for every batch.
# Every CTE sees the tables as they were when the statement began: the new subscriptions
# are neither pending nor unsubscribed, so activating and counting over the snapshot gives
# what the step-by-step way gives after its INSERT.
_SUBSCRIBE = text(
    """
WITH batch AS (
    SELECT id FROM (
        SELECT (SELECT s.id FROM subscribers s WHERE s.email = m.email) AS id
        FROM tidings_import_merged m
        WHERE m.seq BETWEEN :low AND :high
          AND NOT EXISTS (SELECT FROM suppressions x WHERE x.email = m.email)
    ) AS looked_up
    WHERE id IS NOT NULL
), made AS (
    INSERT INTO subscriptions (subscriber_id, newsletter_id, status, cadence, consent_at,
        consent_method, consent_source, confirmed_at, created_at, updated_at)
    SELECT id, :newsletter, :status, :cadence, :now, 'import', :consent_source,
        CAST(:confirmed_at AS timestamptz), :now, :now
    FROM batch
    ON CONFLICT (subscriber_id, newsletter_id) DO NOTHING
    RETURNING subscriber_id
), imported AS (
    INSERT INTO subscriber_events (subscriber_id, kind, newsletter_id, detail, source,
        created_at)
    SELECT subscriber_id, :imported, :newsletter, :detail, :source, :now FROM made
), activated AS (
    UPDATE subscriptions SET status = :active, confirmed_at = :now, updated_at = :now
    WHERE :confirmed AND newsletter_id = :newsletter AND status = :pending
      AND subscriber_id IN (SELECT id FROM batch)
    RETURNING subscriber_id
), confirmed AS (
    INSERT INTO subscriber_events (subscriber_id, kind, newsletter_id, detail, source,
        created_at)
    SELECT subscriber_id, :confirmed_kind, :newsletter, :detail, :source, :now FROM activated
)
SELECT
    (SELECT count(*) FROM made),
    (SELECT count(*) FROM activated),
    (SELECT count(*) FROM subscriptions
     WHERE newsletter_id = :newsletter AND status = :unsubscribed
       AND subscriber_id IN (SELECT id FROM batch))
"""
)


def subscribe_batch(
    connection: Connection,
    newsletter_id: int,
    confirmed: bool,
    consent_source: str,
    low: int,
    high: int,
    now: datetime,
) -> tuple[int, int, int]:
    """Subscribe the batch's unsuppressed addresses (numbered ``low`` to ``high``), not
    committed; returns (subscriptions made, pending ones activated, left unsubscribed)."""
    status = SubscriptionStatus.active if confirmed else SubscriptionStatus.pending
    made, activated, unsubscribed = connection.execute(
        _SUBSCRIBE,
        {
            "low": low,
            "high": high,
            "newsletter": newsletter_id,
            "status": status.value,
            "cadence": Cadence.daily.value,
            "now": now,
            "consent_source": consent_source,
            "confirmed_at": now if confirmed else None,
            "confirmed": confirmed,
            "imported": HistoryKind.imported.value,
            "confirmed_kind": HistoryKind.confirmed.value,
            "detail": consent_source[:DETAIL_LIMIT],
            "source": "import"[:SOURCE_LIMIT],
            "active": SubscriptionStatus.active.value,
            "pending": SubscriptionStatus.pending.value,
            "unsubscribed": SubscriptionStatus.unsubscribed.value,
        },
    ).one()
    return int(made), int(activated), int(unsubscribed)
