"""Subscriptions counted per newsletter and status: the one grouped query behind every
overview (the newsletter list, the dashboard).

It lives in catalog/, below audience/, because catalog's own newsletter list needs it and a
room never imports a room above it; it only reads the subscriptions table.
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.db.models import Subscription, SubscriptionStatus


def subscription_counts(session: Session) -> dict[tuple[int, SubscriptionStatus], int]:
    """How many subscriptions each newsletter has in each status, keyed by
    ``(newsletter_id, status)``; a pair with none is absent."""
    return {
        (newsletter_id, SubscriptionStatus(status)): total
        for newsletter_id, status, total in session.execute(
            select(Subscription.newsletter_id, Subscription.status, func.count()).group_by(
                Subscription.newsletter_id, Subscription.status
            )
        )
    }
