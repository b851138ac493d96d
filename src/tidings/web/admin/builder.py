"""Console: the edition builder. Editors choose articles, preview, send a test, send now or
schedule; everyone signed in sees what the schedule would send next."""

import asyncio
from email import message_from_bytes, policy
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.accounts import Account
from tidings.catalog.newsletters import newsletter_names, newsletter_with_sources
from tidings.compose.oneoff import Preview, preview, send_one_off
from tidings.compose.proofs import send_proofs
from tidings.compose.select import article_choices
from tidings.compose.sendtime import schedule_at
from tidings.compose.service import OneOff
from tidings.errors import InvalidInput
from tidings.web.admin.session import Context, Editor, Viewer, console_page, see_other
from tidings.web.deps import RowId
from tidings.web.security import FRAMED_MAIL_POLICY

router = APIRouter(prefix="/admin/editions")


def _headers(message: bytes) -> list[tuple[str, str]]:
    parsed: Any = message_from_bytes(message, policy=policy.default)
    return [(name, str(value)) for name, value in parsed.items()]


def _preview_values(found: Preview, frame_src: str) -> dict[str, Any]:
    return {
        "preview": found,
        "headers": _headers(found.message),
        "message_kb": round(len(found.message) / 1024, 1),
        "frame_src": frame_src,
    }


def _frame(found: Preview) -> HTMLResponse:
    """A preview's frame document, rendered again from the query: sandboxed framed mail, as
    the mailbox shows it (the one policy lives in web.security)."""
    return HTMLResponse(found.html, headers={"Content-Security-Policy": FRAMED_MAIL_POLICY})


@router.get("/next/{slug}", response_class=HTMLResponse)
def next_edition(slug: str, request: Request, context: Context, account: Viewer) -> HTMLResponse:
    """What the schedule would send now: the new articles since the last edition."""
    newsletter, _ = newsletter_with_sources(context.db, slug)
    try:
        found = preview(context.db, context.settings, slug, OneOff(article_ids=[]), None)
    except InvalidInput as exc:
        return console_page(
            request,
            context,
            account,
            "message.html",
            title=f"Next edition of {newsletter.name}",
            message=str(exc),
            back=f"/admin/newsletters/{slug}",
        )
    values = _preview_values(found, f"/admin/editions/next/{slug}/preview.html")
    return console_page(request, context, account, "next.html", newsletter=newsletter, **values)


@router.get("/next/{slug}/preview.html", response_class=HTMLResponse)
def next_edition_frame(slug: str, context: Context, account: Viewer) -> HTMLResponse:
    return _frame(preview(context.db, context.settings, slug, OneOff(article_ids=[]), None))


@router.get("/preview.html", response_class=HTMLResponse)
def builder_frame(
    context: Context,
    account: Viewer,
    newsletter: str,
    article: Annotated[list[RowId], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
    intro: str = "",
    subject: str = "",
) -> HTMLResponse:
    one_off = OneOff(article_ids=article, intro_markdown=intro or None, subject=subject or None)
    return _frame(preview(context.db, context.settings, newsletter, one_off, None))


def _builder(
    request: Request, context: Context, account: Account, slug: str, query: str, **values: Any
) -> HTMLResponse:
    newsletter, _ = newsletter_with_sources(context.db, slug)
    return console_page(
        request,
        context,
        account,
        "builder.html",
        newsletter=newsletter,
        newsletters=newsletter_names(context.db),
        articles=article_choices(context.db, slug, query),
        q=query,
        **{
            "chosen": [],
            "positions": {},
            "intro": "",
            "subject": "",
            "tests": "",
            "send_at": "",
            "result": None,
            "preview": None,
            **values,
        },
    )


@router.get("/new", response_class=HTMLResponse)
def builder_page(
    request: Request, context: Context, account: Editor, newsletter: str = "", q: str = ""
) -> HTMLResponse:
    slug = newsletter or next(iter(n.slug for n in newsletter_names(context.db)), "")
    if not slug:
        raise InvalidInput("create a newsletter first")
    return _builder(request, context, account, slug, q)


def _chosen(form: Any) -> tuple[list[int], dict[int, str]]:
    """The ticked articles in the editor's order (position fields, then list order)."""
    ids = [int(value) for value in form.getlist("article") if str(value).isdigit()]
    positions = {i: str(form.get(f"pos_{i}", "")).strip() for i in ids}

    def key(item: tuple[int, int]) -> tuple[int, int]:
        index, article_id = item
        given = positions.get(article_id, "")
        return (int(given) if given.isdigit() else 10_000 + index, index)

    ordered = [article_id for _, article_id in sorted(enumerate(ids), key=key)]
    return ordered, positions


@router.post("/new", response_model=None)
async def builder_post(request: Request, context: Context, account: Editor) -> Response:
    """One form, four buttons: preview, send a test, send now, schedule."""
    form = await request.form()
    slug = str(form.get("newsletter", ""))
    action = str(form.get("do", "preview"))
    ids, positions = _chosen(form)
    intro, subject = str(form.get("intro", "")), str(form.get("subject", "")).strip()
    tests, send_at = str(form.get("tests", "")), str(form.get("send_at", ""))
    one_off = OneOff(
        article_ids=ids,
        intro_markdown=intro.strip() or None,
        subject=subject or None,
        created_by=account.email,
    )
    keep = {
        "chosen": ids,
        "positions": positions,
        "intro": intro,
        "subject": subject,
        "tests": tests,
        "send_at": send_at,
    }
    try:
        if action == "send":
            result = await asyncio.to_thread(
                send_one_off, context.db, context.settings, slug, one_off
            )
            return see_other(f"/admin/editions/{result.edition_id}")
        if action == "schedule":
            edition_id = await asyncio.to_thread(
                schedule_at, context.db, context.settings, slug, one_off, send_at
            )
            return see_other(f"/admin/editions/{edition_id}")
        if action == "test":
            proofs = await send_proofs(context.db, context.settings, slug, one_off, tests)
            lines = [str(proof) for proof in proofs]
            return _builder(request, context, account, slug, "", result=lines, **keep)
        found = await asyncio.to_thread(preview, context.db, context.settings, slug, one_off, None)
        query = {"newsletter": slug, "article": ids, "intro": intro, "subject": subject}
        frame_src = f"/admin/editions/preview.html?{urlencode(query, doseq=True)}"
        return _builder(
            request, context, account, slug, "", **keep, **_preview_values(found, frame_src)
        )
    except InvalidInput as exc:
        return _builder(request, context, account, slug, "", result=[str(exc)], **keep)
