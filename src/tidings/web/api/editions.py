"""/editions: create (send now or at a time), preview, status, change a scheduled one,
pause, resume, cancel."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from tidings.access.idempotency import Once, create_edition_once
from tidings.compose.lifecycle import EDITION_CHANGES
from tidings.compose.oneoff import DraftChanges, preview
from tidings.compose.sendtime import NO_OFFSET, EditionOrder, change_scheduled
from tidings.compose.service import OneOff
from tidings.errors import InvalidInput
from tidings.reports.progress import EditionProgress, edition_page, edition_progress
from tidings.web.api.auth import Context, Reader, Writer
from tidings.web.api.edition_schemas import EditionPatch
from tidings.web.api.paging import Cursor, Limit, decode, encode
from tidings.web.api.schemas import EditionIn, EditionOut, Page, PreviewIn, PreviewOut
from tidings.web.deps import RowId

router = APIRouter(tags=["editions"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200, description="Repeat a POST safely: the same key returns the first answer"
    ),
]


def _out(p: EditionProgress) -> EditionOut:
    return EditionOut(
        id=p.edition_id,
        newsletter=p.slug,
        kind=p.kind,
        status=p.status.value,
        subject=p.subject,
        scheduled_for=p.scheduled_for,
        created_at=p.created_at,
        counts={state.value: n for state, n in p.counts.items()},
        total=p.total,
        done=p.done,
        bounced=p.bounced,
        complained=p.complained,
        per_second=round(p.per_second, 2),
        eta_seconds=p.eta_seconds,
    )


def _one_off(body: EditionIn | PreviewIn, created_by: str) -> OneOff:
    return OneOff(
        article_ids=list(body.article_ids),
        intro_markdown=body.intro_markdown,
        subject=body.subject,
        created_by=created_by,
    )


def _send_at(body: EditionIn) -> datetime | None:
    """None to send now; the API takes instants only (a time with its UTC offset)."""
    if body.send == "now":
        return None
    if body.scheduled_for is None or body.scheduled_for.tzinfo is None:
        raise InvalidInput(NO_OFFSET)
    return body.scheduled_for


@router.post("/editions", response_model=EditionOut, status_code=201)
def create(
    body: EditionIn, context: Context, who: Writer, idempotency_key: IdempotencyKey = None
) -> Any:
    """Compose a one-off edition and send it now, or keep it for ``scheduled_for``."""
    created_by = f"api token {who.token_id} ({who.name})"
    order = EditionOrder(body.newsletter, _one_off(body, created_by), _send_at(body))
    answer = create_edition_once(
        context.db,
        context.settings,
        Once(who.token_id, idempotency_key, body.model_dump(mode="json")),
        order,
        lambda edition_id: jsonable_encoder(_out(edition_progress(context.db, edition_id))),
    )
    return JSONResponse(answer.body, status_code=answer.status_code)


@router.get("/editions", response_model=Page[EditionOut])
def list_editions(
    context: Context,
    who: Reader,
    cursor: Cursor = None,
    limit: Limit = 20,
    newsletter: str | None = None,
) -> Page[EditionOut]:
    """Editions by id, each with its progress (of one newsletter, or of all)."""
    page = edition_page(context.db, newsletter, decode(cursor), limit)
    return Page[EditionOut](items=[_out(p) for p in page.rows], next_cursor=encode(page.next_after))


@router.get("/editions/{edition_id}", response_model=EditionOut)
def read(edition_id: RowId, context: Context, who: Reader) -> EditionOut:
    """Status and progress: counts per delivery state, rate, ETA."""
    return _out(edition_progress(context.db, edition_id))


@router.patch("/editions/{edition_id}", response_model=EditionOut)
def change_edition(
    edition_id: RowId, body: EditionPatch, context: Context, who: Writer
) -> EditionOut:
    """Change a scheduled edition until it starts: subject, intro, articles, send time (an
    instant with its offset). Once it has started: 409 with one sentence."""
    if body.send_at is not None and body.send_at.tzinfo is None:
        raise InvalidInput(
            "The send time (send_at) needs its UTC offset, as in 2099-01-01T08:00+04:00."
        )
    changes = DraftChanges(
        subject=body.subject,
        intro_markdown=body.intro_markdown,
        article_ids=list(body.article_ids) if body.article_ids is not None else None,
    )
    change_scheduled(context.db, context.settings, edition_id, changes, body.send_at)
    return _out(edition_progress(context.db, edition_id))


@router.post("/editions/{edition_id}/{change}", response_model=EditionOut)
def change(
    edition_id: RowId,
    change: Literal["send", "pause", "resume", "cancel"],
    context: Context,
    who: Writer,
) -> EditionOut:
    """Moves the edition as compose.lifecycle.MOVES allows: send a scheduled one now, pause,
    resume or cancel one that is sending; any other move is refused with one sentence."""
    EDITION_CHANGES[change](context.db, context.settings, edition_id)
    return _out(edition_progress(context.db, edition_id))


@router.post("/newsletters/{slug}/preview", response_model=PreviewOut, tags=["editions"])
def preview_edition(slug: str, body: PreviewIn, context: Context, who: Reader) -> PreviewOut:
    """What a one-off edition with these choices would look like (nothing is stored)."""
    found = preview(context.db, context.settings, slug, _one_off(body, "preview"), None)
    return PreviewOut(
        subject=found.subject,
        html=found.html,
        text=found.text,
        articles=found.articles,
        html_bytes=found.html_bytes,
    )
