"""An article's picture, as its feed gives it: the URL, its size and its words.

Only what the feed itself carries is taken (media:content, media:thumbnail, an image
enclosure, else the first ``<img>`` of the item's sanitised content); the article page is
never fetched. A digest shows the picture by its URL, so a URL is kept only when it is a plain
http(s) address on a proper public host name (or a public address literal): never
loopback, a private network, ``localhost`` or a bare word, which would make every reader's
mail client reach into somebody's intranet.
"""

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from tidings.catalog.feedguard import is_public
from tidings.catalog.urls import URL_LIMIT
from tidings.text import plain_text, shorten

#: A width or height beyond this is a typo (or a hostile feed): the size is dropped, not the
#: picture.
SIDE_AT_MOST = 10_000
#: Alt text is a short description, not a caption essay.
ALT_AT_MOST = 300
#: The first images of the content looked at (one of them may be a 1x1 counting pixel).
IMAGES_LOOKED_AT = 5
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: A last label that browsers (the WHATWG URL standard) read as a number, decimal or "0x"
#: hexadecimal: the whole host is then an IPv4 address ("127.0.0.0x1" is 127.0.0.1).
_NUMBER_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
#: Names that never lead to the open internet (RFC 6761, RFC 8375 and common practice).
_LOCAL_SUFFIXES = ("localhost", "local", "internal", "home.arpa", "invalid", "lan")
_IMAGE_PATH = re.compile(r"\.(?:jpe?g|png|gif|webp|avif)$", re.IGNORECASE)


@dataclass(frozen=True)
class ArticleImage:
    """A picture to show with an article; ``alt`` may be empty (the title stands in)."""

    url: str
    width: int | None = None
    height: int | None = None
    alt: str = ""


def _proper_host_name(host: str) -> bool:
    """A DNS name of two labels or more whose last label is not a number (decimal or hex, as
    browsers read it: such a host is an address in disguise), not a local one."""
    try:
        name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or _NUMBER_LABEL.match(labels[-1]):
        return False
    if any(name == s or name.endswith("." + s) for s in _LOCAL_SUFFIXES):
        return False
    return all(_LABEL.match(label) for label in labels)


def image_url(raw: str | None, base: str = "") -> str | None:
    """``raw`` (relative ones read against ``base``, the article's URL) when a mail client
    may load it: http(s), no user name, a proper public host; else None."""
    text = (raw or "").strip()
    if not text or len(text) > URL_LIMIT or any(c.isspace() or ord(c) < 32 for c in text):
        return None
    url = urljoin(base, text) if base else text
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.username or parts.password:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url if _proper_host_name(host) else None
    return url if is_public(address) else None


def side(raw: Any) -> int | None:
    """A width or height as a feed writes it ("800", "800px"), or None when it is no sensible
    number of pixels."""
    found = re.fullmatch(r"\s*(\d{1,6})\s*(?:px)?\s*", str(raw or ""))
    if found is None:
        return None
    value = int(found[1])
    return value if 1 <= value <= SIDE_AT_MOST else None


def alt_text(raw: Any) -> str:
    """Alt text as plain text on one line, at most :data:`ALT_AT_MOST` characters."""
    return shorten(plain_text(str(raw or "")), ALT_AT_MOST)


def _is_pixel(width: int | None, height: int | None) -> bool:
    """A counting pixel or spacer, not a picture."""
    return (width is not None and width < 16) or (height is not None and height < 16)


def picture(
    url: Any, width: Any = None, height: Any = None, alt: Any = "", base: str = ""
) -> ArticleImage | None:
    """One candidate checked: None unless its URL may be shown and it is not a pixel."""
    checked = image_url(str(url) if url else None, base)
    if checked is None:
        return None
    w, h = side(width), side(height)
    if _is_pixel(w, h):
        return None
    return ArticleImage(url=checked, width=w, height=h, alt=alt_text(alt))


def _media_is_image(media: Mapping[str, Any]) -> bool:
    medium = str(media.get("medium") or "").lower()
    kind = str(media.get("type") or "").lower()
    if medium or kind:
        return medium == "image" or kind.startswith("image/")
    return bool(_IMAGE_PATH.search(urlsplit(str(media.get("url") or "")).path))


class _FirstImages(HTMLParser):
    """The ``<img>`` tags of some HTML, in order, as attribute maps (at most a few)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and len(self.found) < IMAGES_LOOKED_AT:
            self.found.append({name: value or "" for name, value in attrs})


def first_content_image(html: str | None, base: str = "") -> ArticleImage | None:
    """The first picture of an article's HTML that may be shown (counting pixels and
    refused URLs passed over); a relative ``src`` is read against ``base``, the article's
    URL. None when there is none."""
    if not html:
        return None
    reader = _FirstImages()
    reader.feed(html)
    reader.close()
    for attrs in reader.found:
        found = picture(
            attrs.get("src"), attrs.get("width"), attrs.get("height"), attrs.get("alt"), base
        )
        if found is not None:
            return found
    return None


def feed_item_image(entry: Mapping[str, Any]) -> ArticleImage | None:
    """A feedparser entry's own picture: media:content of an image kind, then
    media:thumbnail, then an image enclosure; None when it has none that may be shown (the
    draft then looks in the content, see ``drafts.make_draft``)."""
    candidates: list[ArticleImage | None] = []
    for media in entry.get("media_content") or []:
        if isinstance(media, Mapping) and _media_is_image(media):
            candidates.append(picture(media.get("url"), media.get("width"), media.get("height")))
    for media in entry.get("media_thumbnail") or []:
        if isinstance(media, Mapping):
            candidates.append(picture(media.get("url"), media.get("width"), media.get("height")))
    for link in entry.get("links") or []:
        if (
            isinstance(link, Mapping)
            and link.get("rel") == "enclosure"
            and str(link.get("type") or "").lower().startswith("image/")
        ):
            candidates.append(picture(link.get("href")))
    return next((c for c in candidates if c is not None), None)
