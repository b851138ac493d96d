"""Results: each attempt's outcome written only while its lease still holds, in one batch.

A late result of a delivery that was taken back is dropped: the newer holder's word stands.
A bounce at send time is done to its reader here (suppressed, or a point on the bounce
score), except that while an edition's first results are watched for a mass refusal
(:mod:`refusals`), what its refusals do to readers waits.
"""

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, case, func, null, select, update
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db.dialect import is_postgres, row_count
from tidings.db.models import Delivery, DeliveryState
from tidings.deliver import refusals
from tidings.deliver.ledger.sent import close_sent
from tidings.feedback.effects import BounceScore
from tidings.mail.status import BounceKind
from tidings.mail.transport import is_permanent

#: The bounce score's rule when a caller gives none: the settings' defaults (5 points within
#: 14 days). The worker and the upkeep pass theirs from the settings.
DEFAULT_SCORE = BounceScore.from_settings(Settings.model_construct())


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, to be written behind while its lease still holds."""

    delivery_id: int
    lease_token: str
    edition_id: int
    state: DeliveryState
    code: int | None
    reply: str
    at: datetime
    next_attempt_at: datetime | None = None
    #: The kind of refusal, for the reader (see :class:`~tidings.deliver.policy.Verdict`).
    bounce: BounceKind | None = None
    #: False for a job handed back unsent by the sending limits (its receiving domain's rate
    #: was spent): its claim's attempt is taken back, so pacing never brings a give-up closer.
    counted: bool = True


@dataclass(frozen=True)
class Recorded:
    """What writing a batch did: the deliveries whose result was dropped because their lease
    was lost, editions paused for a mass refusal (with why), editions now past their watch,
    editions closed as sent."""

    written: int
    dropped: tuple[int, ...] = ()
    paused: dict[int, str] = field(default_factory=dict)
    judged: frozenset[int] = frozenset()
    #: Editions whose last delivery this batch made final: now ``sent``.
    closed: tuple[int, ...] = ()
    #: For each message written as sent: seconds from its delivery's due time to its send
    #: (the queue latency, observed by the caller once the batch is committed).
    waited: tuple[float, ...] = ()


def _still_held(
    session: Session, outcomes: Sequence[Outcome]
) -> tuple[list[Outcome], dict[int, datetime]]:
    """The outcomes whose delivery is still leased under their own token, and when each of
    their deliveries fell due. On PostgreSQL the rows stay locked until commit, so no reclaim
    can slip in between check and write."""
    ids = sorted({o.delivery_id for o in outcomes})
    query = (
        select(Delivery.id, Delivery.lease_owner, Delivery.next_attempt_at)
        .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.sending)
        .order_by(Delivery.id)
    )
    if is_postgres(session):
        query = query.with_for_update()
    owners: dict[int, str | None] = {}
    due: dict[int, datetime] = {}
    for delivery_id, owner, due_at in session.execute(query):
        owners[delivery_id] = owner
        due[delivery_id] = due_at
    return [o for o in outcomes if owners.get(o.delivery_id) == o.lease_token], due


def _write_results(session: Session, outcomes: Sequence[Outcome]) -> int:
    """One executemany UPDATE, each row fenced by its lease token; how many rows changed.
    A row made anonymous by an erasure gets its state but keeps no reply text."""
    if not outcomes:
        return 0
    statement = (
        update(Delivery)
        .where(
            Delivery.id == bindparam("b_id"),
            Delivery.state == DeliveryState.sending,
            Delivery.lease_owner == bindparam("b_token"),
        )
        .values(
            state=bindparam("b_state"),
            last_reply_code=bindparam("b_code"),
            # The reader may have been erased since the claim: the state still lands (the
            # ledger stays true), but no reply (which often quotes the address) on their row.
            last_reply=case(
                (Delivery.subscriber_id.is_(None), null()),
                else_=bindparam("b_reply", type_=Delivery.last_reply.type),
            ),
            sent_at=bindparam("b_sent_at"),
            next_attempt_at=func.coalesce(
                bindparam("b_next", type_=Delivery.next_attempt_at.type), Delivery.next_attempt_at
            ),
            lease_owner=None,
            lease_expires_at=None,
            attempts=Delivery.attempts - bindparam("b_uncounted", type_=Delivery.attempts.type),
        )
        .execution_options(synchronize_session=False)
    )
    result = session.connection().execute(
        statement,
        [
            {
                "b_id": o.delivery_id,
                "b_token": o.lease_token,
                "b_state": o.state.value,
                "b_code": o.code,
                "b_reply": o.reply[:1000],
                "b_sent_at": o.at if o.state == DeliveryState.sent else None,
                "b_next": o.next_attempt_at,
                "b_uncounted": 0 if o.counted else 1,
            }
            for o in outcomes
        ],
    )
    return row_count(result)


def record_outcomes(
    session: Session,
    outcomes: Sequence[Outcome],
    judged: Collection[int] = frozenset(),
    score: BounceScore = DEFAULT_SCORE,
) -> Recorded:
    """Write a batch of results, each only if its lease still holds (a late result of a
    delivery that was taken back is dropped: the newer holder's word stands), and do each
    bounce to its reader (hard: suppressed; soft: a point on the bounce ``score``).

    Editions not in ``judged`` are still on watch for a mass refusal: what their refusals do
    to readers waits until their first results are judged (see :mod:`refusals`). A failure
    after giving up on 4xx replies is no refusal: its point is given at once.
    """
    if not outcomes:
        return Recorded(0)
    outcomes = sorted(outcomes, key=lambda o: o.delivery_id)  # one lock order everywhere
    kept, due = _still_held(session, outcomes)
    kept_keys = {(o.delivery_id, o.lease_token) for o in kept}
    dropped = tuple(
        o.delivery_id for o in outcomes if (o.delivery_id, o.lease_token) not in kept_keys
    )
    written = _write_results(session, kept)
    now = outcomes[0].at
    batch = Counter(o.edition_id for o in kept)
    watched = {o.edition_id for o in kept if o.edition_id not in judged and _refused(o)}
    verdict = refusals.judge_first_results(session, {e: batch[e] for e in watched}, score, now)
    # Editions judged just now had all their refusals settled by the judging.
    bounces = {
        o.delivery_id: o.bounce
        for o in kept
        if o.bounce is not None and (o.edition_id in judged or not _refused(o))
    }
    refusals.score_bounces(session, bounces, score, now)
    # The last final result closes its edition at once, in this same transaction.
    closed = close_sent(session, max(o.at for o in kept), set(batch)) if kept else []
    waited = tuple(
        max(0.0, (o.at - due[o.delivery_id]).total_seconds())
        for o in kept
        if o.state == DeliveryState.sent
    )
    return Recorded(
        written, dropped, verdict.paused, frozenset(verdict.judged), tuple(closed), waited
    )


def _refused(outcome: Outcome) -> bool:
    """A permanent refusal (5xx) from the server."""
    return outcome.state == DeliveryState.failed and is_permanent(outcome.code or 0)
