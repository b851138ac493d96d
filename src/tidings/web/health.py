"""Health checks for load balancers, orchestrators and docker-compose: ``/healthz`` (the
process answers; no database) and ``/readyz`` (it can do its work: the database answers, its
schema is current, and when deliveries are due some worker is alive to send them).

Both are public, tiny and never cached; they say nothing a visitor could use beyond whether
the service is ready.
"""

import asyncio
import functools
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine

from tidings.db.engine import Database
from tidings.db.migrate import current_revision, head_revision
from tidings.deliver.heartbeats import alive, sending_is_due
from tidings.web.deps import WebContext, web_context

router = APIRouter()
Context = Annotated[WebContext, Depends(web_context)]

#: The longest a readiness check waits for the database: a load balancer's probe must get
#: an answer well within its own timeout.
READY_TIMEOUT_SECONDS = 5.0
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Check:
    """One readiness check: its result and a few words on it."""

    ok: bool
    detail: str


@functools.cache
def _head(engine: Engine) -> str | None:
    """The shipped head revision (read from the migration files once per process)."""
    return head_revision(engine)


def readiness(db: Database) -> dict[str, Check]:
    """The database, the migrations and the workers, each checked (blocking)."""
    try:
        current = current_revision(db.engine)
    except Exception as exc:  # any failure to reach it is the answer
        unknown = Check(False, "not checked: the database is unreachable")
        return {
            "database": Check(False, f"unreachable ({type(exc).__name__})"),
            "migrations": unknown,
            "worker": unknown,
        }
    head = _head(db.engine)
    checks = {
        "database": Check(True, "reachable"),
        "migrations": Check(
            current == head, f"at {current}" + ("" if current == head else f", head is {head}")
        ),
    }
    try:
        due = sending_is_due(db)
        workers = len(alive(db)) if due else 0
    except Exception as exc:  # the schema may be behind (no heartbeat table yet)
        checks["worker"] = Check(False, f"cannot tell ({type(exc).__name__})")
        return checks
    if not due:
        checks["worker"] = Check(True, "nothing is due")
    elif workers:
        checks["worker"] = Check(True, f"{workers} alive, deliveries are due")
    else:
        checks["worker"] = Check(False, "no worker is alive and deliveries are due")
    return checks


@router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> PlainTextResponse:
    """The process is alive and answering (no database: a database outage must not get
    every web process restarted)."""
    return PlainTextResponse("ok", headers=NO_STORE)


@router.get("/readyz")
async def readyz(context: Context) -> JSONResponse:
    """200 when ready, else 503; either way the checks and their results."""
    try:
        checks = await asyncio.wait_for(
            asyncio.to_thread(readiness, context.db), READY_TIMEOUT_SECONDS
        )
    except TimeoutError:
        slow = Check(False, f"no answer within {READY_TIMEOUT_SECONDS:.0f} s")
        checks = {"database": slow}
    ready = all(check.ok for check in checks.values())
    body = {
        "ready": ready,
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503, headers=NO_STORE)
