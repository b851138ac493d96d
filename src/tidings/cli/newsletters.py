"""``tidings newsletter``: create, change and list newsletters."""

import typer
from rich.table import Table

from tidings.catalog.defaults import DEFAULT_SCHEDULE
from tidings.catalog.readerfacing import LINE_SEPARATOR
from tidings.cli.context import cli_context, friendly
from tidings.errors import InvalidInput

app = typer.Typer(help="Create, change and list newsletters.", no_args_is_help=True)

READER_TIME_HELP = (
    "Send at each reader's own time of day: the schedule's time in the subscriber's zone "
    "(the newsletter's zone for readers with none)."
)
POSTAL_HELP = (
    "The postal address in every digest's footer (CAN-SPAM asks for one); a few lines, "
    "separated by newlines or ' | '."
)
FOOTER_HELP = "The publisher's own words for the digest's footer."
WELCOME_HELP = "Mail a welcome when a subscription becomes active."
IMAGES_HELP = "Show the images the feeds give with their articles."
UTM_HELP = (
    "Tag article links with utm_source=TEXT, utm_medium=email, utm_campaign=<edition> "
    "(letters, digits, - _ .)."
)
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
    reader_time: bool = typer.Option(
        False, "--reader-time/--no-reader-time", help=READER_TIME_HELP
    ),
    postal_address: str | None = typer.Option(None, "--postal-address", help=POSTAL_HELP),
    footer_text: str | None = typer.Option(None, "--footer", help=FOOTER_HELP),
    welcome: bool = typer.Option(
        True, "--welcome/--no-welcome", help=WELCOME_HELP + " On unless --no-welcome."
    ),
    images: bool = typer.Option(
        True, "--images/--no-images", help=IMAGES_HELP + " On unless --no-images."
    ),
    utm_source: str | None = typer.Option(None, "--utm-source", help=UTM_HELP),
) -> None:
    """Create a newsletter with its feeds.

    Example: tidings newsletter create daily --name "The Daily Messenger"
    --from "The Messenger <news@messenger.ge>" --schedule "0 7 * * *"
    --timezone Asia/Tbilisi --feed https://messenger.ge/feed.xml
    --postal-address "The Messenger | 14 Rustaveli Ave | Tbilisi 0108, Georgia"
    """
    from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
    from tidings.mail.templates import template_sets

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
        reader_time=reader_time,
        postal_address=postal_address,
        footer_text=footer_text,
        welcome_enabled=welcome,
        show_images=images,
        utm_source=utm_source,
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
    reader_time: bool | None = typer.Option(
        None, "--reader-time/--no-reader-time", help=READER_TIME_HELP
    ),
    postal_address: str | None = typer.Option(
        None, "--postal-address", help=POSTAL_HELP + " An empty one removes it."
    ),
    footer_text: str | None = typer.Option(
        None, "--footer", help=FOOTER_HELP + " An empty one removes it."
    ),
    welcome: bool | None = typer.Option(None, "--welcome/--no-welcome", help=WELCOME_HELP),
    images: bool | None = typer.Option(None, "--images/--no-images", help=IMAGES_HELP),
    utm_source: str | None = typer.Option(None, "--utm-source", help=UTM_HELP),
    no_utm: bool = typer.Option(False, "--no-utm", help="Article links carry no UTM tags."),
) -> None:
    """Change some settings of a newsletter; those not given stay as they are. Its slug
    stays: it is in every link already sent. --allowed-origin replaces the whole list.

    Example: tidings newsletter edit daily --schedule "30 6 * * 1-5"
    --allowed-origin https://messenger.ge --allowed-origin https://www.messenger.ge
    --reader-time --utm-source newsletter
    """
    from tidings.catalog.newsletters import change_newsletter, sender_of
    from tidings.mail.templates import template_sets
    from tidings.text import shorten

    given = {
        "name": name,
        "sender": sender,
        "reply_to": reply_to,
        "schedule": schedule,
        "timezone": timezone,
        "min_articles": min_articles,
        "max_articles": max_articles,
        "template_set": template_set,
        "reader_time": reader_time,
        "postal_address": postal_address,
        "footer_text": footer_text,
        "welcome_enabled": welcome,
        "show_images": images,
        "utm_source": utm_source,
    }
    changes: dict[str, object] = {key: value for key, value in given.items() if value is not None}
    if clear_origins and allowed_origins:
        raise InvalidInput("Give --allowed-origin or --no-allowed-origins, not both.")
    if allowed_origins or clear_origins:
        changes["allowed_origins"] = tuple(allowed_origins)
    if no_utm and utm_source is not None:
        raise InvalidInput("Give --utm-source or --no-utm, not both.")
    if no_utm:
        changes["utm_source"] = None
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
        "sends at": "each reader's local time" if changed.reader_time else "the schedule's zone",
        "postal address": LINE_SEPARATOR.join((changed.postal_address or "none").splitlines()),
        "footer": shorten(" ".join((changed.footer_text or "none").split()), 60),
        "welcome mail": "on" if changed.welcome_enabled else "off",
        "images": "shown" if changed.show_images else "not shown",
        "UTM source": changed.utm_source or "none (no UTM tags)",
    }
    for label, value in shown.items():
        context.out.print(f"  {label}: {value}", markup=False)


@app.command("list")
@friendly
def list_command(ctx: typer.Context) -> None:
    """List the newsletters with their sources, articles and subscribers.

    Example: tidings newsletter list
    """
    from tidings.catalog.newsletters import list_newsletters

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
