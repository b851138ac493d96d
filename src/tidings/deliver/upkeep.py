"""The ledger's upkeep: one service, run by every worker and by the scheduler.

It takes back the deliveries whose holder stopped renewing their lease (retried, or set aside
as uncertain with ``at_most_once``), then closes the editions with nothing left to send and
stores their final counts. Deferred deliveries need no upkeep: they become due by their
next-attempt time, which the claim query honours.

Leases are judged on the database's clock (:mod:`~tidings.deliver.dbclock`), as they were
written, never on the caller's: a host whose clock runs ahead would take back live leases,
and their messages would be sent twice.

Each step is a transaction of its own, retried on contention, so a step failing for its data
never stops the other (it is logged, and tried again at the next upkeep). The database being
away stops the upkeep with its error: nothing can be done without it, and the caller waits
for it as for any of its work.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tidings.db.engine import Database
from tidings.db.errors import is_transient
from tidings.db.types import utcnow
from tidings.deliver import ledger
from tidings.deliver.dbclock import db_time
from tidings.deliver.retry import retry_transient
from tidings.feedback.effects import BounceScore

log = logging.getLogger(__name__)

RECLAIM = "reclaim expired leases"
FINISH = "finish editions"


@dataclass(frozen=True)
class Upkeep:
    """What one upkeep did."""

    reclaimed: int = 0
    finished: int = 0
    #: The names of the steps that failed (each is logged).
    failed: tuple[str, ...] = ()


def run_upkeep(
    db: Database, at_most_once: bool, score: BounceScore, now: datetime | None = None
) -> Upkeep:
    """Take back expired leases, then close finished editions (see the module docstring);
    refusals that waited for an edition's first results are settled by the bounce ``score``.
    ``now`` (the caller's clock) stamps only the editions closed: leases expire by the
    database's."""
    now = now or utcnow()
    failed: list[str] = []
    reclaimed = _step(
        db, RECLAIM, lambda session: ledger.reclaim_expired(session, None, at_most_once), failed
    )
    if reclaimed:
        log.warning("reclaimed %d deliveries whose lease expired", reclaimed)
    finished = _step(
        db, FINISH, lambda session: ledger.finish_editions(session, now, score), failed
    )
    return Upkeep(reclaimed, finished, tuple(failed))


def has_due_work(db: Database, now: datetime | None = None) -> bool:
    """Whether anything is due at ``now`` (the database's time unless given), or held by a
    lease that has not expired yet."""

    def ask() -> bool:
        with db.session() as session:
            return ledger.has_due_work(session, db_time(session, now))

    return retry_transient(ask)


def _step(db: Database, name: str, work: Callable[[Session], int], failed: list[str]) -> int:
    """Run one step in its own transaction; 0, with its name in ``failed``, if it failed for
    any reason but the database being away (that is raised)."""

    def transaction() -> int:
        with db.session() as session:
            done = work(session)
            session.commit()
            return done

    try:
        return retry_transient(transaction)
    except Exception as exc:
        if is_transient(exc):
            raise
        log.exception("upkeep step %r failed; the other steps went on", name)
        failed.append(name)
        return 0
