"""The console: an edition's bounces, the sender-health panel, and an admin's undo of a change
to a subscriber's history. Everyone signed in reads; only admins undo."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from tidings.feedback.history import undo
from tidings.reports.feedback import edition_feedback
from tidings.reports.senderhealth import DAYS_MAX, sender_health
from tidings.text import as_sentence
from tidings.web.admin.session import Admin, Context, Viewer, console_page
from tidings.web.deps import AfterRowId, RowId

router = APIRouter(prefix="/admin")
PAGE_SIZE = 50
Days = Annotated[int, Query(ge=1, le=DAYS_MAX)]


@router.get("/editions/{edition_id}/bounces", response_class=HTMLResponse)
def edition_bounce_list(
    edition_id: RowId, request: Request, context: Context, account: Viewer, after: AfterRowId = 0
) -> HTMLResponse:
    """The edition's deliveries refused at send time or that came back, 50 a page."""
    found = edition_feedback(context.db, edition_id, after, PAGE_SIZE)
    next_after = found.page.next_after
    return console_page(
        request,
        context,
        account,
        "bounces.html",
        found=found,
        next_url=f"?{urlencode({'after': next_after})}" if next_after else None,
    )


@router.get("/sender-health", response_class=HTMLResponse)
def sender_health_page(
    request: Request, context: Context, account: Viewer, days: Days = 7
) -> HTMLResponse:
    """Policy refusals and bounces per receiving domain, and the newest inbound messages."""
    return console_page(
        request,
        context,
        account,
        "sender_health.html",
        health=sender_health(context.db, days),
        windows=(1, 7, 30, DAYS_MAX),
    )


@router.post("/subscriber-events/{event_id}/undo", response_class=HTMLResponse)
def undo_event(
    event_id: RowId,
    request: Request,
    context: Context,
    account: Admin,
    subscriber: Annotated[RowId, Form()],
) -> HTMLResponse:
    """Reverse one change that came back made; the page says what that changed. The form's
    ``subscriber`` only leads back to the page the button was on."""
    said = undo(context.db, event_id, account.email)
    return console_page(
        request,
        context,
        account,
        "message.html",
        title="Undone",
        message=as_sentence(said),
        back=f"/admin/subscribers/{subscriber}",
    )
