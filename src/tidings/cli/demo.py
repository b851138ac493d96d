"""``tidings demo``: load the sample publication, send one edition into the built-in catcher,
and run the service."""

import asyncio
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tidings.cli.context import CliContext, cli_context, friendly
from tidings.cli.processes import run_all
from tidings.mail.links import archive_path

if TYPE_CHECKING:
    from tidings.sample.loader import SampleLoad


def _show(context: CliContext, loaded: "SampleLoad") -> None:
    from tidings.catalog.newsletters import list_newsletters

    out = context.out
    c = loaded.feed.counts
    out.print(f"sample feed: {c.new} new, {c.updated} updated, {c.unchanged} unchanged article(s)")
    s = loaded.subscribers
    out.print(
        f"sample subscribers: {s.created} new, {s.unchanged + s.updated} already there, "
        f"{s.subscribed} subscribed"
    )
    table = Table("slug", "name", "schedule", "articles", "active subscribers")
    for summary in list_newsletters(context.database()):
        table.add_row(
            summary.slug,
            summary.name,
            f"{summary.schedule} {summary.timezone}",
            str(summary.articles),
            str(summary.active_subscribers),
        )
    out.print(table)
    latest = Table("published (UTC)", "section", "headline", "byline", title="Newest articles")
    for article in loaded.latest:
        latest.add_row(
            f"{article.published_at:%Y-%m-%d %H:%M}",
            article.section or "",
            article.title,
            article.byline or "",
        )
    out.print(latest)
    out.print(f"database: {context.settings.resolved_database_url}")


@friendly
def demo(
    ctx: typer.Context,
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Run the service afterwards."),
) -> None:
    """Load the sample publication, send one edition into the built-in mail catcher, and run
    web, scheduler and worker at BASE_URL (Ctrl-C stops it).

    Example: tidings demo
    """
    from tidings.deliver.runner import run_worker
    from tidings.sample.loader import DEMO_ADMIN, demo_admin, demo_settings, load_sample

    context = cli_context(ctx)
    settings = context.settings = demo_settings(context.settings)
    database = context.database(require_current_schema=False)
    loaded = load_sample(database, settings)
    _show(context, loaded)
    if loaded.edition_id is not None:
        stats = asyncio.run(run_worker(database, settings, drain=True, stop=asyncio.Event()))
        context.out.print(f"edition {loaded.edition_id}: sent {stats.sent} message(s)")
        context.out.print(
            "the digest in a browser: "
            + settings.base_url
            + archive_path(loaded.newsletter.slug, loaded.edition_id)
        )
    if loaded.edition_problem is not None:
        context.out.print(f"no demo edition: {loaded.edition_problem}", markup=False)
    if settings.feed_allow_private:
        context.out.print("private feed addresses allowed: the demo polls its own sample feed")
    mailbox = f"{settings.base_url}/mailbox" if settings.smtp is None else "your SMTP server"
    context.out.print(f"caught mail: {mailbox}")
    context.out.print(f"sign-up page: {settings.base_url}/subscribe/{loaded.newsletter.slug}")
    password = demo_admin(database)
    if password is not None:
        context.out.print(
            f"console: {settings.base_url}/admin, sign in as {DEMO_ADMIN} with the one-time "
            f"password {password} (you then choose your own)"
        )
    else:
        context.out.print(f"console: {settings.base_url}/admin ('tidings users list' shows who)")
    if serve:
        host_port = settings.base_url.split("//", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        context.out.print(f"serving at {settings.base_url} (Ctrl-C to stop)")
        asyncio.run(run_all(context, host, int(port or 80)))
