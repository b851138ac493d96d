"""Console: subscribers (search, detail, import, export, bulk actions, erasure) and the
suppression list. Viewers and editors read; only admins change anything."""

import secrets
from itertools import chain
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tidings.access.accounts import Account
from tidings.audience.bulk import bulk_delete, bulk_suppress, bulk_unsubscribe
from tidings.audience.confirmations import claim_one, claim_waiting, queue_all, waiting
from tidings.audience.export import export_chunks
from tidings.audience.imports.csvrows import write_import_report
from tidings.audience.imports.importer import ImportReport, import_subscribers
from tidings.audience.search import AudienceFilter, audience_filter, count, search
from tidings.audience.service import (
    add_subscriber,
    resubscribe,
    subscription_view,
    unsubscribe,
)
from tidings.audience.subscribers import (
    SubscriberChange,
    erase,
    subscriber_record,
    update_subscriber,
)
from tidings.audience.suppressions import suppress, suppression_of, suppressions, unsuppress
from tidings.catalog.counts import ReaderStatus
from tidings.catalog.newsletters import newsletter_names
from tidings.db.models import SubscriptionStatus
from tidings.db.types import utcnow
from tidings.errors import InvalidInput, NotFound
from tidings.feedback.history import history_of
from tidings.mail.addresses import AttributeLimits
from tidings.web.admin.session import (
    Admin,
    Context,
    Viewer,
    console_page,
    see_other,
)
from tidings.web.admin.uploads import Uploads
from tidings.web.deps import AfterRowId, RowId

router = APIRouter(prefix="/admin")
#: The CSV upload alone: the app includes it with the larger ``max_upload_bytes`` cap.
upload_router = APIRouter(prefix="/admin")
BULK_ACTIONS = ("unsubscribe", "suppress", "delete")


def _filter(context: Context, newsletter: str, status: str, q: str) -> AudienceFilter:
    """The form's filter; a bad value is the form's mistake (InvalidInput)."""
    if status and status not in ReaderStatus.__members__:
        raise InvalidInput(f"There is no status called {status!r}.")
    try:
        return audience_filter(context.db, newsletter, ReaderStatus(status) if status else None, q)
    except NotFound as exc:
        raise InvalidInput(str(exc)) from None


@router.get("/subscribers", response_class=HTMLResponse)
def subscriber_list(
    request: Request,
    context: Context,
    account: Viewer,
    newsletter: str = "",
    status: str = "",
    q: str = "",
    after: AfterRowId = 0,
    done: str = "",
) -> HTMLResponse:
    query = {"newsletter": newsletter, "status": status, "q": q}
    try:
        audience = _filter(context, newsletter, status, q)
    except InvalidInput as exc:
        return console_page(
            request,
            context,
            account,
            "message.html",
            status_code=422,
            title="Bad filter",
            message=str(exc),
        )
    found = search(context.db, audience, after)
    return console_page(
        request,
        context,
        account,
        "subscribers.html",
        rows=found.rows,
        next_url=f"?{urlencode({**query, 'after': found.next_after})}"
        if found.next_after
        else None,
        first_url=f"?{urlencode(query)}" if after else None,
        query=query,
        query_string=urlencode(query),
        newsletters=newsletter_names(context.db),
        statuses=[s.value for s in ReaderStatus],
        waiting=waiting(context.db, newsletter or None),
        done=LIST_DONE.get(done),
    )


@router.get("/subscribers/export.csv")
def subscriber_export(
    context: Context, account: Viewer, newsletter: str = "", status: str = "", q: str = ""
) -> Response:
    """The filter's subscribers as CSV (a newsletter must be chosen: the status columns are
    per newsletter)."""
    if not newsletter:
        raise InvalidInput("choose a newsletter to export")
    audience = _filter(context, newsletter, status, q)
    chunks = export_chunks(context.db, newsletter, audience)
    header = next(chunks)  # the header: an unknown newsletter fails here, before the answer starts
    return StreamingResponse(
        chain([header], chunks),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{newsletter}-subscribers.csv"'},
    )


@router.post("/subscribers/bulk", response_class=HTMLResponse)
def subscriber_bulk(
    request: Request,
    context: Context,
    account: Admin,
    action: Annotated[str, Form()],
    newsletter: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
    q: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Ask first (showing how many it touches), then act on everyone the filter matches."""
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"unknown action {action!r}")
    audience = _filter(context, newsletter, status, q)
    query = {"newsletter": newsletter, "status": status, "q": q}
    if confirm != "yes":
        return console_page(
            request,
            context,
            account,
            "bulk_confirm.html",
            action=action,
            query=query,
            matched=count(context.db, audience),
        )
    if action == "unsubscribe":
        done = bulk_unsubscribe(context.db, audience)
    elif action == "suppress":
        done = bulk_suppress(context.db, audience, f"bulk action by {account.email}")
    else:
        done = bulk_delete(context.db, audience)
    return console_page(
        request,
        context,
        account,
        "message.html",
        title="Done",
        message=f"{action}: {done:,} changed.",
        back=f"/admin/subscribers?{urlencode(query)}",
    )


@router.get("/subscribers/import", response_class=HTMLResponse)
def import_page(request: Request, context: Context, account: Admin) -> HTMLResponse:
    return console_page(
        request,
        context,
        account,
        "import.html",
        newsletters=newsletter_names(context.db),
        preview=None,
    )


@upload_router.post("/subscribers/import", response_class=HTMLResponse)
def import_upload(
    request: Request,
    context: Context,
    account: Admin,
    file: UploadFile,
    newsletter: Annotated[str, Form()],
    confirmed: Annotated[bool, Form()] = False,
    send_confirmation: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Keep the upload and show its first rows before anything is imported."""
    uploads = Uploads(context.settings.data_dir)
    uploads.purge_stale()
    key = secrets.token_urlsafe(12)
    uploads.save(key, file.file, context.settings.max_upload_bytes)
    return console_page(
        request,
        context,
        account,
        "import.html",
        newsletters=newsletter_names(context.db),
        preview=uploads.preview(key),
        key=key,
        newsletter=newsletter,
        confirmed=confirmed,
        send_confirmation=send_confirmation and not confirmed,
        filename=file.filename or "upload.csv",
    )


@router.post("/subscribers/import/{key}", response_class=HTMLResponse)
async def import_run(
    key: str,
    request: Request,
    context: Context,
    account: Admin,
    newsletter: Annotated[str, Form()],
    confirmed: Annotated[bool, Form()] = False,
    send_confirmation: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    started = utcnow()
    report = await run_in_threadpool(_import_file, context, key, newsletter, confirmed)
    queued = 0
    if send_confirmation and not confirmed:
        dues = await run_in_threadpool(claim_waiting, context.db, newsletter, "console", started)
        queued = queue_all(context.signups, dues)
    return console_page(
        request,
        context,
        account,
        "import_done.html",
        report=report,
        key=key,
        newsletter=newsletter,
        queued=queued,
        waiting=await run_in_threadpool(waiting, context.db, newsletter),
    )


def _import_file(context: Context, key: str, newsletter: str, confirmed: bool) -> ImportReport:
    """Import a kept upload and keep its report for download."""
    uploads = Uploads(context.settings.data_dir)
    report = import_subscribers(
        context.db,
        newsletter,
        uploads.existing(key),
        confirmed,
        context.settings.import_batch_size,
        limits=AttributeLimits.of(context.settings),
    )
    uploads.discard(key)
    with uploads.report_path(key).open("w", encoding="utf-8", newline="") as out:
        write_import_report(report, out)
    return report


@router.get("/subscribers/import/{key}/report.csv")
def import_report(key: str, context: Context, account: Admin) -> Response:
    path = Uploads(context.settings.data_dir).existing_report(key)
    return Response(
        path.read_bytes(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="import-report.csv"'},
    )


@router.post("/subscribers/add", response_class=HTMLResponse)
async def subscriber_add(
    request: Request,
    context: Context,
    account: Admin,
    email: Annotated[str, Form()],
    newsletter: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    confirmed: Annotated[bool, Form()] = False,
    send_confirmation: Annotated[bool, Form()] = False,
) -> Response:
    """Add one address to a newsletter; with send_confirmation a pending one is mailed its
    confirmation link (the sign-up's limit and queue), else it waits."""
    result = await run_in_threadpool(
        add_subscriber, context.db, newsletter, email, name or None, confirmed, "console"
    )
    done = "added"
    if send_confirmation and result.status == SubscriptionStatus.pending:
        done = await _mail_one(context, result.subscription_id)
    return see_other(f"/admin/subscribers/{result.subscriber_id}?done={done}")


@router.post("/subscribers/confirmations", response_class=HTMLResponse)
async def confirmations_send(
    request: Request,
    context: Context,
    account: Admin,
    newsletter: Annotated[str, Form()],
) -> Response:
    """Mail every waiting pending subscriber of a newsletter (up to a batch a click)."""
    dues = await run_in_threadpool(claim_waiting, context.db, newsletter, "console")
    queued = queue_all(context.signups, dues)
    left = await run_in_threadpool(waiting, context.db, newsletter)
    message = f"{queued:,} confirmation mail(s) are on their way."
    if left:
        message += f" {left:,} subscriber(s) are still waiting: send again to mail the next ones."
    return console_page(
        request,
        context,
        account,
        "message.html",
        title="Confirmations sent",
        message=message,
        back=f"/admin/subscribers?{urlencode({'newsletter': newsletter, 'status': 'pending'})}",
    )


#: What the detail page says after an action (the query names one of these, never a text).
DETAIL_DONE = {
    "added": "The subscriber was added.",
    "edited": "The changes were saved.",
    "unchanged": "Nothing was changed.",
    "unsubscribed": "The subscription was ended.",
    "resubscribed": "The subscription is on again; its original consent record is kept.",
    "asked_again": "The subscription is pending: it starts only when the reader confirms "
    "(a reader who left by themself must agree again; send them the confirmation mail to ask).",
    "mailed": "A confirmation mail is on its way.",
    "too_soon": "A confirmation mail went less than ten minutes ago; try again later.",
    "busy": "The mail queue is full just now; try again in a minute.",
    "suppressed": "The address is on the suppression list: nothing is sent to it.",
    "unsuppressed": "The address was taken off the suppression list.",
}
LIST_DONE = {
    "erased": "The subscriber was erased: their address, name, attributes and history are gone.",
}


def _detail_url(subscriber_id: int, done: str) -> str:
    return f"/admin/subscribers/{subscriber_id}?done={done}"


def _not_found(request: Request, context: Context, account: Account) -> HTMLResponse:
    return console_page(
        request,
        context,
        account,
        "message.html",
        status_code=404,
        title="Not found",
        message="No such subscriber (erased or deleted?).",
        back="/admin/subscribers",
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_detail(
    subscriber_id: RowId, request: Request, context: Context, account: Viewer, done: str = ""
) -> HTMLResponse:
    record = subscriber_record(context.db, subscriber_id)
    if record is None:
        return _not_found(request, context, account)
    history = history_of(context.db, subscriber_id)
    return console_page(
        request,
        context,
        account,
        "subscriber.html",
        record=record,
        history=history,
        done=DETAIL_DONE.get(done),
        attributes_text="\n".join(f"{k}={v}" for k, v in record.attributes.items()),
    )


def _attributes(text: str, old: dict[str, object]) -> dict[str, str]:
    """The form's "key=value" lines as a change: keys not listed any more are removed."""
    wanted: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"Attribute line {number} is not of the form name=value.")
        wanted[key.strip()] = value.strip()
    return {**{k: "" for k in old if k not in wanted}, **wanted}


@router.post("/subscribers/{subscriber_id}/edit", response_class=HTMLResponse)
def subscriber_edit(
    subscriber_id: RowId,
    request: Request,
    context: Context,
    account: Admin,
    name: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    attributes: Annotated[str, Form()] = "",
) -> Response:
    record = subscriber_record(context.db, subscriber_id, history=0)
    if record is None:
        return _not_found(request, context, account)
    change = SubscriberChange(
        name=name.strip(),
        locale=locale.strip(),
        timezone=timezone.strip(),
        attributes=_attributes(attributes, record.attributes),
    )
    limits = AttributeLimits.of(context.settings)
    update_subscriber(context.db, subscriber_id, change, limits, "console", account.email)
    after = subscriber_record(context.db, subscriber_id, history=0)
    same = after is not None and (after.name, after.locale, after.timezone, after.attributes) == (
        record.name,
        record.locale,
        record.timezone,
        record.attributes,
    )
    return see_other(_detail_url(subscriber_id, "unchanged" if same else "edited"))


@router.post("/subscriptions/{subscription_id}/unsubscribe", response_class=HTMLResponse)
def subscription_unsubscribe(
    subscription_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    view = unsubscribe(context.db, subscription_id, "console", f"by {account.email}")
    if view is None:
        return _not_found(request, context, account)
    return see_other(_detail_url(view.subscriber_id, "unsubscribed"))


@router.post("/subscriptions/{subscription_id}/resubscribe", response_class=HTMLResponse)
def subscription_resubscribe(
    subscription_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    view = resubscribe(context.db, subscription_id, "console", f"by {account.email}")
    if view is None:
        return _not_found(request, context, account)
    done = "asked_again" if view.status == SubscriptionStatus.pending else "resubscribed"
    return see_other(_detail_url(view.subscriber_id, done))


async def _mail_one(context: Context, subscription_id: int) -> str:
    """Claim and queue one confirmation mail; what the page should say."""
    due = await run_in_threadpool(claim_one, context.db, subscription_id, "console")
    if due is None:
        return "too_soon"
    return "mailed" if context.signups.mail(due) else "busy"


@router.post("/subscriptions/{subscription_id}/confirmation", response_class=HTMLResponse)
async def subscription_confirmation(
    subscription_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    """Mail a pending subscriber the confirmation link again."""
    done = await _mail_one(context, subscription_id)
    view = await run_in_threadpool(subscription_view, context.db, subscription_id)
    if view is None:
        return _not_found(request, context, account)
    return see_other(_detail_url(view.subscriber_id, done))


@router.post("/subscribers/{subscriber_id}/suppress", response_class=HTMLResponse)
def subscriber_suppress(
    subscriber_id: RowId,
    request: Request,
    context: Context,
    account: Admin,
    detail: Annotated[str, Form()] = "",
) -> Response:
    record = subscriber_record(context.db, subscriber_id, history=0)
    if record is None:
        return _not_found(request, context, account)
    suppress(context.db, record.email, detail.strip() or f"by {account.email}", source="console")
    return see_other(_detail_url(subscriber_id, "suppressed"))


@router.post("/subscribers/{subscriber_id}/unsuppress", response_class=HTMLResponse)
def subscriber_unsuppress(
    subscriber_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    record = subscriber_record(context.db, subscriber_id, history=0)
    if record is None:
        return _not_found(request, context, account)
    row = suppression_of(context.db, record.email)
    if row is not None:
        unsuppress(context.db, row.id, "console", account.email)
    return see_other(_detail_url(subscriber_id, "unsuppressed"))


@router.get("/subscribers/{subscriber_id}/erase", response_class=HTMLResponse)
def subscriber_erase_page(
    subscriber_id: RowId, request: Request, context: Context, account: Admin
) -> HTMLResponse:
    """Ask before erasing: what goes, what stays."""
    record = subscriber_record(context.db, subscriber_id, history=0)
    if record is None:
        return _not_found(request, context, account)
    return console_page(request, context, account, "subscriber_erase.html", record=record)


@router.post("/subscribers/{subscriber_id}/erase", response_class=HTMLResponse)
def subscriber_erase(
    subscriber_id: RowId,
    request: Request,
    context: Context,
    account: Admin,
    sure: Annotated[str, Form()] = "",
) -> Response:
    """GDPR erasure, once confirmed: the record goes, anonymous delivery counts stay."""
    if sure != "yes":
        return see_other(f"/admin/subscribers/{subscriber_id}/erase")
    if not erase(context.db, subscriber_id):
        return _not_found(request, context, account)
    return see_other("/admin/subscribers?done=erased")


@router.get("/suppressions", response_class=HTMLResponse)
def suppression_list(
    request: Request, context: Context, account: Viewer, q: str = "", after: AfterRowId = 0
) -> HTMLResponse:
    rows, next_after = suppressions(context.db, q, after)
    return console_page(
        request,
        context,
        account,
        "suppressions.html",
        rows=rows,
        q=q,
        next_url=f"?{urlencode({'q': q, 'after': next_after})}" if next_after else None,
    )


@router.post("/suppressions", response_class=HTMLResponse)
def suppression_add(
    request: Request,
    context: Context,
    account: Admin,
    email: Annotated[str, Form()],
    detail: Annotated[str, Form()] = "",
) -> Response:
    suppress(context.db, email, detail.strip() or f"added by {account.email}", source="console")
    return see_other("/admin/suppressions")


@router.post("/suppressions/{suppression_id}/remove", response_class=HTMLResponse)
def suppression_remove(
    suppression_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    unsuppress(context.db, suppression_id, "console", account.email)
    return see_other("/admin/suppressions")
