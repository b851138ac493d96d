"""``tidings feeds``: poll feed sources."""

from typing import TYPE_CHECKING

import typer

from tidings.cli.context import cli_context, friendly
from tidings.cli.progress import progress_reporter

if TYPE_CHECKING:
    from tidings.ingest.service import PollOutcome

app = typer.Typer(help="Poll the feeds of newsletters.", no_args_is_help=True)


def _describe(outcome: "PollOutcome") -> str:
    if outcome.error:
        return f"[red]failed[/] {outcome.url}: {outcome.error}"
    if outcome.not_modified:
        return f"unchanged {outcome.url} (304 Not Modified)"
    c = outcome.counts
    rejected = f", {len(outcome.rejected)} items rejected" if outcome.rejected else ""
    return f"ok {outcome.url}: {c.new} new, {c.updated} updated, {c.unchanged} unchanged{rejected}"


@app.command("poll")
@friendly
def poll(
    ctx: typer.Context,
    slug: str | None = typer.Argument(None, help="Only this newsletter's feeds."),
) -> None:
    """Fetch every feed (or one newsletter's) and store new and edited articles.

    A failing feed is reported and recorded; the others are still polled.
    Example: tidings feeds poll daily
    """
    from tidings.ingest.service import PollOutcome, count_feed_sources, poll_sources

    context = cli_context(ctx)
    console = context.out
    database = context.database()
    total = count_feed_sources(database, slug)
    done = 0
    with progress_reporter(console) as progress:

        def report(outcome: PollOutcome) -> None:
            nonlocal done
            done += 1
            console.print(_describe(outcome), markup=True)
            progress("polling", done, total)

        outcomes = poll_sources(database, context.settings, slug, report)
    failed = sum(1 for o in outcomes if o.error)
    new = sum(o.counts.new for o in outcomes)
    console.print(f"polled {len(outcomes)} feed(s): {new} new article(s), {failed} failed")
    if outcomes and failed == len(outcomes):
        raise typer.Exit(code=1)
