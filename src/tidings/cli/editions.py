"""``tidings edition``: list editions, show one's progress, and send, pause, resume or cancel
one (the moves ``compose.lifecycle.MOVES`` allows, refused with the console's sentence)."""

from typing import TYPE_CHECKING

import typer
from rich.box import SIMPLE
from rich.table import Table
from rich.text import Text

from tidings.cli.context import cli_context, friendly
from tidings.db.models import DeliveryState, EditionStatus

if TYPE_CHECKING:
    from tidings.reports.progress import EditionProgress

app = typer.Typer(
    help="List editions, show their progress, send, pause, resume, cancel.", no_args_is_help=True
)
STATES = list(DeliveryState)
#: The list shows the start of a note; 'tidings edition status' shows all of it.
NOTE_CHARS = 60


def _status(progress: "EditionProgress") -> str:
    """The status with its reason: "skipped (too_few_articles)", "failed (too_large)"."""
    reason = progress.skip_reason
    return f"{progress.status.value} ({reason})" if reason else progress.status.value


def _short(note: str | None) -> str:
    if not note:
        return ""
    return note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 1] + "\u2026"


def _eta(progress: "EditionProgress") -> str:
    seconds = progress.eta_seconds
    if seconds is None:
        return "-" if progress.remaining == 0 else "unknown"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _when(progress: "EditionProgress") -> str:
    """The time that matters for the list: when a scheduled one goes out, its slot, or when
    it was made (UTC)."""
    when = progress.scheduled_for if progress.status == EditionStatus.scheduled else None
    return f"{when or progress.slot or progress.created_at:%Y-%m-%d %H:%M}"


def _rate(progress: "EditionProgress") -> str:
    """Messages per second over the time spent sending, as the console shows it."""
    return f"{progress.per_second:.2f}/s" if progress.started else "-"


@app.command("list")
@friendly
def list_command(
    ctx: typer.Context,
    slug: str | None = typer.Argument(None, help="Only this newsletter's editions."),
    limit: int = typer.Option(20, "--limit", help="How many, newest first."),
) -> None:
    """List the newest editions: status, when (a scheduled one's time, else its slot or when
    it was made, in UTC), messages sent of all, the sending rate; then, under the table, why
    one failed, was skipped, or left articles out (the start of its note).

    Example: tidings edition list daily
    """
    from tidings.reports.progress import list_editions

    context = cli_context(ctx)
    rows = list_editions(context.database(), slug, limit)
    if not rows:
        context.out.print("no editions yet")
        return
    table = Table(box=SIMPLE, pad_edge=False)
    for name in ("id", "newsletter", "kind", "status", "UTC", "sent", "rate"):
        table.add_column(
            name,
            no_wrap=name in ("id", "UTC", "sent", "rate"),
            min_width=len(name) if name in ("newsletter", "status") else None,
        )
    for p in rows:
        table.add_row(
            str(p.edition_id),
            Text(p.slug),
            p.kind,
            Text(_status(p)),
            _when(p),
            f"{p.counts.get(DeliveryState.sent, 0)}/{p.total}",
            _rate(p),
        )
    context.out.print(table)
    for p in rows:  # under the table, where a note has the whole width
        if p.note:
            # A note quotes article titles: never rich markup.
            context.out.print(f"{p.edition_id}: {_short(p.note)}", markup=False)


@app.command("status")
@friendly
def status(ctx: typer.Context, edition_id: int = typer.Argument(help="Edition id.")) -> None:
    """Show one edition's counts per state, its sending rate and ETA, and its note (why it
    failed, what was left out to fit).

    Example: tidings edition status 42
    """
    from tidings.reports.progress import edition_progress

    context = cli_context(ctx)
    p = edition_progress(context.database(), edition_id)
    out = context.out
    out.print(f"edition {p.edition_id} of {p.slug} ({p.kind}): {_status(p)}", markup=False)
    if p.status == EditionStatus.scheduled and p.scheduled_time:
        out.print(f"goes out: {p.scheduled_time}", markup=False)
    if p.note:
        out.print(f"note: {p.note}", markup=False)
    if p.subject:
        out.print(f"subject: {p.subject}", markup=False)
    if p.started:
        out.print(
            ", ".join(f"{s.value} {p.counts.get(s, 0)}" for s in STATES) + f"; total {p.total}"
        )
        out.print(f"rate: {_rate(p)}; ETA: {_eta(p)}")


def _change(ctx: typer.Context, edition_id: int, name: str, done: str) -> None:
    from tidings.compose.lifecycle import EDITION_CHANGES

    context = cli_context(ctx)
    EDITION_CHANGES[name](context.database(), context.settings, edition_id)
    context.out.print(f"edition {edition_id} {done}")


@app.command("send")
@friendly
def send(ctx: typer.Context, edition_id: int = typer.Argument(help="Edition id.")) -> None:
    """Send a scheduled edition now instead of at its time.

    Example: tidings edition send 42
    """
    _change(ctx, edition_id, "send", "is sending")


@app.command("pause")
@friendly
def pause(ctx: typer.Context, edition_id: int = typer.Argument(help="Edition id.")) -> None:
    """Pause a sending edition: no new message leaves until it is resumed.

    Example: tidings edition pause 42
    """
    _change(ctx, edition_id, "pause", "paused")


@app.command("resume")
@friendly
def resume(ctx: typer.Context, edition_id: int = typer.Argument(help="Edition id.")) -> None:
    """Resume a paused edition.

    Example: tidings edition resume 42
    """
    _change(ctx, edition_id, "resume", "is sending again")


@app.command("cancel")
@friendly
def cancel(ctx: typer.Context, edition_id: int = typer.Argument(help="Edition id.")) -> None:
    """Cancel a scheduled, sending or paused edition: what is not sent yet never will be.

    Example: tidings edition cancel 42
    """
    _change(ctx, edition_id, "cancel", "cancelled")
