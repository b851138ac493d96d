"""``tidings digest``: one-off editions by editors, and previews."""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tidings.cli.context import CliContext, cli_context, fail, friendly
from tidings.cli.worker import stats_line, work_here
from tidings.db.engine import Database
from tidings.db.models import DeliveryState
from tidings.errors import InvalidInput

if TYPE_CHECKING:
    from tidings.compose.service import OneOff
    from tidings.deliver.worker import WorkerStats

app = typer.Typer(help="Send and preview one-off editions.", no_args_is_help=True)


def _one_off(article: list[int], intro_file: Path | None, subject: str | None) -> "OneOff":
    from tidings.compose.service import OneOff

    intro = None
    if intro_file is not None:
        try:
            intro = intro_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot read {intro_file}: {exc.strerror}") from None
    return OneOff(article_ids=article, intro_markdown=intro, subject=subject, created_by="cli")


#: How often the waiting command asks whether a worker is still alive.
WORKER_CHECK_SECONDS = 5.0
NO_WORKER = "No worker is running: sending this edition from here."
WORKER_GONE = "The worker stopped: sending the rest of this edition from here."


@contextmanager
def _edition_bar(console: Console, db: Database, edition_id: int) -> Iterator[Callable[[], bool]]:
    """A progress bar for the edition; yields ``refresh()``, which updates it and says
    whether the edition has open deliveries left. The state counts are printed at the end."""
    from tidings.reports.progress import edition_progress

    with Progress(
        TextColumn("edition {task.fields[edition]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        status = edition_progress(db, edition_id)
        task = bar.add_task("send", total=status.total, edition=edition_id, rate="")

        def refresh() -> bool:
            nonlocal status
            status = edition_progress(db, edition_id)
            bar.update(task, completed=status.done, rate=f"{status.per_second * 60:.0f}/min")
            return status.remaining > 0

        yield refresh
    console.print(_counts_line(status.counts))


def _wait(console: Console, db: Database, edition_id: int) -> bool:
    """Show progress while workers send the edition, until it has no open deliveries; False
    if meanwhile every worker went away with deliveries still due (nothing would send them)."""
    from tidings.deliver.heartbeats import roll_call

    with _edition_bar(console, db, edition_id) as refresh:
        checked = time.monotonic()
        while refresh():
            if time.monotonic() - checked >= WORKER_CHECK_SECONDS:
                checked = time.monotonic()
                if roll_call(db).unattended:
                    return False
            time.sleep(1.0)
    return True


async def _send_here(context: CliContext, db: Database, edition_id: int) -> "WorkerStats":
    """Deliver what is due from this process, as ``tidings worker --drain`` does, showing
    the edition's progress meanwhile."""
    with _edition_bar(context.out, db, edition_id) as refresh:
        worker = asyncio.create_task(work_here(context, drain=True))
        while not worker.done():
            await asyncio.wait({worker}, timeout=1.0)
            await asyncio.to_thread(refresh)
        return await worker


def _see_it_sent(context: CliContext, db: Database, edition_id: int) -> None:
    """Wait for the workers while one is alive; with none (or once none is left), send the
    edition from here."""
    from tidings.deliver.heartbeats import alive

    if alive(db):
        if _wait(context.out, db, edition_id):
            return
        context.out.print(WORKER_GONE)
    else:
        context.out.print(NO_WORKER)
    stats = asyncio.run(_send_here(context, db, edition_id))
    context.out.print(stats_line(stats))


@contextmanager
def _article_hint() -> Iterator[None]:
    """The domain says to choose an article; the CLI adds how (the web never shows flags)."""
    from tidings.compose.oneoff import NO_NEW_ARTICLES

    try:
        yield
    except InvalidInput as exc:
        if str(exc) == NO_NEW_ARTICLES:
            raise fail(f"{NO_NEW_ARTICLES} Give one with --article ID.") from None
        raise


def _counts_line(counts: dict[DeliveryState, int]) -> str:
    return ", ".join(f"{state.value} {count}" for state, count in sorted(counts.items()))


@app.command("send")
@friendly
def send(
    ctx: typer.Context,
    slug: str = typer.Argument(help="Newsletter slug."),
    article: list[int] = typer.Option([], "--article", help="Article id, repeatable, in order."),
    intro_file: Path | None = typer.Option(None, "--intro-file", help="Intro in Markdown."),
    subject: str | None = typer.Option(None, "--subject", help="Subject line (plain text)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Queue it and return at once."),
) -> None:
    """Compose a one-off edition now and queue it to every active subscriber.

    Without --article it takes the newsletter's new articles, as a scheduled edition would.
    Workers ('tidings worker' or 'tidings run') do the sending; this waits and shows progress.
    With no worker running, it sends the edition itself (as 'tidings worker --drain').
    Example: tidings digest send daily --article 12 --article 9 --subject "Election special"
    """
    from tidings.compose.oneoff import send_one_off

    context = cli_context(ctx)
    database = context.database()
    with _article_hint():
        one_off = _one_off(article, intro_file, subject)
        result = send_one_off(database, context.settings, slug, one_off)
    context.out.print(
        f"edition {result.edition_id}: {result.articles} article(s), "
        f"{result.deliveries} delivery(ies) queued"
    )
    if not no_wait and result.deliveries:
        _see_it_sent(context, database, result.edition_id)


@app.command("preview")
@friendly
def preview_command(
    ctx: typer.Context,
    slug: str = typer.Argument(help="Newsletter slug."),
    subscriber: str | None = typer.Option(None, "--subscriber", help="Personalise for them."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the HTML here."),
    article: list[int] = typer.Option([], "--article", help="Article id, repeatable."),
    intro_file: Path | None = typer.Option(None, "--intro-file", help="Intro in Markdown."),
    subject: str | None = typer.Option(None, "--subject", help="Subject line."),
) -> None:
    """Render the edition 'digest send' would send now, without sending anything.

    Example: tidings digest preview daily --subscriber nino@example.ge --output preview.html
    """
    from tidings.compose.oneoff import preview

    context = cli_context(ctx)
    with _article_hint():
        shown = preview(
            context.database(),
            context.settings,
            slug,
            _one_off(article, intro_file, subject),
            subscriber,
        )
    out = context.out
    out.print(f"subject: {shown.subject}")
    out.print(f"articles ({len(shown.articles)}):")
    for title in shown.articles:
        out.print(f"  - {title}")
    out.print(
        f"HTML part: {shown.html_bytes / 1024:.1f} KB; whole message "
        f"{len(shown.message) / 1024:.1f} KB"
    )
    if output is not None:
        output.write_text(shown.html, encoding="utf-8")
        out.print(f"HTML written to {output}")
