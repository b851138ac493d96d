"""Sanitising article HTML and turning feed strings into plain text."""

import html
import re

import nh3

_WHITESPACE = re.compile(r"\s+")
_URL_SCHEMES = {"http", "https", "mailto"}


def sanitise_html(value: str) -> str:
    """Article HTML safe to embed in an email or page: no scripts, handlers or odd URL schemes."""
    return nh3.clean(value, url_schemes=_URL_SCHEMES, link_rel="noopener noreferrer").strip()


def plain_text(value: str | None) -> str:
    """Tags stripped, entities decoded, whitespace (including CR/LF) folded to single spaces."""
    if not value:
        return ""
    without_tags = nh3.clean(value, tags=set(), attributes={})
    return _WHITESPACE.sub(" ", html.unescape(without_tags)).strip()


def shorten(value: str, limit: int) -> str:
    """Cut plain text at a word boundary to at most ``limit`` characters, marking the cut."""
    if len(value) <= limit:
        return value
    cut = value[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.-\u2013\u2014 ")
    return cut + "…"


def as_sentence(text: str) -> str:
    """A message as a sentence for people: capital first, a full stop last."""
    text = text.strip()
    # A first word that is a name (scheduled_for:, 'x@y', --flag) keeps its form.
    if text.split(" ", 1)[0].rstrip(":;,").isalpha():
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
