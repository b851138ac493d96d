"""Console: subscribers (search, detail, import, export, bulk actions, erasure) and the
suppression list. Viewers and editors read; only admins change anything."""

import secrets
from io import StringIO
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from tidings.audience.bulk import bulk_delete, bulk_suppress, bulk_unsubscribe
from tidings.audience.export import export_subscribers
from tidings.audience.imports.csvrows import write_import_report
from tidings.audience.imports.importer import import_subscribers
from tidings.audience.search import AudienceFilter, audience_filter, count, search
from tidings.audience.subscribers import erase, subscriber_record
from tidings.audience.suppressions import suppress, suppressions, unsuppress
from tidings.catalog.newsletters import newsletter_names
from tidings.db.models import SubscriptionStatus
from tidings.errors import InvalidInput, NotFound
from tidings.feedback.history import history_of
from tidings.mail.addresses import AttributeLimits
from tidings.web.admin.session import Admin, Context, Viewer, console_page, see_other
from tidings.web.admin.uploads import Uploads
from tidings.web.deps import AfterRowId, RowId

router = APIRouter(prefix="/admin")
#: The CSV upload alone: the app includes it with the larger ``max_upload_bytes`` cap.
upload_router = APIRouter(prefix="/admin")
BULK_ACTIONS = ("unsubscribe", "suppress", "delete")


def _filter(context: Context, newsletter: str, status: str, q: str) -> AudienceFilter:
    """The form's filter; a bad value is the form's mistake (InvalidInput)."""
    if status and status not in SubscriptionStatus.__members__:
        raise InvalidInput(f"unknown status {status!r}")
    try:
        return audience_filter(
            context.db, newsletter, SubscriptionStatus(status) if status else None, q
        )
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
        statuses=[s.value for s in SubscriptionStatus],
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
    buffer = StringIO()
    export_subscribers(context.db, newsletter, buffer, audience)
    return StreamingResponse(
        iter([buffer.getvalue()]),
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
        filename=file.filename or "upload.csv",
    )


@router.post("/subscribers/import/{key}", response_class=HTMLResponse)
def import_run(
    key: str,
    request: Request,
    context: Context,
    account: Admin,
    newsletter: Annotated[str, Form()],
    confirmed: Annotated[bool, Form()] = False,
) -> HTMLResponse:
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
    return console_page(
        request,
        context,
        account,
        "import_done.html",
        report=report,
        key=key,
        newsletter=newsletter,
    )


@router.get("/subscribers/import/{key}/report.csv")
def import_report(key: str, context: Context, account: Admin) -> Response:
    path = Uploads(context.settings.data_dir).existing_report(key)
    return Response(
        path.read_bytes(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="import-report.csv"'},
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_detail(
    subscriber_id: RowId, request: Request, context: Context, account: Viewer
) -> HTMLResponse:
    record = subscriber_record(context.db, subscriber_id)
    if record is None:
        return console_page(
            request,
            context,
            account,
            "message.html",
            status_code=404,
            title="Not found",
            message="No such subscriber (erased or deleted?).",
        )
    history = history_of(context.db, subscriber_id)
    return console_page(
        request, context, account, "subscriber.html", record=record, history=history
    )


@router.post("/subscribers/{subscriber_id}/erase", response_class=HTMLResponse)
def subscriber_erase(
    subscriber_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    """GDPR erasure: the record goes, anonymous delivery counts stay."""
    erase(context.db, subscriber_id)
    return see_other("/admin/subscribers")


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
    suppress(context.db, email, detail.strip() or f"added by {account.email}")
    return see_other("/admin/suppressions")


@router.post("/suppressions/{suppression_id}/remove", response_class=HTMLResponse)
def suppression_remove(
    suppression_id: RowId, request: Request, context: Context, account: Admin
) -> Response:
    unsuppress(context.db, suppression_id)
    return see_other("/admin/suppressions")
