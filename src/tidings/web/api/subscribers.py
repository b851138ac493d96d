"""/subscribers, /subscriptions, /suppressions."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from tidings.audience.confirmations import claim_one, claim_waiting, queue_all
from tidings.audience.imports.importer import import_records
from tidings.audience.search import PAGE_SIZE, audience_filter, search
from tidings.audience.service import add_subscriber, unsubscribe
from tidings.audience.signup import confirm_subscription
from tidings.audience.subscribers import (
    SubscriberChange,
    SubscriberRecord,
    erase,
    subscriber_record,
    subscriber_records,
    update_subscriber,
)
from tidings.audience.suppressions import (
    SuppressionRow,
    suppress,
    suppression_of,
    suppressions,
    unsuppress,
)
from tidings.catalog.counts import ReaderStatus
from tidings.db.models import SubscriptionStatus, SuppressionReason
from tidings.db.types import utcnow
from tidings.errors import NotFound
from tidings.mail.addresses import AttributeLimits
from tidings.web.api.auth import Context, Owner, Reader
from tidings.web.api.paging import Cursor, Limit, decode, encode
from tidings.web.api.schemas import Page
from tidings.web.api.subscriber_schemas import (
    ImportIn,
    ImportOut,
    SubscriberIn,
    SubscriberOut,
    SubscriberPatch,
    SubscriptionOut,
    SubscriptionPatch,
    SuppressionIn,
    SuppressionOut,
)
from tidings.web.deps import RowId

router = APIRouter(tags=["subscribers"])
Status = Annotated[ReaderStatus | None, Query()]


def subscriber_out(record: SubscriberRecord) -> SubscriberOut:
    """The one shape of a subscriber in the API: the list and the single read both use it."""
    return SubscriberOut(
        id=record.id,
        email=record.email,
        name=record.name,
        locale=record.locale,
        timezone=record.timezone,
        attributes=record.attributes,
        suppressed=record.suppression is not None,
        created_at=record.created_at,
        subscriptions=[
            SubscriptionOut(
                id=s.id,
                newsletter=s.newsletter,
                newsletter_slug=s.newsletter_slug,
                status=s.status.value,
                shown_as=s.shown.value,
                sections=s.sections,
                consent_at=s.consent_at,
                consent_method=s.consent_method,
                confirmed_at=s.confirmed_at,
                unsubscribed_at=s.unsubscribed_at,
                confirmation_sent_at=s.confirmation_sent_at,
            )
            for s in record.subscriptions
        ],
    )


def _subscriber(context: Context, subscriber_id: int) -> SubscriberOut:
    record = subscriber_record(context.db, subscriber_id, history=0)
    if record is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    return subscriber_out(record)


@router.get("/subscribers", response_model=Page[SubscriberOut])
def list_subscribers(
    context: Context,
    who: Reader,
    cursor: Cursor = None,
    limit: Limit = PAGE_SIZE,
    q: Annotated[str, Query(max_length=200)] = "",
    newsletter: Annotated[str | None, Query(max_length=64)] = None,
    status: Status = None,
) -> Page[SubscriberOut]:
    """Subscribers by id, ``limit`` a page (50 unless asked), filtered by text, newsletter
    and status (a suppressed address is ``bounced`` or ``suppressed``, never ``active``);
    each item has the fields of GET /subscribers/{id}."""
    audience = audience_filter(context.db, newsletter, status, q)
    found = search(context.db, audience, decode(cursor), size=limit)
    records = subscriber_records(context.db, [r.id for r in found.rows])
    return Page[SubscriberOut](
        items=[subscriber_out(r) for r in records],
        next_cursor=encode(found.next_after),
    )


async def _send_confirmation(context: Context, subscription_id: int) -> bool:
    """Claim and queue the confirmation mail of one pending subscription; False when one
    went out less than ten minutes ago (the sign-up's limit)."""
    due = await run_in_threadpool(claim_one, context.db, subscription_id, "api")
    return due is not None and context.signups.mail(due)


@router.post("/subscribers", response_model=SubscriberOut, status_code=201)
async def create(body: SubscriberIn, context: Context, who: Owner) -> SubscriberOut:
    """Subscribe an address to a newsletter (pending, or active with confirmed); with
    send_confirmation, a pending one is mailed the confirmation link (as a sign-up is, at
    most once in ten minutes), else it waits until asked."""
    result = await run_in_threadpool(
        add_subscriber,
        context.db,
        body.newsletter,
        body.email,
        body.name,
        body.confirmed,
        "api",
    )
    if body.send_confirmation and result.status == SubscriptionStatus.pending:
        await _send_confirmation(context, result.subscription_id)
    return await run_in_threadpool(_subscriber, context, result.subscriber_id)


@router.post("/subscribers/import", response_model=ImportOut)
async def bulk_import(body: ImportIn, context: Context, who: Owner) -> ImportOut:
    """Many subscribers at once, merged and validated like a CSV import; each refused one
    is named by its position in the list (from 0). With send_confirmation, the new pending
    subscriptions are mailed their confirmation link (up to 200 a request; the rest wait)."""
    started = utcnow()
    report = await run_in_threadpool(
        import_records,
        context.db,
        body.newsletter,
        body.subscribers,
        body.confirmed,
        context.settings.import_batch_size,
        AttributeLimits.of(context.settings),
    )
    mailed = 0
    if body.send_confirmation and not body.confirmed:
        dues = await run_in_threadpool(claim_waiting, context.db, body.newsletter, "api", started)
        mailed = queue_all(context.signups, dues)
    return ImportOut(
        rows_read=report.rows_read,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        duplicates_merged=report.duplicates_merged,
        subscribed=report.subscribed,
        activated=report.activated,
        suppressed=report.suppressed,
        invalid=[{"position": e.line, "reason": e.reason} for e in report.invalid],
        confirmations_queued=mailed,
    )


@router.get("/subscribers/{subscriber_id}", response_model=SubscriberOut)
def read(subscriber_id: RowId, context: Context, who: Reader) -> SubscriberOut:
    return _subscriber(context, subscriber_id)


@router.patch("/subscribers/{subscriber_id}", response_model=SubscriberOut)
def patch(
    subscriber_id: RowId, body: SubscriberPatch, context: Context, who: Owner
) -> SubscriberOut:
    change = SubscriberChange(**body.model_dump())
    limits = AttributeLimits.of(context.settings)
    by = f"api token {who.token_id}"
    if not update_subscriber(context.db, subscriber_id, change, limits, source="api", by=by):
        raise NotFound(f"no subscriber {subscriber_id}")
    return _subscriber(context, subscriber_id)


@router.delete("/subscribers/{subscriber_id}", status_code=204)
def delete(subscriber_id: RowId, context: Context, who: Owner) -> Response:
    """Erase (GDPR): personal data goes, anonymous delivery counts stay."""
    if not erase(context.db, subscriber_id):
        raise NotFound(f"no subscriber {subscriber_id}")
    return Response(status_code=204)


@router.patch("/subscriptions/{subscription_id}", response_model=SubscriberOut)
def change_subscription(
    subscription_id: RowId, body: SubscriptionPatch, context: Context, who: Owner
) -> SubscriberOut:
    view = (
        unsubscribe(context.db, subscription_id, source="api")
        if body.status == "unsubscribed"
        else confirm_subscription(context.db, subscription_id, source="api")
    )
    if view is None:
        raise NotFound(f"no subscription {subscription_id}")
    return _subscriber(context, view.subscriber_id)


@router.get("/suppressions", response_model=Page[SuppressionOut], tags=["suppressions"])
def list_suppressions(
    context: Context,
    who: Reader,
    cursor: Cursor = None,
    limit: Limit = PAGE_SIZE,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Page[SuppressionOut]:
    """The suppression list by id, ``limit`` a page (50 unless asked), searchable."""
    rows, next_after = suppressions(context.db, q, decode(cursor), limit)
    return Page[SuppressionOut](
        items=[_suppression_out(r) for r in rows],
        next_cursor=encode(next_after),
    )


def _suppression_out(row: SuppressionRow) -> SuppressionOut:
    return SuppressionOut(
        id=row.id,
        email=row.email,
        reason=row.reason.value,
        detail=row.detail,
        created_at=row.created_at,
    )


@router.post(
    "/suppressions",
    status_code=201,
    response_model=SuppressionOut,
    tags=["suppressions"],
    responses={200: {"model": SuppressionOut, "description": "already on the list"}},
)
def add_suppression(
    body: SuppressionIn, context: Context, who: Owner, response: Response
) -> SuppressionOut:
    """Put an address on the suppression list (reason manual unless given): 201 with the
    new entry, or 200 with the one already there."""
    created = suppress(
        context.db,
        body.email,
        body.detail or "added through the API",
        SuppressionReason(body.reason),
        source="api",
    )
    row = suppression_of(context.db, body.email)
    if row is None:  # removed in between: nothing to show
        raise NotFound(f"{body.email} is not on the suppression list")
    if not created:
        response.status_code = 200
    return _suppression_out(row)


@router.delete("/suppressions/{suppression_id}", status_code=204, tags=["suppressions"])
def delete_suppression(suppression_id: RowId, context: Context, who: Owner) -> Response:
    unsuppress(context.db, suppression_id, source="api", by=f"api token {who.token_id}")
    return Response(status_code=204)
