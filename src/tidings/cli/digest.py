"""``tidings digest``: one-off editions by editors, and previews."""

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tidings.cli.context import cli_context, fail, friendly
from tidings.compose.oneoff import preview, send_one_off
from tidings.compose.service import OneOff
from tidings.db.engine import Database
from tidings.db.models import DeliveryState
from tidings.reports.progress import edition_progress

app = typer.Typer(help="Send and preview one-off editions.", no_args_is_help=True)


def _one_off(article: list[int], intro_file: Path | None, subject: str | None) -> OneOff:
    intro = None
    if intro_file is not None:
        try:
            intro = intro_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot read {intro_file}: {exc.strerror}") from None
    return OneOff(article_ids=article, intro_markdown=intro, subject=subject, created_by="cli")


def _wait(console: Console, db: Database, edition_id: int) -> None:
    """Show progress until the edition has no open deliveries (a worker does the sending)."""
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
        while True:
            status = edition_progress(db, edition_id)
            bar.update(task, completed=status.done, rate=f"{status.per_second * 60:.0f}/min")
            if status.remaining == 0:
                break
            time.sleep(1.0)
    console.print(_counts_line(status.counts))


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
    Example: tidings digest send daily --article 12 --article 9 --subject "Election special"
    """
    context = cli_context(ctx)
    database = context.database()
    result = send_one_off(database, context.settings, slug, _one_off(article, intro_file, subject))
    context.out.print(
        f"edition {result.edition_id}: {result.articles} article(s), "
        f"{result.deliveries} delivery(ies) queued"
    )
    if not no_wait and result.deliveries:
        _wait(context.out, database, result.edition_id)


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
    context = cli_context(ctx)
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
