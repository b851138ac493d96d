"""``tidings schedule``: a newsletter's coming sends."""

from typing import TYPE_CHECKING

import typer

from tidings.cli.context import cli_context, friendly
from tidings.db.models import Cadence
from tidings.db.types import utcnow
from tidings.schedule.horizon import DAYS_AT_MOST, DAYS_DEFAULT

if TYPE_CHECKING:
    from tidings.schedule.coming import ComingSends

app = typer.Typer(help="See when newsletters send.", no_args_is_help=True)


@app.command("show")
@friendly
def show(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="The newsletter."),
    days: int = typer.Option(
        DAYS_DEFAULT, "--days", help=f"How many days ahead (1 to {DAYS_AT_MOST})."
    ),
) -> None:
    """List the newsletter's coming sends, one line each: the time in UTC, the local time
    and zone(s) it serves, and how many readers it goes to (as things stand now).

    Example: tidings schedule show daily --days 3
    """
    from tidings.schedule.coming import coming_sends

    context = cli_context(ctx)
    coming = coming_sends(context.database(), slug, days, utcnow())
    for line in schedule_lines(coming):
        context.out.print(line, markup=False)


def schedule_lines(coming: "ComingSends") -> list[str]:
    """The lines ``schedule show`` prints: a heading, one line per send, and a closing note."""
    how = "at each reader's local time" if coming.reader_time else f"in {coming.timezone}"
    lines = [f"{coming.slug}: sends in the next {coming.days} day(s), {how}"]
    weekly = any(send.cadence == Cadence.weekly for send in coming.sends)
    for send in coming.sends:
        readers = f"{send.readers} reader{'' if send.readers == 1 else 's'}"
        cadence = f"  {send.cadence.value}" if weekly else ""
        lines.append(f"{send.at_text}  {send.local_text}  {readers}{cadence}")
    if not coming.sends:
        lines.append("No sends in this period.")
    if coming.more:
        lines.append(f"(only the first {len(coming.sends)} sends are listed)")
    return lines
