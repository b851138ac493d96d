"""``tidings edition``: list editions and show one's progress."""

import typer
from rich.table import Table
from rich.text import Text

from tidings.cli.context import cli_context, friendly
from tidings.db.models import DeliveryState
from tidings.reports.progress import EditionProgress, edition_progress, list_editions

app = typer.Typer(help="List editions and show their progress.", no_args_is_help=True)
STATES = list(DeliveryState)
#: The list shows the start of a note; 'tidings edition status' shows all of it.
NOTE_CHARS = 60


def _status(progress: EditionProgress) -> str:
    """The status with its reason: "skipped (too_few_articles)", "failed (too_large)"."""
    reason = progress.skip_reason
    return f"{progress.status.value} ({reason})" if reason else progress.status.value


def _short(note: str | None) -> str:
    if not note:
        return ""
    return note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 1] + "\u2026"


def _eta(progress: EditionProgress) -> str:
    seconds = progress.eta_seconds
    if seconds is None:
        return "-" if progress.remaining == 0 else "unknown"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


@app.command("list")
@friendly
def list_command(
    ctx: typer.Context,
    slug: str | None = typer.Argument(None, help="Only this newsletter's editions."),
    limit: int = typer.Option(20, "--limit", help="How many, newest first."),
) -> None:
    """List the newest editions with their delivery counts, and why one failed, was
    skipped, or left articles out (the start of its note).

    Example: tidings edition list daily
    """
    context = cli_context(ctx)
    rows = list_editions(context.database(), slug, limit)
    if not rows:
        context.out.print("no editions yet")
        return
    table = Table(
        "id",
        "newsletter",
        "kind",
        "status",
        "slot / created",
        *[s.value for s in STATES],
        "rate/min",
        "ETA",
        "note",
    )
    for p in rows:
        when = p.slot or p.created_at
        table.add_row(
            str(p.edition_id),
            p.slug,
            p.kind,
            _status(p),
            f"{when:%Y-%m-%d %H:%M} UTC",
            *[str(p.counts.get(s, 0)) for s in STATES],
            f"{p.per_second * 60:.0f}",
            _eta(p),
            Text(_short(p.note)),  # a note quotes article titles: never rich markup
        )
    context.out.print(table)


@app.command("status")
@friendly
def status(ctx: typer.Context, edition_id: int = typer.Argument(help="Edition id.")) -> None:
    """Show one edition's counts per state, its sending rate and ETA, and its note (why it
    failed, what was left out to fit).

    Example: tidings edition status 42
    """
    context = cli_context(ctx)
    p = edition_progress(context.database(), edition_id)
    out = context.out
    out.print(f"edition {p.edition_id} of {p.slug} ({p.kind}): {_status(p)}", markup=False)
    if p.note:
        out.print(f"note: {p.note}", markup=False)
    if p.subject:
        out.print(f"subject: {p.subject}", markup=False)
    out.print(", ".join(f"{s.value} {p.counts.get(s, 0)}" for s in STATES) + f"; total {p.total}")
    out.print(f"rate: {p.per_second * 60:.0f}/min; ETA: {_eta(p)}")
