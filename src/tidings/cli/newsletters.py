"""``tidings newsletter``: create, change and list newsletters."""

import typer
from rich.table import Table

from tidings.catalog.newsletters import (
    DEFAULT_SCHEDULE,
    NewsletterSpec,
    change_newsletter,
    create_newsletter,
    list_newsletters,
    sender_of,
)
from tidings.cli.context import cli_context, friendly
from tidings.errors import InvalidInput
from tidings.mail.templates import template_sets

app = typer.Typer(help="Create, change and list newsletters.", no_args_is_help=True)

ORIGIN_HELP = (
    "A web origin (https://host[:port]) whose embedded sign-up form signs readers up in one "
    "step (repeatable); forms on other sites get a confirm step."
)


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
    allowed_origins: list[str] = typer.Option([], "--allowed-origin", help=ORIGIN_HELP),
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
        allowed_origins=tuple(allowed_origins),
    )
    context = cli_context(ctx)
    newsletter = create_newsletter(
        context.database(),
        spec,
        allow_private=context.settings.feed_allow_private,
        template_sets=template_sets(context.settings.templates_dir),
    )
    context.out.print(
        f"created newsletter {newsletter.slug!r} with {len(newsletter.sources)} feed(s), "
        f"schedule '{newsletter.schedule_cron}' {newsletter.timezone}"
    )


@app.command("edit")
@friendly
def edit(
    ctx: typer.Context,
    slug: str = typer.Argument(help="The newsletter to change."),
    name: str | None = typer.Option(None, "--name", help="The newsletter's title."),
    sender: str | None = typer.Option(None, "--from", help='Sender, "Name <address>".'),
    reply_to: str | None = typer.Option(None, "--reply-to", help="Reply-To address."),
    schedule: str | None = typer.Option(None, "--schedule", help="Crontab (5 fields)."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone for the schedule."),
    min_articles: int | None = typer.Option(None, "--min-articles", help="Skip below this."),
    max_articles: int | None = typer.Option(None, "--max-articles", help="At most this many."),
    template_set: str | None = typer.Option(None, "--template-set", help="Mail template set."),
    allowed_origins: list[str] = typer.Option([], "--allowed-origin", help=ORIGIN_HELP),
    clear_origins: bool = typer.Option(
        False, "--no-allowed-origins", help="Remove every allowed origin."
    ),
) -> None:
    """Change some settings of a newsletter; those not given stay as they are. Its slug
    stays: it is in every link already sent. --allowed-origin replaces the whole list.

    Example: tidings newsletter edit daily --schedule "30 6 * * 1-5"
    --allowed-origin https://messenger.ge --allowed-origin https://www.messenger.ge
    """
    given = {
        "name": name,
        "sender": sender,
        "reply_to": reply_to,
        "schedule": schedule,
        "timezone": timezone,
        "min_articles": min_articles,
        "max_articles": max_articles,
        "template_set": template_set,
    }
    changes: dict[str, object] = {key: value for key, value in given.items() if value is not None}
    if clear_origins and allowed_origins:
        raise InvalidInput("Give --allowed-origin or --no-allowed-origins, not both.")
    if allowed_origins or clear_origins:
        changes["allowed_origins"] = tuple(allowed_origins)
    if not changes:
        raise InvalidInput("Give at least one setting to change (see --help).")
    context = cli_context(ctx)
    sets = template_sets(context.settings.templates_dir)
    changed = change_newsletter(context.database(), slug, changes, template_sets=sets)
    context.out.print(f"changed newsletter {changed.slug!r}:")
    shown = {
        "name": changed.name,
        "from": sender_of(changed),
        "schedule": f"{changed.schedule_cron} {changed.timezone}",
        "allowed origins": ", ".join(changed.allowed_origins or ()) or "none",
    }
    for label, value in shown.items():
        context.out.print(f"  {label}: {value}", markup=False)


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
