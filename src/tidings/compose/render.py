"""Render an edition once: templates, Markdown intro, CSS inlining (premailer, no network).

Personal values are slot markers whose nonce no content value contains
(:mod:`tidings.mail.personal`); the subject is the same for every reader and has none.

The digest reads like a newspaper's: the first article is the lead story (larger, with its
picture), then "In this edition" (every headline, linked to its place in the mail), then the
other articles grouped by section, sections in the order they first appear in the edition
(the editor's or the selection's order: the lead's section first, then as they come), and
articles without a section last, under :data:`NO_SECTION_HEADING`.
"""

import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup
from sqlalchemy import inspect

from tidings.catalog.readerfacing import footer_paragraphs, postal_line
from tidings.compose.utm import with_utm
from tidings.db.models import Article, Newsletter
from tidings.errors import InvalidInput
from tidings.ingest.images import image_url
from tidings.mail.addresses import clean_name
from tidings.mail.css import inline_css
from tidings.mail.personal import SlotMarkers
from tidings.mail.templates import EmailTemplates
from tidings.text import sanitise_html

#: Gmail clips messages at about 102 KB and hides the rest, unsubscribe link included.
MAX_HTML_BYTES = 95 * 1024
SUBJECT_LIMIT = 250
#: The lead picture's widest size: the 600 px column less its side padding.
LEAD_IMAGE_WIDTH = 552
#: The heading of articles without a section, when others have one.
NO_SECTION_HEADING = "More news"
PREHEADER_LIMIT = 150


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
    #: Its place in the mail (``href="#story-3"`` from "In this edition").
    anchor: str = ""
    #: Its picture at the size shown (both sides always known), when it has one to show.
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_alt: str | None = None


@dataclass(frozen=True)
class SectionView:
    """One section's articles, under its heading (None when no article has a section)."""

    heading: str | None
    articles: tuple[ArticleView, ...]


@dataclass(frozen=True)
class EditionView:
    """What a template may show of the edition itself."""

    date_label: str
    intro_html: Markup | None
    intro_text: str | None
    weekly: bool = False
    #: The IANA zone the times are shown in.
    zone: str = "UTC"
    #: The zone as readers say it: "Tbilisi time", "UTC".
    zone_label: str = "UTC"
    #: The hidden first line mail clients show in the inbox list.
    preheader: str = ""
    #: The sender's postal address on one line, and the footer's own paragraphs.
    postal_address: str | None = None
    footer_paragraphs: tuple[str, ...] = ()


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


def zone_label(zone: str, moment: datetime) -> str:
    """A zone as readers say it: its city ("Asia/Tbilisi" is "Tbilisi time"), else its
    abbreviation at ``moment`` ("UTC", "+04")."""
    if "/" in zone and not zone.startswith("Etc/"):
        return zone.rsplit("/", 1)[-1].replace("_", " ") + " time"
    return moment.astimezone(ZoneInfo(zone)).tzname() or zone


def _image(article: Article, show: bool) -> dict[str, Any]:
    """The article's picture at the size shown (at most :data:`LEAD_IMAGE_WIDTH` wide, its
    proportions kept), when images are on and the feed gave a picture with its size that
    the feed rules still take (:func:`~tidings.ingest.images.image_url`: http(s), a public
    host; a stored URL is checked again, as the rules may have grown since it was stored):
    without both sides a mail client cannot keep the layout while it loads."""
    url, width, height = article.image_url, article.image_width, article.image_height
    if not (show and url and width and height and width > 0 and height > 0):
        return {}
    if image_url(url) != url:
        return {}
    shown = min(width, LEAD_IMAGE_WIDTH)
    return {
        "image_url": url,
        "image_width": shown,
        "image_height": max(1, round(height * shown / width)),
        "image_alt": (article.image_alt or "").strip() or article.title,
    }


def sections_of(
    articles: Sequence[ArticleView], lead: ArticleView | None = None
) -> list[SectionView]:
    """``articles`` grouped by section, sections in order of first appearance in the edition
    (the ``lead``'s section first), articles without one last (under
    :data:`NO_SECTION_HEADING`, or no heading when none has one)."""
    groups: dict[str, list[ArticleView]] = {}
    if lead is not None and (lead.section or "").strip():
        groups[(lead.section or "").strip()] = []
    loose: list[ArticleView] = []
    for view in articles:
        section = (view.section or "").strip()
        if section:
            groups.setdefault(section, []).append(view)
        else:
            loose.append(view)
    sections = [SectionView(name, tuple(views)) for name, views in groups.items() if views]
    if loose:
        sections.append(SectionView(NO_SECTION_HEADING if groups else None, tuple(loose)))
    return sections


def _article_views(
    newsletter: Newsletter, articles: Sequence[Article], tz: ZoneInfo, campaign: str
) -> list[ArticleView]:
    """The articles as templates show them: times in ``tz``, links with the newsletter's
    campaign tags, the lead (the first) with its picture."""
    return [
        ArticleView(
            title=a.title,
            url=with_utm(a.url, newsletter.utm_source, campaign),
            byline=a.byline,
            section=a.section,
            summary=a.summary,
            published_label=_time_label(a.published_at.astimezone(tz)),
            **(_image(a, bool(newsletter.show_images)) if position == 0 else {}),
        )
        for position, a in enumerate(articles)
    ]


def laid_out(views: Sequence[ArticleView]) -> list[ArticleView]:
    """The articles in the order the mail shows them (the lead, then by section), each
    with its anchor (``story-1``...) in that order."""
    if not views:
        return []
    sections = sections_of(views[1:], views[0])
    shown = [views[0], *(v for section in sections for v in section.articles)]
    return [replace(view, anchor=f"story-{n}") for n, view in enumerate(shown, start=1)]


def _preheader(lead: ArticleView | None, sections: Sequence[SectionView]) -> str:
    """The lead headline and how many more stories, in which sections."""
    if lead is None:
        return ""
    more = sum(len(section.articles) for section in sections)
    if not more:
        return lead.title[:PREHEADER_LIMIT]
    named = [s.heading for s in sections if s.heading and s.heading != NO_SECTION_HEADING]
    where = f" in {', '.join(named)}" if named else ""
    text = f"{lead.title} + {more} more{where}"
    return text if len(text) <= PREHEADER_LIMIT else text[: PREHEADER_LIMIT - 1] + "…"


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
        for value in vars(view).values():
            if isinstance(value, str):
                yield value
            elif isinstance(value, tuple):
                yield from (item for item in value if isinstance(item, str))


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
    ``zone`` (the readers' zone of a reader-time edition), else the newsletter's.

    The templates get ``lead`` (the first article, with its picture), ``sections`` (the
    others by section) and ``articles`` (all of them in the order shown)."""
    shown_zone = zone or newsletter.timezone
    local_issue = issued_at.astimezone(ZoneInfo(shown_zone))
    campaign = f"{newsletter.slug}-{'weekly-' if weekly else ''}{local_issue:%Y-%m-%d}"
    views = laid_out(_article_views(newsletter, articles, ZoneInfo(shown_zone), campaign))
    lead = views[0] if views else None
    sections = sections_of(views[1:], lead)
    intro_html = intro_to_html(intro_markdown) if intro_markdown else None
    edition = EditionView(
        date_label=_date_label(local_issue),
        zone=shown_zone,
        zone_label=zone_label(shown_zone, issued_at),
        intro_html=intro_html,
        intro_text=intro_to_text(intro_markdown) if intro_markdown else None,
        weekly=weekly,
        preheader=_preheader(lead, sections),
        postal_address=postal_line(newsletter.postal_address),
        footer_paragraphs=footer_paragraphs(newsletter.footer_text),
    )
    context: dict[str, Any] = {
        "newsletter": newsletter,
        "articles": views,
        "lead": lead,
        "sections": sections,
        "edition": edition,
    }
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
