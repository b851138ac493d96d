"""An edition's first results, watched for a relay that refuses everyone.

One relay answering ``550 5.1.1`` to every recipient once suppressed a whole list. So while an
edition has fewer than ``WATCHED_RESULTS`` results, its 5.1.x suppressions wait; when most of
those first results are the same 5xx, the edition is paused (the reason in ``editions.note``)
and its refused deliveries go back to the queue, to be tried again after a resume. Once the
first results are judged fine (or the edition is over), the waiting suppressions are written.
An editor's resume ends the watch for good (``editions.refusal_watch_ended_at``): the editor
has looked, so a small list whose addresses really are mostly dead is not paused again.

Query helpers: they run on the session they are given and never commit.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, literal, select, update
from sqlalchemy.orm import Session

from tidings.db.dialect import row_count, upsert_insert
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from tidings.deliver.policy import WATCHED_RESULTS, is_mass_refusal, means_no_such_user
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
    session: Session, results_in_batch: Mapping[int, int], now: datetime
) -> FirstResults:
    """Look at each edition that just had refusals (edition id -> its results in this
    batch): pause it on a mass refusal, or mark it judged once its first results are past
    (or an editor resumed it after a pause)."""
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
            # refusals are the readers', failed and suppressed as usual.
            verdict.judged.add(edition_id)
            suppress_refused(session, edition_id, now)
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


def suppress_refused(session: Session, edition_id: int, now: datetime) -> None:
    """Suppress the addresses of the edition's deliveries that failed with a 5.1.x reply
    (idempotent: those already suppressed stay as they are)."""
    rows = session.execute(
        select(Delivery.subscriber_id, Delivery.last_reply_code, Delivery.last_reply).where(
            Delivery.edition_id == edition_id,
            _REFUSED,
            Delivery.subscriber_id.is_not(None),
            Delivery.last_reply.like("%5.1.%"),
        )
    )
    suppress_subscribers(
        session,
        [
            subscriber_id
            for subscriber_id, code, reply in rows
            if subscriber_id is not None and means_no_such_user(code or 0, reply or "")
        ],
        now,
    )


def suppress_subscribers(session: Session, subscriber_ids: Iterable[int], now: datetime) -> None:
    """Suppress these subscribers' addresses after a 5.1.x reply (no such user)."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return
    session.execute(
        upsert_insert(session)(Suppression)
        .from_select(
            ["email", "reason", "detail", "created_at"],
            select(
                Subscriber.email,
                literal(SuppressionReason.hard_bounce.value),
                literal("SMTP 5.1.x reply while sending"),
                literal(now, Suppression.created_at.type),
            ).where(Subscriber.id.in_(ids)),
        )
        .on_conflict_do_nothing(index_elements=["email"])
    )
