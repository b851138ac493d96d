"""Console: the edition builder. Editors choose articles, preview, send a test, send now or
schedule (each after a confirmation page that says what will happen), and change a scheduled
edition until it starts; everyone signed in sees what the schedule would send next."""

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.accounts import Account
from tidings.access.ratelimit import RateLimit, allow
from tidings.catalog.newsletters import newsletter_names, newsletter_with_sources
from tidings.compose.oneoff import (
    DraftChanges,
    Preview,
    SendPlan,
    check_changeable,
    not_scheduled,
    preview,
    scheduled_draft,
    send_one_off,
)
from tidings.compose.proofs import proof_addresses, send_proofs
from tidings.compose.select import ArticleChoice, article_choices
from tidings.compose.sendtime import change_scheduled, plan_edition, schedule_at
from tidings.compose.service import OneOff
from tidings.db.models import EditionStatus
from tidings.errors import Conflict, InvalidInput
from tidings.mail.edition import TEST_UNSUBSCRIBE_PATH
from tidings.reports.progress import zoned_time
from tidings.web.admin.session import Context, Editor, Viewer, console_page, see_other
from tidings.web.deps import RowId, WebContext
from tidings.web.pages import page
from tidings.web.security import FRAMED_MAIL_POLICY, bound_token, bound_token_ok

router = APIRouter(prefix="/admin/editions")
#: Outside the console (no sign-in, no CSRF): where a test message's unsubscribe links and
#: one-click POST lead. It changes nothing and says so.
test_unsubscribe_router = APIRouter()


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


@dataclass(frozen=True)
class ChoiceRow:
    """An article as the builder's table shows it: times in the newsletter's zone."""

    article: ArticleChoice
    published: str
    #: "Sent in edition 4 on 2026-12-01", or None.
    sent: str | None


def _rows(choices: list[ArticleChoice], timezone: str) -> list[ChoiceRow]:
    zone = ZoneInfo(timezone)
    rows = []
    for a in choices:
        sent = None
        if a.sent_in is not None and a.sent_at is not None:
            sent = f"Sent in edition {a.sent_in} on {a.sent_at.astimezone(zone):%Y-%m-%d}"
        rows.append(ChoiceRow(a, f"{a.published_at.astimezone(zone):%d %b %H:%M}", sent))
    return rows


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
        rows=_rows(
            article_choices(context.db, slug, query, include=values.get("chosen", ())),
            newsletter.timezone,
        ),
        q=query,
        **{
            "chosen": [],
            "positions": {},
            "intro": "",
            "subject": "",
            "tests": "",
            "test_reader": "",
            "send_at": "",
            "edition_id": None,
            "result": None,
            "preview": None,
            **values,
        },
    )


def _local_input(moment: datetime | None, timezone: str) -> str:
    """A UTC instant as the date-and-time field shows it: the newsletter's wall clock."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M")


@router.get("/new", response_class=HTMLResponse)
def builder_page(
    request: Request,
    context: Context,
    account: Editor,
    newsletter: str = "",
    q: str = "",
    edition: RowId | None = None,
) -> HTMLResponse:
    """The builder, empty, or loaded with a scheduled edition (``edition``) to change it."""
    if edition is not None:
        draft = scheduled_draft(context.db, edition)
        if draft.status != EditionStatus.scheduled:
            return console_page(
                request,
                context,
                account,
                "message.html",
                title=f"Edition #{edition}",
                message=str(not_scheduled(edition, draft.status)),
                back=f"/admin/editions/{edition}",
            )
        found, _ = newsletter_with_sources(context.db, draft.slug)
        return _builder(
            request,
            context,
            account,
            draft.slug,
            q,
            chosen=draft.article_ids,
            positions={i: str(n) for n, i in enumerate(draft.article_ids, 1)},
            intro=draft.intro_markdown or "",
            subject=draft.subject or "",
            send_at=_local_input(draft.scheduled_for, found.timezone),
            edition_id=edition,
        )
    slug = newsletter or next(iter(n.slug for n in newsletter_names(context.db)), "")
    if not slug:
        raise InvalidInput("Create a newsletter first.")
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


#: A confirmation page's token acts once: a second submit of the same page (a double click,
#: the back button, a second tab) sends nothing more. Kept far longer than a page stays open.
CONFIRMED_ONCE = RateLimit("builder-confirmed", 1, timedelta(days=30))
#: Test messages go to any address the editor types, DKIM-signed as the newsletter: a few
#: per edition are plenty, a stream of them is a relay. Per account, across every process.
TEST_MAILS = RateLimit("builder-test-mail", 20, timedelta(hours=1))
TOO_MANY_TESTS = (
    f"You have sent {TEST_MAILS.limit} test messages in the last hour, the most allowed: "
    "wait a while before sending more."
)
USED_CONFIRMATION = (
    "This confirmation was used already: the edition was sent or scheduled once, "
    "and is not sent again. See it under Editions."
)
CHANGED_SINCE_CONFIRMED = (
    "The edition changed after it was confirmed, or the confirmation is more than a day old: "
    "check what will happen and confirm again."
)


def _confirmed_values(action: str, slug: str, keep: dict[str, Any]) -> str:
    """What a confirmation confirms: the action, the newsletter, the articles in order, the
    subject, intro, time and edition (not the test fields, which send nothing). Line ends
    are read alike: a browser sends a hidden field's line breaks as CRLF."""

    def text(value: str) -> str:
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()

    send_at = text(keep["send_at"]) if action == "schedule" else ""
    return json.dumps(
        [
            action,
            slug,
            list(keep["chosen"]),
            text(keep["subject"]),
            text(keep["intro"]),
            send_at,
            keep["edition_id"],
        ]
    )


#: How long a confirmation page's button stays good.
CONFIRM_MAX_AGE = 24 * 3600


#: What the confirmation tokens are signed for.
CONFIRM_PURPOSE = "builder-confirm"


def confirm_token(secret: str, action: str, slug: str, keep: dict[str, Any]) -> str:
    """A one-time token for a confirmation page, bound to the values it shows."""
    return bound_token(secret, CONFIRM_PURPOSE, _confirmed_values(action, slug, keep))


def token_matches(secret: str, token: str, action: str, slug: str, keep: dict[str, Any]) -> bool:
    """Whether ``token`` is a live confirmation of exactly these values."""
    values = _confirmed_values(action, slug, keep)
    return bound_token_ok(secret, CONFIRM_PURPOSE, token, values, CONFIRM_MAX_AGE)


def readers_phrase(count: int) -> str:
    """'1 reader', '2,500 readers': how a confirmation counts its readers."""
    return f"{count:,} reader" + ("" if count == 1 else "s")


def _confirm(
    request: Request,
    context: Context,
    account: Account,
    slug: str,
    action: str,
    plan: SendPlan,
    keep: dict[str, Any],
    notice: str | None = None,
) -> HTMLResponse:
    """The confirmation step: what will happen, every typed value kept in hidden fields."""
    when = zoned_time(plan.send_at or datetime.now(UTC), plan.timezone)
    editing = keep["edition_id"] is not None
    button = (
        f"Yes, send to {readers_phrase(plan.recipients)}"
        if action == "send"
        else ("Yes, save and schedule" if editing else "Yes, schedule")
    )
    return console_page(
        request,
        context,
        account,
        "confirm_send.html",
        plan=plan,
        action=action,
        when=when,
        readers=readers_phrase(plan.recipients),
        button=button,
        notice=notice,
        newsletter_slug=slug,
        confirm_token=confirm_token(context.settings.secret, action, slug, keep),
        **keep,
    )


@router.post("/new", response_model=None)
async def builder_post(request: Request, context: Context, account: Editor) -> Response:
    """One form, four buttons: preview, send a test, send now, schedule. Send now and
    schedule show a confirmation page first; only its button (``confirmed``) acts."""
    form = await request.form()
    slug = str(form.get("newsletter", ""))
    action = str(form.get("do", "preview"))
    confirmed = str(form.get("confirmed", "")) == "1"
    ids, positions = _chosen(form)
    intro, subject = str(form.get("intro", "")), str(form.get("subject", "")).strip()
    tests, send_at = str(form.get("tests", "")), str(form.get("send_at", ""))
    test_reader = str(form.get("test_reader", "")).strip()
    edition_field = str(form.get("edition", ""))
    edition_id = int(edition_field) if edition_field.isdigit() else None
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
        "test_reader": test_reader,
        "send_at": send_at,
        "edition_id": edition_id,
    }
    try:
        if action in ("send", "schedule"):
            if edition_id is not None and action == "send":
                raise InvalidInput(
                    "This edition is scheduled: save your changes with Schedule, "
                    "then use Send now on its page."
                )
            if edition_id is not None:  # said before asking to confirm what cannot be done
                draft = await asyncio.to_thread(scheduled_draft, context.db, edition_id)
                check_changeable(draft, ids)
            token = str(form.get("confirm_token", ""))
            notice = None
            if confirmed and not token:
                confirmed = False  # only the confirmation page's own button acts
            if confirmed:
                if not token_matches(context.settings.secret, token, action, slug, keep):
                    confirmed, notice = False, CHANGED_SINCE_CONFIRMED
                elif not await asyncio.to_thread(
                    allow, context.db, context.settings.secret, CONFIRMED_ONCE, token
                ):
                    raise Conflict(USED_CONFIRMATION)
            if not confirmed:
                when = send_at if action == "schedule" else None
                plan = await asyncio.to_thread(
                    plan_edition, context.db, context.settings, slug, one_off, when
                )
                if not ids:  # the automatic choice, made now, is what is confirmed and sent
                    keep["chosen"] = list(plan.article_ids)
                    keep["positions"] = {i: str(n) for n, i in enumerate(plan.article_ids, 1)}
                return _confirm(request, context, account, slug, action, plan, keep, notice)
            return see_other(await _act(context, action, slug, one_off, keep))
        if action == "test":
            allowed = [
                address
                for address in proof_addresses(tests)
                if await asyncio.to_thread(
                    allow, context.db, context.settings.secret, TEST_MAILS, account.email
                )
            ]
            if not allowed:
                raise InvalidInput(TOO_MANY_TESTS)
            proofs = await send_proofs(
                context.db, context.settings, slug, one_off, " ".join(allowed), test_reader
            )
            lines = [str(proof) for proof in proofs]
            if len(allowed) < len(proof_addresses(tests)):
                lines.append(TOO_MANY_TESTS)
            return _builder(request, context, account, slug, "", result=lines, **keep)
        if action == "back":
            return _builder(request, context, account, slug, "", **keep)
        found = await asyncio.to_thread(preview, context.db, context.settings, slug, one_off, None)
        query = {"newsletter": slug, "article": ids, "intro": intro, "subject": subject}
        frame_src = f"/admin/editions/preview.html?{urlencode(query, doseq=True)}"
        return _builder(
            request, context, account, slug, "", **keep, **_preview_values(found, frame_src)
        )
    except InvalidInput as exc:
        return _builder(request, context, account, slug, "", result=[str(exc)], **keep)


async def _act(
    context: WebContext, action: str, slug: str, one_off: OneOff, keep: dict[str, Any]
) -> str:
    """Send now, schedule, or change the scheduled edition; the page to go to."""
    edition_id = keep["edition_id"]
    if edition_id is not None:
        changes = DraftChanges(
            subject=one_off.subject or "",
            intro_markdown=one_off.intro_markdown or "",
            article_ids=one_off.article_ids,
        )
        await asyncio.to_thread(
            change_scheduled, context.db, context.settings, edition_id, changes, keep["send_at"]
        )
        return f"/admin/editions/{edition_id}"
    if action == "send":
        result = await asyncio.to_thread(send_one_off, context.db, context.settings, slug, one_off)
        return f"/admin/editions/{result.edition_id}"
    made = await asyncio.to_thread(
        schedule_at, context.db, context.settings, slug, one_off, keep["send_at"]
    )
    return f"/admin/editions/{made}"


# One route per method, so each has its own operation id (one route with both methods gives
# both the same id, and FastAPI warns about the duplicate).
@test_unsubscribe_router.get(TEST_UNSUBSCRIBE_PATH, response_class=HTMLResponse)
@test_unsubscribe_router.post(TEST_UNSUBSCRIBE_PATH, response_class=HTMLResponse)
def test_unsubscribe(context: Context) -> HTMLResponse:
    """A test message's unsubscribe (or preferences) link, or its one-click POST: nothing
    to do, and the page says so."""
    return page(context.pages, "test_unsubscribe.html")
