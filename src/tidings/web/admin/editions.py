"""Console: editions. Everyone signed in watches; editors send, pause, resume and cancel, as
the one table of moves (``compose.lifecycle.MOVES``) allows (the builder, where editions are
made, is ``web.admin.builder``)."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tidings.compose.lifecycle import EDITION_CHANGES, MOVES, allowed_moves
from tidings.compose.sendtime import plan_scheduled
from tidings.errors import InvalidInput
from tidings.reports.feedback import edition_feedback_summary
from tidings.reports.progress import (
    EditionProgress,
    edition_progress,
    list_editions,
    zoned_time,
)
from tidings.web.admin.builder import readers_phrase
from tidings.web.admin.session import Context, Editor, Viewer, console_page, see_other
from tidings.web.deps import RowId

router = APIRouter(prefix="/admin/editions")


@router.get("", response_class=HTMLResponse)
def edition_list(request: Request, context: Context, account: Viewer) -> HTMLResponse:
    return console_page(
        request, context, account, "editions.html", editions=list_editions(context.db, None, 50)
    )


def _progress_json(progress: EditionProgress) -> dict[str, Any]:
    return {
        "id": progress.edition_id,
        "status": progress.status.value,
        "counts": {state.value: n for state, n in progress.counts.items()},
        "total": progress.total,
        "done": progress.done,
        "bounced": progress.bounced,
        "complained": progress.complained,
        "percent": progress.percent,
        "per_second": round(progress.per_second, 2),
        "eta_seconds": round(progress.eta_seconds) if progress.eta_seconds is not None else None,
    }


@router.get("/{edition_id}", response_class=HTMLResponse)
def edition_page(
    edition_id: RowId, request: Request, context: Context, account: Viewer
) -> HTMLResponse:
    progress = edition_progress(context.db, edition_id)
    return console_page(
        request,
        context,
        account,
        "edition.html",
        e=progress,
        live=_progress_json(progress),
        moves=[(name, MOVES[name].label) for name in allowed_moves(progress.status)],
        feedback=edition_feedback_summary(context.db, edition_id),
    )


@router.get("/{edition_id}/progress.json")
def edition_progress_json(edition_id: RowId, context: Context, account: Viewer) -> JSONResponse:
    return JSONResponse(_progress_json(edition_progress(context.db, edition_id)))


@router.post("/{edition_id}/{change}", response_model=None)
async def edition_change(
    edition_id: RowId, change: str, request: Request, context: Context, account: Editor
) -> Response:
    """Apply a move. Sending a scheduled edition now asks first, as the builder does (the
    move itself is one conditional UPDATE: a second press is refused, never sent twice)."""
    if change not in EDITION_CHANGES:
        raise InvalidInput("There is no such change to an edition.")
    sure = (await request.form()).get("sure") == "yes"
    if change == "send" and not sure:
        plan = await asyncio.to_thread(plan_scheduled, context.db, context.settings, edition_id)
        if plan is not None:
            return console_page(
                request,
                context,
                account,
                "edition_send_confirm.html",
                plan=plan,
                action="send",
                when=zoned_time(datetime.now(UTC), plan.timezone),
                edition_id=edition_id,
                button=f"Yes, send to {readers_phrase(plan.recipients)}",
            )
    await asyncio.to_thread(EDITION_CHANGES[change], context.db, context.settings, edition_id)
    return see_other(f"/admin/editions/{edition_id}")
