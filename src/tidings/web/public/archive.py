"""The public archive: a list per newsletter, each edition as a page, and an Atom feed.

None of it holds personal data, so each answer may be cached by anyone for a while
(:func:`~tidings.web.security.public_headers`); a miss stays ``no-store``."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from tidings.compose.archive import archive, archive_html
from tidings.web.deps import RowId, WebContext, web_context
from tidings.web.pages import page
from tidings.web.security import MAIL_POLICY, OTHER_POLICY, public_headers

router = APIRouter(prefix="/archive")
Context = Annotated[WebContext, Depends(web_context)]


@router.get("/{slug}", response_class=HTMLResponse)
def archive_list(slug: str, context: Context) -> HTMLResponse:
    found = archive(context.db, context.settings, slug)
    if found is None:
        return page(context.pages, "not_found.html", status_code=404)
    listing = page(context.pages, "archive.html", archive=found)
    listing.headers.update(public_headers())
    return listing


@router.get("/{slug}/feed.atom")
def archive_feed(slug: str, context: Context) -> Response:
    found = archive(context.db, context.settings, slug)
    if found is None:
        return page(context.pages, "not_found.html", status_code=404)
    body = context.pages.get_template("archive.atom").render(archive=found)
    return Response(
        body, media_type="application/atom+xml; charset=utf-8", headers=public_headers(OTHER_POLICY)
    )


@router.get("/{slug}/{edition_id}", response_class=HTMLResponse)
def archive_page(slug: str, edition_id: RowId, context: Context) -> HTMLResponse:
    """A sent edition without personal data (the "View in browser" target)."""
    body = archive_html(context.db, context.settings, slug, edition_id)
    if body is None:
        return page(context.pages, "not_found.html", status_code=404)
    # A rendered email: its inline styles and remote images, nothing else.
    return HTMLResponse(body, headers=public_headers(MAIL_POLICY))
