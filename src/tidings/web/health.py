"""Health checks for load balancers, orchestrators and docker-compose: ``/healthz`` (the
process answers; no database) and ``/readyz`` (it can do its work: the database answers, its
schema is current, and when deliveries are due some worker is alive to send them); and the
Prometheus metrics at ``/metrics``.

The health checks are public, tiny and never cached; they say nothing a visitor could use
beyond whether the service is ready. The metrics are for loopback clients and for holders of
the metrics token only.
"""

import asyncio
import functools
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from tidings.db.engine import Database
from tidings.db.migrate import current_revision, head_revision
from tidings.deliver.heartbeats import roll_call
from tidings.metrics import CONTENT_TYPE, exposition, registry_with
from tidings.reports.queuegauge import QueueCollector
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


@functools.lru_cache(maxsize=4)
def _head(engine: Engine) -> str | None:
    """The shipped head revision (read from the migration files once per engine; a few
    engines at most, so a process that makes many apps does not keep them all)."""
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
        roll = roll_call(db)
    except Exception as exc:  # the schema may be behind (no heartbeat table yet)
        checks["worker"] = Check(False, f"cannot tell ({type(exc).__name__})")
        return checks
    if not roll.due:
        checks["worker"] = Check(True, "nothing is due")
    elif roll.alive:
        checks["worker"] = Check(True, f"{len(roll.alive)} alive, deliveries are due")
    else:
        checks["worker"] = Check(False, "no worker is alive and deliveries are due")
    return checks


@router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> PlainTextResponse:
    """The process is alive and answering (no database: a database outage must not get
    every web process restarted)."""
    return PlainTextResponse("ok", headers=NO_STORE)


def _check_in_flight(request: Request, db: Database) -> "asyncio.Task[dict[str, Check]]":
    """The app's readiness check still running, else a new one. While the database hangs,
    every probe waits on this one check instead of starting its own: one stuck thread and
    one pooled connection at most, however often the load balancer asks."""
    running: asyncio.Task[dict[str, Check]] | None = getattr(
        request.app.state, "readiness_check", None
    )
    if running is None or running.done() or running.get_loop() is not asyncio.get_running_loop():
        running = asyncio.create_task(asyncio.to_thread(readiness, db))
        request.app.state.readiness_check = running
    return running


@router.get("/readyz")
async def readyz(request: Request, context: Context) -> JSONResponse:
    """200 when ready, else 503; either way the checks and their results."""
    check = _check_in_flight(request, context.db)
    try:
        # Shielded: a probe that gives up leaves the check running for the next probes.
        checks = await asyncio.wait_for(asyncio.shield(check), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        slow = Check(False, f"no answer within {READY_TIMEOUT_SECONDS:.0f} s")
        checks = {"database": slow}
    ready = all(check.ok for check in checks.values())
    body = {
        "ready": ready,
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503, headers=NO_STORE)


#: Headers that say a request came through a proxy: such a request is not a local one,
#: whatever address the proxy connected from.
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
METRICS_REFUSED = "Metrics are shown to local clients and to holders of the metrics token."


def _metrics_allowed(request: Request, context: WebContext) -> bool:
    """A loopback client that came through no proxy, or the metrics token (when set)."""
    token = context.settings.metrics_token
    expected = token.get_secret_value().encode() if token is not None else b""
    if expected:  # an empty setting is no token: it must never match an empty header
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected):
            return True
    if any(name in request.headers for name in FORWARDED_HEADERS):
        return False
    try:
        return ipaddress.ip_address(context.client_ip(request)).is_loopback
    except ValueError:
        return False


def _registry(request: Request, context: WebContext) -> CollectorRegistry:
    """This app's registry: the process's metrics and the delivery queue (made once)."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if not isinstance(registry, CollectorRegistry):
        registry = registry_with(QueueCollector(context.db))
        request.app.state.metrics_registry = registry
    return registry


@router.get("/metrics")
async def metrics(request: Request, context: Context) -> Response:
    """The process's Prometheus metrics and the queue (read from the database now)."""
    if not _metrics_allowed(request, context):
        return PlainTextResponse(METRICS_REFUSED, status_code=403, headers=NO_STORE)
    body = await asyncio.to_thread(exposition, _registry(request, context))
    return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)
