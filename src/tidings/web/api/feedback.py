"""What came back: an edition's bounces (editors), the sender's health (every token), and a
subscriber's history with its undo (admin tokens)."""

from typing import Annotated

from fastapi import APIRouter, Query

from tidings.feedback.history import HistoryRow, history_of, undo
from tidings.reports.feedback import CameBack, EditionBounce, edition_bounces
from tidings.reports.senderhealth import DAYS_MAX, sender_health
from tidings.web.api.auth import Context, Owner, Reader, Writer
from tidings.web.api.feedback_schemas import (
    CameBackOut,
    DomainHealthOut,
    EditionBounceOut,
    HistoryEventOut,
    InboundOut,
    SenderHealthOut,
    UndoOut,
)
from tidings.web.api.paging import Cursor, Limit, decode, encode
from tidings.web.api.schemas import Page
from tidings.web.deps import RowId

router = APIRouter(tags=["feedback"])


def _came_back(c: CameBack) -> CameBackOut:
    return CameBackOut(
        id=c.id,
        received_at=c.received_at,
        channel=c.channel,
        provider=c.provider,
        meaning=c.meaning.value,
        status=c.status,
        diagnostic=c.diagnostic,
        changes=c.changes,
    )


def _bounce(b: EditionBounce) -> EditionBounceOut:
    return EditionBounceOut(
        delivery_id=b.delivery_id,
        subscriber_id=b.subscriber_id,
        email=b.email,
        state=b.state.value,
        feedback=b.feedback.value if b.feedback else None,
        reply_code=b.reply_code,
        reply=b.reply,
        refusal=b.refusal.value if b.refusal else None,
        last_attempt_at=b.last_attempt_at,
        came_back=[_came_back(c) for c in b.came_back],
    )


def _event(h: HistoryRow) -> HistoryEventOut:
    return HistoryEventOut(
        id=h.id,
        kind=h.kind.value,
        newsletter=h.newsletter_slug,
        detail=h.detail,
        inbound_id=h.inbound_id,
        created_at=h.created_at,
        undone_at=h.undone_at,
        undone_by=h.undone_by,
        undoable=h.undoable,
        source=h.source,
    )


@router.get("/editions/{edition_id}/bounces", response_model=Page[EditionBounceOut])
def list_bounces(
    edition_id: RowId, context: Context, who: Writer, cursor: Cursor = None, limit: Limit = 50
) -> Page[EditionBounceOut]:
    """The edition's deliveries refused at send time or that came back (bounced, complained),
    by delivery id, each with the inbound messages about it (the newest five)."""
    page = edition_bounces(context.db, edition_id, decode(cursor), limit)
    return Page[EditionBounceOut](
        items=[_bounce(b) for b in page.rows], next_cursor=encode(page.next_after)
    )


@router.get("/sender-health", response_model=SenderHealthOut)
def get_sender_health(
    context: Context,
    who: Reader,
    days: Annotated[int, Query(ge=1, le=DAYS_MAX, description="the window, in days")] = 7,
) -> SenderHealthOut:
    """Policy refusals (5.7.x, blocklists) at send time and policy bounces per receiving
    domain, beside the mail each domain accepted; and the newest inbound messages."""
    health = sender_health(context.db, days)
    return SenderHealthOut(
        days=health.days,
        since=health.since,
        sent=health.sent,
        refused=health.refused,
        bounced=health.bounced,
        partial=health.partial,
        domains=[
            DomainHealthOut(
                domain=d.domain,
                sent=d.sent,
                refused=d.refused,
                bounced=d.bounced,
                rate_percent=d.rate_percent,
                example=d.example,
            )
            for d in health.domains
        ],
        recent=[
            InboundOut(
                **_came_back(m).model_dump(),
                recipient_domain=m.recipient_domain,
                subscriber_id=m.subscriber_id,
                delivery_id=m.delivery_id,
            )
            for m in health.recent
        ],
    )


@router.get(
    "/subscribers/{subscriber_id}/history",
    response_model=list[HistoryEventOut],
    tags=["subscribers"],
)
def subscriber_history(subscriber_id: RowId, context: Context, who: Owner) -> list[HistoryEventOut]:
    """The subscriber's history, newest first: every sign-up, confirmation, unsubscribe, undo,
    import and admin change, and what came back, each with its source and evidence and
    whether it was undone."""
    return [_event(h) for h in history_of(context.db, subscriber_id)]


@router.post("/subscriber-events/{event_id}/undo", response_model=UndoOut)
def undo_event(event_id: RowId, context: Context, who: Owner) -> UndoOut:
    """Reverse one change (a suppression, an unsubscribe, a bounce point): 409 when it was
    undone already or cannot be."""
    by = f"api token {who.token_id} ({who.name})"
    return UndoOut(event_id=event_id, changed=undo(context.db, event_id, by, source="api"))
