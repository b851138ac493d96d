"""An edition's first results, watched for a relay that refuses everyone.

One relay answering ``550 5.1.1`` to every recipient once suppressed a whole list. So while an
edition has fewer than ``WATCHED_RESULTS`` results, what its refusals do to readers waits
(hard bounces suppress, soft ones score a point); when most of those first results are the
same 5xx, the edition is paused (the reason in ``editions.note``) and its refused deliveries
go back to the queue, to be tried again after a resume. Once the first results are judged
fine (or the edition is over), the waiting suppressions and points are written.
An editor's resume ends the watch for good (``editions.refusal_watch_ended_at``): the editor
has looked, so a small list whose addresses really are mostly dead is not paused again.

Query helpers: they run on the session they are given and never commit.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, literal, select, update
from sqlalchemy.orm import Session

from tidings.db.clauses import is_suppressed
from tidings.db.dialect import row_count
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus, Subscriber
from tidings.deliver.policy import WATCHED_RESULTS, is_mass_refusal
from tidings.feedback import effects
from tidings.feedback.effects import BounceScore, Evidence
from tidings.mail.status import BounceKind, classify
from tidings.mail.transport import PERMANENT_CODES, is_permanent

#: States that are a result of an attempt (what "the first results" counts).
RESULT_STATES = (
    DeliveryState.sent,
    DeliveryState.deferred,
    DeliveryState.failed,
    DeliveryState.uncertain,
)
HELD_PREFIX = "held while the edition is paused: "
#: A delivery failed by a 5xx reply (a refusal), as a clause.
_REFUSED = and_(
    Delivery.state == DeliveryState.failed,
    Delivery.last_reply_code.between(PERMANENT_CODES[0], PERMANENT_CODES[-1]),
)


@dataclass(frozen=True)
class FirstResults:
    """What judging did: editions paused (with the reason), editions now judged fine."""

    paused: dict[int, str] = field(default_factory=dict)
    judged: set[int] = field(default_factory=set)


def judge_first_results(
    session: Session, results_in_batch: Mapping[int, int], score: BounceScore, now: datetime
) -> FirstResults:
    """Look at each edition that just had refusals (edition id -> its results in this
    batch): pause it on a mass refusal, or mark it judged once its first results are past
    (or an editor resumed it after a pause), settling what its refusals do to readers."""
    verdict = FirstResults()
    for edition_id, in_batch in sorted(results_in_batch.items()):
        results, code, same = _first_results(session, edition_id)
        edition = session.execute(
            select(Edition.status, Edition.refusal_watch_ended_at).where(Edition.id == edition_id)
        ).one()
        status: EditionStatus | None = edition.status
        watch_ended = edition.refusal_watch_ended_at
        if results - in_batch >= WATCHED_RESULTS or watch_ended is not None:
            # Past its first results, or an editor resumed it (the relay is fine): its
            # refusals are the readers', suppressed or scored as usual.
            verdict.judged.add(edition_id)
            settle_refused(session, edition_id, score, now)
            continue
        if code is not None and is_mass_refusal(results, same):
            reason = _reason(session, edition_id, code, same, results)
            if _pause(session, edition_id, reason):
                verdict.paused[edition_id] = reason
            status = session.scalar(select(Edition.status).where(Edition.id == edition_id))
        if status == EditionStatus.paused:
            # Paused (now, or by an editor, or by another worker's verdict): its refusals in
            # these first results are held for a retry after resume, not failed for good.
            _hold_refused(session, edition_id, now)
    return verdict


def _first_results(session: Session, edition_id: int) -> tuple[int, int | None, int]:
    """(results so far, the most common 5xx code among them, how many got it)."""
    rows = session.execute(
        select(Delivery.state, Delivery.last_reply_code, func.count())
        .where(Delivery.edition_id == edition_id, Delivery.state.in_(RESULT_STATES))
        .group_by(Delivery.state, Delivery.last_reply_code)
    ).all()
    results = sum(n for _, _, n in rows)
    refusals = [
        (n, code)
        for state, code, n in rows
        if state == DeliveryState.failed and code is not None and is_permanent(code)
    ]
    if not refusals:
        return results, None, 0
    same, code = max(refusals)
    return results, code, same


def _reason(session: Session, edition_id: int, code: int, same: int, results: int) -> str:
    example = session.scalar(
        select(Delivery.last_reply)
        .where(
            Delivery.edition_id == edition_id,
            Delivery.state == DeliveryState.failed,
            Delivery.last_reply_code == code,
        )
        .limit(1)
    )
    return (
        f"Paused by the worker: {same} of the first {results} recipients were refused with "
        f"the same reply ({(example or str(code))[:200]}). The relay is likely refusing all "
        "mail; no address was suppressed for it, and those deliveries wait. Fix the relay, "
        "then resume."
    )


def _pause(session: Session, edition_id: int, reason: str) -> bool:
    """Sending -> paused, the reason added to the edition's note; False if not sending, or
    if an editor resumed it meanwhile (checked on the row itself, after any wait for it)."""
    note = func.coalesce(Edition.note + "\n", "") + reason
    moved = session.execute(
        update(Edition)
        .where(
            Edition.id == edition_id,
            Edition.status == EditionStatus.sending,
            Edition.refusal_watch_ended_at.is_(None),
        )
        .values(status=EditionStatus.paused, note=note)
        .execution_options(synchronize_session=False)
    )
    return bool(row_count(moved))


def _hold_refused(session: Session, edition_id: int, now: datetime) -> int:
    """The edition's 5xx failures go back to the queue (due again once it is resumed)."""
    held = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, _REFUSED)
        .values(
            state=DeliveryState.queued,
            next_attempt_at=now,
            last_reply=literal(HELD_PREFIX) + func.coalesce(Delivery.last_reply, ""),
        )
        .execution_options(synchronize_session=False)
    )
    return row_count(held)


def settle_refused(session: Session, edition_id: int, score: BounceScore, now: datetime) -> None:
    """What the edition's refusals (5xx failures) do to their readers, once its first results
    are judged: each reply classified, hard ones suppressed, soft ones scored, policy ones
    left alone. Idempotent: suppressed addresses are skipped, and a second point on the same
    day (that of the attempt) is no point."""
    rows = session.execute(
        select(Delivery.id, Delivery.last_reply_code, Delivery.last_reply)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.edition_id == edition_id, _REFUSED, ~is_suppressed(Subscriber.email))
        .order_by(Delivery.id)
    )
    bounces = {delivery_id: classify(code, None, reply or "") for delivery_id, code, reply in rows}
    score_bounces(session, bounces, score, now)


def score_bounces(
    session: Session, bounces: Mapping[int, BounceKind], score: BounceScore, now: datetime
) -> list[str]:
    """Each delivery's bounce (delivery id -> its kind) done to its reader, through the one
    home of those rules (:mod:`tidings.feedback.effects`): hard suppresses, soft scores a
    point, policy changes nothing for the reader (the reply stays on the delivery, for the
    sender's health). The evidence is the reply; the time, that of the attempt. What each
    changed, in words."""
    reader = sorted(d for d, kind in bounces.items() if kind != BounceKind.policy)
    if not reader:
        return []
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.edition_id,
            Subscriber.email,
            Delivery.last_reply,
            Delivery.last_attempt_at,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(reader))
        .order_by(Delivery.id)
    )
    said = []
    for delivery_id, edition_id, email, reply, attempted_at in rows:
        evidence = Evidence(f"{reply or 'refused'} (while sending edition {edition_id})")
        at = attempted_at or now
        if bounces[delivery_id] == BounceKind.hard:
            said.append(effects.hard_bounce(session, email, evidence, at))
        else:
            said.append(effects.soft_bounce(session, email, evidence, score, at))
    return said
