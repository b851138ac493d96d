"""Render an edition once: templates, Markdown intro, CSS inlining (premailer, no network)."""

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt
from markupsafe import Markup
from premailer import Premailer

from tidings.audience.addresses import clean_name
from tidings.compose.personal import placeholders
from tidings.compose.templates import EmailTemplates
from tidings.db.models import Article, Newsletter
from tidings.errors import InvalidInput
from tidings.ingest.text import plain_text, sanitise_html

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


@dataclass(frozen=True)
class RenderedEdition:
    """An edition rendered once: personal parts are still placeholder tokens."""

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


def clean_subject(subject: str) -> str:
    """An editor's subject as a single line of plain text."""
    cleaned = clean_name(subject) or ""
    if not cleaned:
        raise InvalidInput("the subject is empty")
    return cleaned[:SUBJECT_LIMIT]


def inline_css(html: str) -> str:
    """Inline the <style> rules into the markup; media queries stay in a <style> block."""
    return str(
        Premailer(
            html,
            allow_network=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            remove_classes=False,
            keep_style_tags=False,
            strip_important=False,
        ).transform()
    )


def render_edition(
    templates: EmailTemplates,
    newsletter: Newsletter,
    articles: list[Article],
    *,
    issued_at: datetime,
    intro_markdown: str | None = None,
    subject: str | None = None,
    weekly: bool = False,
) -> RenderedEdition:
    """Render the triplet once for the edition and inline the CSS once."""
    zone = ZoneInfo(newsletter.timezone)
    views = [
        ArticleView(
            title=a.title,
            url=a.url,
            byline=a.byline,
            section=a.section,
            summary=a.summary,
            published_label=_time_label(a.published_at.astimezone(zone)),
        )
        for a in articles
    ]
    intro_html = intro_to_html(intro_markdown) if intro_markdown else None
    edition = EditionView(
        date_label=_date_label(issued_at.astimezone(zone)),
        intro_html=intro_html,
        intro_text=plain_text(str(intro_html)) if intro_html else None,
        weekly=weekly,
    )
    context = {
        "newsletter": newsletter,
        "articles": views,
        "edition": edition,
        "personal": placeholders(),
    }
    final_subject = (
        clean_subject(subject) if subject else clean_subject(templates.subject.render(context))
    )
    context["subject"] = final_subject
    html = inline_css(templates.html.render(context))
    size = len(html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        raise EditionTooLarge(
            f"the HTML part is {size // 1024} KB, over the {MAX_HTML_BYTES // 1024} KB limit "
            "(Gmail would clip it and hide the unsubscribe link): use fewer articles"
        )
    return RenderedEdition(subject=final_subject, html=html, text=templates.text.render(context))
