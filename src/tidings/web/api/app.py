"""The API sub-application, mounted at /api/v1 with its OpenAPI document beside it."""

from fastapi import FastAPI

from tidings import __version__
from tidings.web.api import dkim, docs, editions, errors, feedback, newsletters, subscribers
from tidings.web.api.auth import TokenFirst
from tidings.web.deps import WebContext


def create_api(context: WebContext) -> FastAPI:
    """The API app: token checked before any body is read (:class:`TokenFirst`); the body
    cap is the enclosing app's (``max_request_bytes``)."""
    api = FastAPI(
        title="Tidings API",
        version=__version__,
        description="Newsletters, sources, articles, subscribers, editions and suppressions. "
        "Authenticate with 'Authorization: Bearer <token>'; an admin makes tokens in the "
        "console's Access page.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=errors.ERROR_RESPONSES,
    )
    api.state.tidings = context
    errors.install(api)
    docs.install(api, context, "/openapi.json")
    api.add_middleware(TokenFirst, context=context)
    api.include_router(newsletters.router)
    api.include_router(subscribers.router)
    api.include_router(editions.router)
    api.include_router(dkim.router)
    api.include_router(feedback.router)
    return api
