"""Parse RSS 2.0 and Atom (feedparser) and JSON Feed (its own small format) into drafts.

Items that fail validation are skipped and counted, so one bad item never hides the rest.
"""

import calendar
import html
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import feedparser

from tidings.errors import InvalidInput, NotAFeed
from tidings.ingest.drafts import ArticleDraft, make_draft
from tidings.ingest.images import ArticleImage, feed_item_image, picture

JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"


@dataclass
class ParsedFeed:
    """The valid items of one feed document, and why the others were dropped."""

    drafts: list[ArticleDraft] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def parse_feed(body: bytes, content_type: str = "") -> ParsedFeed:
    """Parse a feed document of any supported kind; raises :class:`NotAFeed` otherwise."""
    if "json" in content_type or body.lstrip()[:1] == b"{":
        return _collect(_json_feed_items(body))
    return _collect(_xml_feed_items(body))


def _collect(items: Iterable[Callable[[], ArticleDraft]]) -> ParsedFeed:
    parsed = ParsedFeed()
    seen: set[str] = set()
    for position, build in enumerate(items, start=1):
        try:
            draft = build()
        except InvalidInput as exc:
            parsed.rejected.append(f"item {position}: {exc}")
            continue
        if draft.guid not in seen:  # a feed repeating an item keeps its first copy
            seen.add(draft.guid)
            parsed.drafts.append(draft)
    return parsed


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)


#: The Media RSS namespace (media:content, media:thumbnail, media:description).
_MRSS_PREFIX = re.compile(
    rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']http://search\.yahoo\.com/mrss/?["']"""
)


#: Any prefixed description tag; whether its prefix is the Media RSS one is looked up.
_PREFIXED_DESCRIPTION = re.compile(rb"<(/?)([A-Za-z_][\w.-]*):description\b")


def _without_media_descriptions(body: bytes) -> bytes:
    """The document with its media:description elements renamed to one feedparser ignores.

    feedparser reads a media:description (a picture's caption) as the item's summary or as
    its first content, by document order, so a caption could replace the article's summary
    or body. A rename on the bytes (the prefix as the document binds it; ASCII-compatible
    encodings only, others are left as they are) keeps the article's own words. One pass
    over the document whatever the number of prefixes bound to the namespace (a pass per
    prefix let a hostile feed binding thousands of them hold the poller for minutes)."""
    prefixes = set(_MRSS_PREFIX.findall(body))
    if not prefixes:
        return body

    def rename(found: "re.Match[bytes]") -> bytes:
        if found.group(2) not in prefixes:
            return found.group(0)
        return b"<" + found.group(1) + found.group(2) + b":caption-ignored"

    return _PREFIXED_DESCRIPTION.sub(rename, body)


def _xml_feed_items(body: bytes) -> list[Callable[[], ArticleDraft]]:
    # A stream, never a string: feedparser would treat a string as a URL or a file name.
    document = feedparser.parse(
        io.BytesIO(_without_media_descriptions(body)),
        sanitize_html=False,
        resolve_relative_uris=True,
    )
    if not document.get("version"):
        reason = document.get("bozo_exception")
        detail = f": {reason}" if reason else ""
        raise NotAFeed(f"not an RSS, Atom or JSON feed{detail}")
    return [partial(_draft_from_entry, entry) for entry in document.entries]


def _draft_from_entry(entry: Any) -> ArticleDraft:
    link = entry.get("link") or ""
    if not link:
        raise InvalidInput("item has no link")
    contents = entry.get("content") or []
    html_body = contents[0].get("value") if contents else None
    tags = entry.get("tags") or []
    content_html = html_body or entry.get("summary")
    return make_draft(
        url=link,
        title=entry.get("title"),
        guid=entry.get("id"),
        byline=entry.get("author"),
        section=tags[0].get("term") if tags else None,
        summary=entry.get("summary"),
        content_html=content_html,
        published_at=_struct_to_datetime(
            entry.get("published_parsed") or entry.get("updated_parsed")
        ),
        image=feed_item_image(entry),
    )


def _json_feed_items(body: bytes) -> list[Callable[[], ArticleDraft]]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAFeed(f"not a JSON feed: {exc}") from exc
    version = document.get("version") if isinstance(document, dict) else None
    items = document.get("items") if isinstance(document, dict) else None
    if not (isinstance(version, str) and version.startswith(JSON_FEED_VERSION_PREFIX)):
        raise NotAFeed("not a JSON feed: no jsonfeed.org version")
    if not isinstance(items, list):
        raise NotAFeed("not a JSON feed: items is not a list")
    return [partial(_draft_from_json_item, item) for item in items]


def _text_as_html(text: Any) -> str | None:
    if not text:
        return None
    paragraphs = (p.strip() for p in str(text).split("\n\n"))
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p)


def _json_date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"date {value!r} is not RFC 3339") from exc


def _draft_from_json_item(item: Any) -> ArticleDraft:
    if not isinstance(item, dict):
        raise InvalidInput("item is not an object")
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    names = ", ".join(a.get("name", "") for a in authors if isinstance(a, dict))
    tags = item.get("tags") or []
    url = str(item.get("url") or item.get("external_url") or "")
    content_html = item.get("content_html") or _text_as_html(item.get("content_text"))
    return make_draft(
        url=url,
        title=item.get("title"),
        guid=str(item["id"]) if item.get("id") is not None else None,
        byline=names or None,
        section=str(tags[0]) if tags else None,
        summary=item.get("summary"),
        content_html=content_html,
        published_at=_json_date(item.get("date_published") or item.get("date_modified")),
        image=_json_item_image(item, url),
    )


def _json_item_image(item: dict[str, Any], base: str) -> ArticleImage | None:
    """A JSON Feed item's own picture: its ``image``, then ``banner_image`` (JSON Feed gives
    no size or words for them); the draft looks in the content when there is neither."""
    for key in ("image", "banner_image"):
        found = picture(item.get(key), base=base) if isinstance(item.get(key), str) else None
        if found is not None:
            return found
    return None
