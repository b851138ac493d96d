"""The FastAPI application factory."""

from fastapi import FastAPI

from tidings import __version__
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.web import mailbox, public
from tidings.web.deps import WebContext
from tidings.web.pages import page_environment


def create_app(settings: Settings, db: Database) -> FastAPI:
    """The web app; the mailbox is mounted only when the built-in catcher is in use."""
    app = FastAPI(
        title="Tidings", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.tidings = WebContext(settings, db, page_environment(settings.templates_dir))
    app.include_router(public.router)
    if settings.smtp is None:
        app.include_router(mailbox.router)
    return app
