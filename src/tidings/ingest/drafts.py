"""The normalised shape of an incoming article, and the rules every article passes.

Feed items, CLI additions and CMS pushes all become an :class:`ArticleDraft` through
:func:`make_draft`, so they are validated and cleaned the same way.
"""

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from tidings.catalog.urls import canonical_url
from tidings.db.types import as_utc
from tidings.errors import InvalidInput
from tidings.ingest.images import ArticleImage, first_content_image
from tidings.text import plain_text, sanitise_html, shorten

SUMMARY_LIMIT = 600
TITLE_LIMIT = 500
#: A byline names people and a section is a word or two: a feed's author biography or
#: keyword dump in them would weigh on every copy of every edition.
BYLINE_LIMIT = 200
SECTION_LIMIT = 100


@dataclass(frozen=True)
class ArticleDraft:
    """An article as it is about to be stored; ``guid`` is its dedupe key."""

    guid: str
    url: str
    title: str
    byline: str | None
    section: str | None
    summary: str | None
    content_html: str | None
    published_at: datetime | None
    #: Its picture, as the feed gave it; the alt text is the title when the feed gave none.
    image: ArticleImage | None = None

    @property
    def content_hash(self) -> str:
        """A fingerprint of everything an edit can change (a draft without a picture keeps
        the fingerprint it had before articles had pictures, so nothing is rewritten)."""
        published = self.published_at.isoformat() if self.published_at else ""
        fields: tuple[str | None, ...] = (
            self.url,
            self.title,
            self.byline,
            self.section,
            self.summary,
            self.content_html,
            published,
        )
        if self.image is not None:
            size = f"{self.image.width or ''}x{self.image.height or ''}"
            fields += (self.image.url, size, self.image.alt)
        joined = "\x1f".join(field or "" for field in fields)
        return hashlib.sha256(joined.encode()).hexdigest()


def make_draft(
    *,
    url: str,
    title: str | None,
    guid: str | None = None,
    byline: str | None = None,
    section: str | None = None,
    summary: str | None = None,
    content_html: str | None = None,
    published_at: datetime | None = None,
    image: ArticleImage | None = None,
) -> ArticleDraft:
    """Validate and clean one article; raises :class:`InvalidInput` naming what is wrong.
    ``image`` is the picture its source gave beside the content; without one, the first
    picture of the (sanitised) content that may be shown is taken."""
    clean_url = canonical_url(url)
    clean_title = shorten(plain_text(title), TITLE_LIMIT)
    if not clean_title:
        raise InvalidInput("title is empty")
    body = sanitise_html(content_html) if content_html else ""
    clean_summary = plain_text(summary) or plain_text(body)
    key = (guid or "").strip() or clean_url
    return ArticleDraft(
        guid=key,
        url=clean_url,
        title=clean_title,
        byline=shorten(plain_text(byline), BYLINE_LIMIT) or None,
        section=shorten(plain_text(section), SECTION_LIMIT) or None,
        summary=shorten(clean_summary, SUMMARY_LIMIT) or None,
        content_html=body or None,
        published_at=as_utc(published_at) if published_at else None,
        image=_with_alt(image or first_content_image(body, clean_url), clean_title),
    )


def _with_alt(image: ArticleImage | None, title: str) -> ArticleImage | None:
    """The picture with words: the title stands in when the source gave none."""
    return replace(image, alt=image.alt or title) if image else None
