"""/subscribers, /subscriptions, /suppressions."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from tidings.audience.imports.importer import import_records
from tidings.audience.search import audience_filter, search
from tidings.audience.service import add_subscriber, unsubscribe
from tidings.audience.signup import confirm_subscription
from tidings.audience.subscribers import (
    SubscriberChange,
    erase,
    subscriber_record,
    update_subscriber,
)
from tidings.audience.suppressions import suppress, suppressions, unsuppress
from tidings.db.models import SubscriptionStatus
from tidings.errors import NotFound
from tidings.mail.addresses import AttributeLimits
from tidings.web.api.auth import Context, Owner, Reader
from tidings.web.api.paging import Cursor, decode, encode
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
Status = Annotated[SubscriptionStatus | None, Query()]


def _subscriber(context: Context, subscriber_id: int) -> SubscriberOut:
    record = subscriber_record(context.db, subscriber_id, history=0)
    if record is None:
        raise NotFound(f"no subscriber {subscriber_id}")
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
                status=s.status.value,
                sections=s.sections,
                consent_at=s.consent_at,
                consent_method=s.consent_method,
                confirmed_at=s.confirmed_at,
                unsubscribed_at=s.unsubscribed_at,
            )
            for s in record.subscriptions
        ],
    )


@router.get("/subscribers", response_model=Page[SubscriberOut])
def list_subscribers(
    context: Context,
    who: Reader,
    cursor: Cursor = None,
    q: Annotated[str, Query(max_length=200)] = "",
    newsletter: Annotated[str | None, Query(max_length=64)] = None,
    status: Status = None,
) -> Page[SubscriberOut]:
    """Subscribers by id, 50 a page, filtered by text, newsletter and status."""
    audience = audience_filter(context.db, newsletter, status, q)
    found = search(context.db, audience, decode(cursor))
    return Page[SubscriberOut](
        items=[
            SubscriberOut(
                id=r.id,
                email=r.email,
                name=r.name,
                suppressed=r.suppressed,
                created_at=r.created_at,
            )
            for r in found.rows
        ],
        next_cursor=encode(found.next_after),
    )


@router.post("/subscribers", response_model=SubscriberOut, status_code=201)
def create(body: SubscriberIn, context: Context, who: Owner) -> SubscriberOut:
    """Subscribe an address to a newsletter (pending, or active with confirmed)."""
    result = add_subscriber(
        context.db, body.newsletter, body.email, body.name, body.confirmed, source="api"
    )
    return _subscriber(context, result.subscriber_id)


@router.post("/subscribers/import", response_model=ImportOut)
def bulk_import(body: ImportIn, context: Context, who: Owner) -> ImportOut:
    """Many subscribers at once, merged and validated like a CSV import; each refused one
    is named by its position in the list (from 0)."""
    report = import_records(
        context.db,
        body.newsletter,
        body.subscribers,
        body.confirmed,
        context.settings.import_batch_size,
        AttributeLimits.of(context.settings),
    )
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
    if not update_subscriber(context.db, subscriber_id, change, limits):
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
        unsubscribe(context.db, subscription_id)
        if body.status == "unsubscribed"
        else confirm_subscription(context.db, subscription_id)
    )
    if view is None:
        raise NotFound(f"no subscription {subscription_id}")
    return _subscriber(context, view.subscriber_id)


@router.get("/suppressions", response_model=Page[SuppressionOut], tags=["suppressions"])
def list_suppressions(
    context: Context,
    who: Reader,
    cursor: Cursor = None,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Page[SuppressionOut]:
    rows, next_after = suppressions(context.db, q, decode(cursor))
    return Page[SuppressionOut](
        items=[
            SuppressionOut(
                id=r.id,
                email=r.email,
                reason=r.reason.value,
                detail=r.detail,
                created_at=r.created_at,
            )
            for r in rows
        ],
        next_cursor=encode(next_after),
    )


@router.post("/suppressions", status_code=201, response_model=None, tags=["suppressions"])
def add_suppression(body: SuppressionIn, context: Context, who: Owner) -> Response:
    created = suppress(context.db, body.email, body.detail or "added through the API")
    return Response(status_code=201 if created else 200)


@router.delete("/suppressions/{suppression_id}", status_code=204, tags=["suppressions"])
def delete_suppression(suppression_id: RowId, context: Context, who: Owner) -> Response:
    unsuppress(context.db, suppression_id)
    return Response(status_code=204)
