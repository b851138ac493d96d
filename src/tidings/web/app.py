"""The FastAPI application factory."""

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.routing import Match

from tidings import __version__
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.web import health, webhooks
from tidings.web.admin import (
    access,
    auth,
    bounces,
    builder,
    dashboard,
    dkim,
    editions,
    mailbox,
    newsletters,
    subscribers,
)
from tidings.web.admin.session import csrf_guard, exception_handlers, refusal_page
from tidings.web.api.app import create_api
from tidings.web.api.errors import error_response
from tidings.web.deps import WebContext
from tidings.web.pages import page, page_environment
from tidings.web.public import archive, front, preferences, subscribe
from tidings.web.security import SecurityHeaders

#: The console's routers; each carries its full /admin path.
CONSOLE_ROUTERS = (
    auth.router,
    dashboard.router,
    subscribers.router,
    newsletters.router,
    builder.router,  # before editions: /admin/editions/new is not an edition id
    editions.router,
    access.router,
    dkim.router,
    bounces.router,
)


def _console(settings: Settings) -> APIRouter:
    """Every console route, each POST behind the CSRF guard.

    The one place a route may take more than ``max_request_bytes``: the CSV import upload
    gets ``max_upload_bytes`` (its file part is spooled to disk as it arrives)."""
    console = APIRouter(dependencies=[Depends(csrf_guard)])
    console.include_router(subscribers.upload_router, max_body_size=settings.max_upload_bytes)
    for router in CONSOLE_ROUTERS:
        console.include_router(router)
    return console


#: Where a GET on a POST-only URL is sent back to the nearest page above it.
_CONSOLE_PREFIXES = ("/admin/", "/mailbox/")


def _parent_page(request: Request) -> str | None:
    """The nearest console page above a POST-only console URL (``/admin/newsletters/x/poll``
    to ``/admin/newsletters/x``), or None outside the console."""
    path = request.url.path.rstrip("/")
    if not path.startswith(_CONSOLE_PREFIXES):
        return None
    while path.count("/") > 1:
        path = path.rsplit("/", 1)[0]
        scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            return path
    return "/admin"


def _posts_here(request: Request) -> bool:
    """Whether a POST route answers at this request's path (the URL of a form's result)."""
    scope = {"type": "http", "path": request.url.path, "root_path": "", "method": "POST"}
    return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)


def _invalid_request(context: WebContext) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A request whose path or form values do not fit its route, outside the API (which has
    its own shape): a reloaded result page goes back to its page, a path that is no page
    is "not found", and a form with a value that does not fit says which, as a sentence."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parent = _parent_page(request)
        if parent is None:  # outside the console: as FastAPI answers
            return await request_validation_exception_handler(request, exc)
        errors = [error for error in exc.errors() if error.get("loc")]
        reading = request.method in ("GET", "HEAD")
        if reading and all(error["loc"][0] == "path" for error in errors):
            if _posts_here(request):  # reloading a form's result: back to its page
                return RedirectResponse(parent, status_code=303)
            return page(context.pages, "not_found.html", status_code=404)  # no such page
        fields = sorted({str(error["loc"][-1]) for error in errors})
        named = ", ".join(f"“{name}”" for name in fields) or "a field"
        taken = "The page was not shown" if reading else "The form was not taken"
        message = f"{taken}: {named} is missing or not valid."
        return refusal_page(request, context, message, status_code=422, back=parent)

    return handler


def _http_error(context: WebContext) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Unmatched paths and methods: the API's error shape under /api/, a page elsewhere."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith("/api/"):
            code = "not_found" if exc.status_code == 404 else "http_error"
            return error_response(exc.status_code, code, str(exc.detail))
        if exc.status_code == 404:
            return page(context.pages, "not_found.html", status_code=404)
        if exc.status_code == 405 and request.method in ("GET", "HEAD"):
            parent = _parent_page(request)
            if parent is not None:  # reloading a result page: back to the page it came from
                return RedirectResponse(parent, status_code=303)
        if exc.status_code == 413:
            return PlainTextResponse("Request too large.", status_code=413)
        return await http_exception_handler(request, exc)

    return handler


def create_app(settings: Settings, db: Database) -> FastAPI:
    """The web app; the mailbox is mounted only when the built-in catcher is in use."""
    app = FastAPI(
        title="Tidings",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    context = WebContext(settings, db, page_environment(settings.templates_dir))
    app.state.tidings = context
    app.router.on_shutdown.append(context.polls.close)  # cancel poll-now fetches in flight
    app.router.on_shutdown.append(context.signups.close)  # finish queued sign-ups first
    for exception, handler in exception_handlers(context).items():
        app.add_exception_handler(exception, handler)
    app.include_router(health.router)  # /healthz and /readyz: public, tiny, never cached
    app.include_router(preferences.router)
    app.include_router(subscribe.router)
    app.include_router(front.router)  # "/" before any router with a path parameter
    app.include_router(archive.router)
    app.include_router(webhooks.router)  # outside the console: no CSRF, each signed
    app.include_router(builder.test_unsubscribe_router)  # a test mail's links: changes nothing
    app.include_router(_console(settings))
    app.mount("/api/v1", create_api(context))
    app.add_exception_handler(StarletteHTTPException, _http_error(context))
    app.add_exception_handler(RequestValidationError, _invalid_request(context))
    if settings.smtp is None:
        app.include_router(mailbox.router)
    # Every request body is capped (413), the API's through its mount too; a route may
    # widen its own cap (see _console). Inside SecurityHeaders, so a 413 carries them.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)  # every response, the API's and errors included
    return app
