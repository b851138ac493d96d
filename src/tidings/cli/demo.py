"""``tidings demo``: load the sample publication and show what it holds."""

import typer
from rich.table import Table

from tidings.cli.context import cli_context, friendly
from tidings.demo import load_sample
from tidings.newsletters import list_newsletters


@friendly
def demo(ctx: typer.Context) -> None:
    """Load the sample publication (newsletter, articles, subscribers) and show it.

    Example: TIDINGS_DATA_DIR=var tidings demo
    """
    context = cli_context(ctx)
    console = context.out
    database = context.database(require_current_schema=False)
    loaded = load_sample(database, context.settings)
    c = loaded.feed.counts
    console.print(
        f"sample feed: {c.new} new, {c.updated} updated, {c.unchanged} unchanged article(s)"
    )
    s = loaded.subscribers
    console.print(
        f"sample subscribers: {s.created} new, {s.unchanged + s.updated} already there, "
        f"{s.subscribed} subscribed"
    )
    table = Table("slug", "name", "schedule", "articles", "active subscribers")
    for summary in list_newsletters(database):
        table.add_row(
            summary.slug,
            summary.name,
            f"{summary.schedule} {summary.timezone}",
            str(summary.articles),
            str(summary.active_subscribers),
        )
    console.print(table)
    latest = Table("published (UTC)", "section", "headline", "byline", title="Newest articles")
    for article in loaded.latest:
        latest.add_row(
            f"{article.published_at:%Y-%m-%d %H:%M}",
            article.section or "",
            article.title,
            article.byline or "",
        )
    console.print(latest)
    console.print(f"database: {context.settings.resolved_database_url}")
