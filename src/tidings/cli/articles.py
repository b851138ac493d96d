"""``tidings articles``: push articles without a feed (an editor, or a CMS)."""

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from tidings.cli.context import cli_context, fail, friendly

if TYPE_CHECKING:
    from tidings.ingest.service import PushReport

app = typer.Typer(help="Add articles by hand or from a JSON file.", no_args_is_help=True)


def _print_report(console: Console, report: "PushReport") -> None:
    c = report.counts
    console.print(f"{c.new} new, {c.updated} updated, {c.unchanged} unchanged")
    for reason in report.rejected:
        console.print(f"rejected {reason}")


@app.command("add")
@friendly
def add(
    ctx: typer.Context,
    newsletter: str = typer.Option(..., "--newsletter", help="Newsletter slug."),
    url: str = typer.Option(..., "--url", help="The article's URL (its identity)."),
    title: str = typer.Option(..., "--title", help="Headline."),
    summary: str | None = typer.Option(None, "--summary", help="Standfirst or summary."),
    author: str | None = typer.Option(None, "--author", help='Byline, e.g. "Messenger Staff".'),
    section: str | None = typer.Option(None, "--section", help="Section, e.g. Politics."),
    published: datetime | None = typer.Option(
        None,
        "--published",
        help="ISO 8601 time; without a zone it is taken as UTC.",
        formats=[
            "%Y-%m-%dT%H:%M:%S%z",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M%z",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d",
        ],
    ),
) -> None:
    """Add one article (adding the same URL again updates it).

    Example: tidings articles add --newsletter daily --url https://messenger.ge/a/1
    --title "Parliament passes budget" --section Politics
    """
    from tidings.ingest.service import push_articles

    item = {
        "url": url,
        "title": title,
        "summary": summary,
        "author": author,
        "section": section,
        "published": published,
    }
    context = cli_context(ctx)
    report = push_articles(context.database(), newsletter, [item])
    if report.rejected:
        raise fail(report.rejected[0].removeprefix("article 1: "))
    _print_report(context.out, report)


@app.command("import")
@friendly
def import_command(
    ctx: typer.Context,
    file: Path = typer.Argument(help='JSON: a list of articles, or {"articles": [...]}.'),
    newsletter: str = typer.Option(..., "--newsletter", help="Newsletter slug."),
) -> None:
    """Import articles from a JSON file (fields: url, title, summary, author, section,
    published, content_html, guid). Invalid articles are listed; the valid ones are stored.

    Example: tidings articles import articles.json --newsletter daily
    """
    from tidings.ingest.service import push_articles, read_article_file

    context = cli_context(ctx)
    items = read_article_file(file)
    report = push_articles(context.database(), newsletter, items)
    _print_report(context.out, report)
    if items and len(report.rejected) == len(items):
        raise typer.Exit(code=1)
