"""/dkim-keys: DKIM signing keys (admin tokens only). The private key never leaves the
database: a key is shown by its public half and the record that publishes it."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from tidings.mail.dkim.published import KeyStatus, key_report
from tidings.mail.dkim.store import KeyView, add_key, remove_key
from tidings.web.api.auth import Context, Owner
from tidings.web.api.schemas import DkimKeyIn, DkimKeyOut
from tidings.web.deps import RowId

router = APIRouter(tags=["dkim"])


def _out(key: KeyView, status: KeyStatus | None = None) -> DkimKeyOut:
    record = key.record
    return DkimKeyOut(
        id=key.id,
        domain=key.domain,
        selector=key.selector,
        algorithm=key.algorithm.value,
        created_at=key.created_at,
        record_name=record.name,
        record_value=record.value,
        zone_line=record.zone_line,
        dns=status.dns.value if status is not None and status.dns is not None else None,
        readable=status.readable if status is not None else True,
    )


@router.get("/dkim-keys", response_model=list[DkimKeyOut])
async def list_dkim_keys(
    context: Context,
    who: Owner,
    check_dns: Annotated[bool, Query(description="ask DNS whether each key is published")] = False,
) -> list[DkimKeyOut]:
    """Every key with the record to publish (and, asked, what DNS publishes)."""
    report = await run_in_threadpool(key_report, context.db, context.settings, check_dns)
    return [_out(status.key, status) for status in report]


@router.post("/dkim-keys", response_model=DkimKeyOut, status_code=201)
def create_dkim_key(body: DkimKeyIn, context: Context, who: Owner) -> DkimKeyOut:
    """Make a key; it signs mail from its domain at once: publish its record."""
    key = add_key(context.db, context.settings, body.domain, body.selector, body.algorithm)
    return _out(key)


@router.delete("/dkim-keys/{key_id}", status_code=204)
def delete_dkim_key(key_id: RowId, context: Context, who: Owner) -> Response:
    remove_key(context.db, key_id)
    return Response(status_code=204)
