"""Render an edition once: templates, Markdown intro, CSS inlining (premailer, no network).

Personal values are slot markers whose nonce no content value contains
(:mod:`tidings.mail.personal`); the subject is the same for every reader and has none.
"""

import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup
from sqlalchemy import inspect

from tidings.db.models import Article, Newsletter
from tidings.errors import InvalidInput
from tidings.mail.addresses import clean_name
from tidings.mail.css import inline_css
from tidings.mail.personal import SlotMarkers
from tidings.mail.templates import EmailTemplates
from tidings.text import sanitise_html

#: Gmail clips messages at about 102 KB and hides the rest, unsubscribe link included.
MAX_HTML_BYTES = 95 * 1024
SUBJECT_LIMIT = 250


class EditionTooLarge(InvalidInput):
    """The rendered HTML part is over the size limit."""


@dataclass(frozen=True)
class ArticleView:
    """What a template may show of an article."""

    title: str
    url: str
    byline: str | None
    section: str | None
    summary: str | None
    published_label: str


@dataclass(frozen=True)
class EditionView:
    """What a template may show of the edition itself."""

    date_label: str
    intro_html: Markup | None
    intro_text: str | None
    weekly: bool = False
    #: The IANA zone the times are shown in.
    zone: str = "UTC"


@dataclass(frozen=True)
class RenderedEdition:
    """An edition rendered once; ``html`` and ``text`` in their stored form, with the slots
    that only the templates made (see :meth:`SlotMarkers.stored`)."""

    subject: str
    html: str
    text: str


def _date_label(moment: datetime) -> str:
    return f"{moment:%A}, {moment:%B} {moment.day}, {moment.year}"


def _time_label(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment:%H:%M}"


def intro_to_html(markdown: str) -> Markup:
    """Editor Markdown to safe HTML: raw HTML in it is escaped, the result sanitised."""
    rendered = MarkdownIt("commonmark", {"html": False}).render(markdown)
    return Markup(sanitise_html(rendered))  # noqa: S704 (sanitised by nh3 just above)


#: Links the text part spells out (as the HTML sanitiser keeps them; "//host" is a link to
#: another site too): others show their text.
_SHOWN_SCHEMES = ("http://", "https://", "mailto:", "//")
_SPACES = re.compile(r"\s+")
INTRO_TEXT_WIDTH = 72


def _inline_text(children: Sequence[Token]) -> str:
    """One paragraph's inline tokens as plain text: emphasis dropped, a link as
    "text <url>" (the real address, whatever its text says; once when the text is the
    address), a hard break kept."""
    out: list[str] = []
    links: list[tuple[str | None, int]] = []
    for token in children:
        if token.type in ("text", "code_inline"):
            out.append(_SPACES.sub(" ", token.content))
        elif token.type == "softbreak":
            out.append(" ")
        elif token.type == "hardbreak":
            out.append("\n")
        elif token.type == "link_open":
            href = str(token.attrs.get("href", ""))
            shown = href if href.lower().startswith(_SHOWN_SCHEMES) else None
            links.append((shown, len(out)))
        elif token.type == "link_close" and links:
            shown, start = links.pop()
            if shown:
                address = shown.removeprefix("mailto:")
                if "".join(out[start:]).strip() != address:
                    out.append(f" <{address}>")
        elif token.type == "image":
            out.append(_SPACES.sub(" ", token.content))
    return "".join(out).strip(" ")


def _wrapped(text: str, first: str, rest: str) -> list[str]:
    """``text`` wrapped at :data:`INTRO_TEXT_WIDTH`, never inside a word or a link."""
    lines: list[str] = []
    for number, line in enumerate(text.split("\n")):
        lines += textwrap.wrap(
            line,
            INTRO_TEXT_WIDTH,
            initial_indent=first if number == 0 else rest,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [rest.rstrip()]
    return lines


def intro_to_text(markdown: str) -> str:
    """Editor Markdown as the plain-text part shows it: paragraphs, "- item" and "1. item"
    lists (nested ones indented), links as "text <url>", quotes as "> ", headings as lines."""
    blocks: list[list[str]] = []
    lists: list[list[int]] = []  # per open list: [next number, or 0 for bullets]
    quote = 0
    marker: str | None = None
    joining = False  # the last block is a list still open
    for token in MarkdownIt("commonmark", {"html": False}).parse(markdown):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            start = int(str(token.attrs.get("start", 1))) if token.type[0] == "o" else 0
            lists.append([start])
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            joining = bool(lists)
        elif token.type == "list_item_open":
            number = lists[-1][0]
            marker = f"{number}. " if number else "- "
            if number:
                lists[-1][0] += 1
        elif token.type == "blockquote_open":
            quote += 1
        elif token.type == "blockquote_close":
            quote -= 1
        elif token.type in ("inline", "code_block", "fence"):
            text = _inline_text(token.children or []) if token.type == "inline" else token.content
            prefix = "> " * quote + "   " * max(len(lists) - 1, 0)
            first = prefix + (marker or "")
            rest = prefix + " " * len(marker or "")
            lines = (
                _wrapped(text, first, rest)
                if token.type == "inline"
                else [prefix + line for line in text.rstrip("\n").split("\n")]
            )
            if lists and joining:
                blocks[-1] += lines  # a list's items are one block, one line after another
            else:
                blocks.append(lines)
            joining = bool(lists)
            marker = None
    return "\n\n".join("\n".join(block) for block in blocks)


def clean_subject(subject: str) -> str:
    """An editor's subject as a single line of plain text."""
    cleaned = clean_name(subject) or ""
    if not cleaned:
        raise InvalidInput("the subject is empty")
    return cleaned[:SUBJECT_LIMIT]


def _content_strings(
    newsletter: Newsletter, views: list[ArticleView], edition: EditionView, subject: str
) -> Iterator[str]:
    """Every text a template can show that is not the template's own: the slot nonce must
    be in none of them."""
    yield subject
    for attribute in inspect(newsletter).mapper.column_attrs:
        value = getattr(newsletter, attribute.key)
        if isinstance(value, str):
            yield value
    for view in (*views, edition):
        yield from (value for value in vars(view).values() if isinstance(value, str))


#: What a subject template finds as ``personal``: using it fails with this reason.
_NO_PERSONAL_IN_SUBJECT = StrictUndefined(
    hint="the subject is the same for every reader: it cannot show personal values"
)


def _subject(templates: EmailTemplates, context: dict[str, Any], subject: str | None) -> str:
    """The editor's subject, else the template's; it has no personal slots, as a subject is
    stored, listed in the archive and its feed, and encoded once per edition."""
    if subject:
        return clean_subject(subject)
    return clean_subject(templates.subject.render(context, personal=_NO_PERSONAL_IN_SUBJECT))


def render_edition(
    templates: EmailTemplates,
    newsletter: Newsletter,
    articles: list[Article],
    *,
    issued_at: datetime,
    intro_markdown: str | None = None,
    subject: str | None = None,
    weekly: bool = False,
    zone: str | None = None,
) -> RenderedEdition:
    """Render the triplet once for the edition and inline the CSS once; times are shown in
    ``zone`` (the readers' zone of a reader-time edition), else the newsletter's."""
    shown_zone = zone or newsletter.timezone
    tz = ZoneInfo(shown_zone)
    views = [
        ArticleView(
            title=a.title,
            url=a.url,
            byline=a.byline,
            section=a.section,
            summary=a.summary,
            published_label=_time_label(a.published_at.astimezone(tz)),
        )
        for a in articles
    ]
    intro_html = intro_to_html(intro_markdown) if intro_markdown else None
    edition = EditionView(
        date_label=_date_label(issued_at.astimezone(tz)),
        zone=shown_zone,
        intro_html=intro_html,
        intro_text=intro_to_text(intro_markdown) if intro_markdown else None,
        weekly=weekly,
    )
    context: dict[str, Any] = {"newsletter": newsletter, "articles": views, "edition": edition}
    final_subject = _subject(templates, context, subject)
    markers = SlotMarkers.absent_from(_content_strings(newsletter, views, edition, final_subject))
    context.update(subject=final_subject, personal=markers.personal())
    html = inline_css(templates.html.render(context))
    size = len(html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        raise EditionTooLarge(
            f"the HTML part is {size // 1024} KB, over the {MAX_HTML_BYTES // 1024} KB limit "
            "(Gmail would clip it and hide the unsubscribe link): use fewer articles"
        )
    text = templates.text.render(context)
    return RenderedEdition(final_subject, markers.stored(html), markers.stored(text))
