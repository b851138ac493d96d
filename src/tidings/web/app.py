"""The FastAPI application factory."""

from fastapi import APIRouter, Depends, FastAPI

from tidings import __version__
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.web import archive, mailbox, public, subscribe
from tidings.web.admin import auth, dashboard, editions, newsletters, subscribers
from tidings.web.admin.session import csrf_guard, exception_handlers
from tidings.web.deps import WebContext
from tidings.web.pages import page_environment


def _console() -> APIRouter:
    """Every console route, each POST behind the CSRF guard."""
    console = APIRouter(dependencies=[Depends(csrf_guard)])
    console.include_router(auth.router)
    console.include_router(dashboard.router)
    console.include_router(subscribers.router)
    console.include_router(newsletters.router)
    console.include_router(editions.router)
    return console


def create_app(settings: Settings, db: Database) -> FastAPI:
    """The web app; the mailbox is mounted only when the built-in catcher is in use."""
    app = FastAPI(
        title="Tidings", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    context = WebContext(settings, db, page_environment(settings.templates_dir))
    app.state.tidings = context
    for exception, handler in exception_handlers(context).items():
        app.add_exception_handler(exception, handler)
    app.include_router(public.router)
    app.include_router(subscribe.router)
    app.include_router(archive.router)
    app.include_router(_console())
    if settings.smtp is None:
        app.include_router(mailbox.router)
    return app
