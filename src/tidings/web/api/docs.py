"""Interactive API documentation at ``/api/v1/docs``, served from this server alone.

Swagger UI's script and style come from the ``fastapi-offline`` package, which ships them for
exactly this (no CDN: a server without internet access, or a strict policy, still shows its
docs); the page that starts it is ours, so that its one inline script carries the response's
CSP nonce like every other page's.
"""

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from tidings.web.deps import WebContext
from tidings.web.pages import page
from tidings.web.security import NONCE_KEY

#: The folder of Swagger UI's files inside the fastapi-offline package.
SWAGGER_FILES = Path(fastapi_offline.__file__).parent / "static"


def install(api: FastAPI, context: WebContext, openapi_path: str) -> None:
    """Add ``/docs`` (the page) and ``/docs/static`` (Swagger UI's files) to the API app."""
    api.mount("/docs/static", StaticFiles(directory=SWAGGER_FILES), name="api-docs-static")

    @api.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return page(
            context.pages,
            "api_docs.html",
            title=api.title,
            static=f"{root}/docs/static",
            openapi_url=f"{root}{openapi_path}",
            csp_nonce=getattr(request.state, NONCE_KEY, ""),
        )
