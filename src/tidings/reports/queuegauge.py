"""The delivery queue as Prometheus sees it: deliveries queued per edition, read from the
database at scrape time.

Bounded: only editions still going (sending or paused), the newest :data:`MAX_EDITIONS` of
them, counted in one grouped query; an edition with nothing queued reads 0 until it is over.
A scrape while the database is away yields no figures (and says why in the log): the
process's own metrics are still served.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus, Newsletter

log = logging.getLogger(__name__)

#: At most this many editions are reported (the newest still going): enough for any
#: dashboard, and a scrape stays cheap however many editions pile up.
MAX_EDITIONS = 50
GOING = (EditionStatus.sending, EditionStatus.paused)


@dataclass(frozen=True)
class QueuedEdition:
    edition_id: int
    newsletter: str
    queued: int


def queued_per_edition(db: Database, limit: int = MAX_EDITIONS) -> list[QueuedEdition]:
    """Deliveries queued for each of the newest ``limit`` editions still going."""
    with db.session() as session:
        going = session.execute(
            select(Edition.id, Newsletter.slug)
            .join(Newsletter, Newsletter.id == Edition.newsletter_id)
            .where(Edition.status.in_(GOING))
            .order_by(Edition.id.desc())
            .limit(limit)
        ).all()
        ids = [edition_id for edition_id, _ in going]
        counts: dict[int, int] = {}
        if ids:
            counts = {
                edition_id: n
                for edition_id, n in session.execute(
                    select(Delivery.edition_id, func.count())
                    .where(Delivery.edition_id.in_(ids), Delivery.state == DeliveryState.queued)
                    .group_by(Delivery.edition_id)
                )
            }
        return [QueuedEdition(eid, slug, counts.get(eid, 0)) for eid, slug in going]


class QueueCollector(Collector):
    """``tidings_deliveries_queued{edition, newsletter}``, asked of the database per scrape."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        try:
            found = queued_per_edition(self._db)
        except Exception as exc:  # a scrape must never fail for the database
            log.warning("cannot read the delivery queue for metrics (%s)", type(exc).__name__)
            return [family]
        for row in found:
            family.add_metric([str(row.edition_id), row.newsletter], row.queued)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tidings_deliveries_queued",
            "Deliveries waiting for a worker, per edition still sending or paused.",
            labels=["edition", "newsletter"],
        )
