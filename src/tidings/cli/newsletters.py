"""``tidings newsletter``: create and list newsletters."""

import typer
from rich.table import Table

from tidings.catalog.newsletters import (
    DEFAULT_SCHEDULE,
    NewsletterSpec,
    create_newsletter,
    list_newsletters,
)
from tidings.cli.context import cli_context, friendly

app = typer.Typer(help="Create and list newsletters.", no_args_is_help=True)


@app.command("create")
@friendly
def create(
    ctx: typer.Context,
    slug: str = typer.Argument(help="Short name used in URLs and commands, e.g. 'daily'."),
    name: str = typer.Option(..., "--name", help="The newsletter's title."),
    sender: str = typer.Option(..., "--from", help='Sender, "Name <address>".'),
    reply_to: str | None = typer.Option(None, "--reply-to", help="Reply-To address."),
    schedule: str = typer.Option(DEFAULT_SCHEDULE, "--schedule", help="Crontab (5 fields)."),
    weekly_schedule: str | None = typer.Option(
        None, "--weekly-schedule", help="Crontab of an optional weekly digest."
    ),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA zone for the schedule."),
    feeds: list[str] = typer.Option([], "--feed", help="Feed URL (repeatable)."),
    min_articles: int = typer.Option(1, "--min-articles", help="Skip an edition below this."),
    max_articles: int = typer.Option(20, "--max-articles", help="At most this many per edition."),
) -> None:
    """Create a newsletter with its feeds.

    Example: tidings newsletter create daily --name "The Daily Messenger"
    --from "The Messenger <news@messenger.ge>" --schedule "0 7 * * *"
    --timezone Asia/Tbilisi --feed https://messenger.ge/feed.xml
    """
    spec = NewsletterSpec(
        slug=slug,
        name=name,
        sender=sender,
        reply_to=reply_to,
        schedule=schedule,
        weekly_schedule=weekly_schedule,
        timezone=timezone,
        feeds=feeds,
        min_articles=min_articles,
        max_articles=max_articles,
    )
    context = cli_context(ctx)
    newsletter = create_newsletter(
        context.database(), spec, allow_private=context.settings.feed_allow_private
    )
    context.out.print(
        f"created newsletter {newsletter.slug!r} with {len(newsletter.sources)} feed(s), "
        f"schedule '{newsletter.schedule_cron}' {newsletter.timezone}"
    )


@app.command("list")
@friendly
def list_command(ctx: typer.Context) -> None:
    """List the newsletters with their sources, articles and subscribers.

    Example: tidings newsletter list
    """
    context = cli_context(ctx)
    console = context.out
    summaries = list_newsletters(context.database())
    if not summaries:
        console.print("no newsletters yet: create one with 'tidings newsletter create'")
        return
    table = Table("slug", "name", "from", "schedule", "sources", "articles", "active", "pending")
    for s in summaries:
        table.add_row(
            s.slug,
            s.name,
            s.sender,
            f"{s.schedule} {s.timezone}",
            str(s.sources),
            str(s.articles),
            str(s.active_subscribers),
            str(s.pending_subscribers),
        )
    console.print(table)
