"""``tidings subscribers``: add, import and export subscribers."""

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from tidings.cli.context import cli_context, friendly
from tidings.cli.progress import progress_reporter
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import SubscriptionStatus
from tidings.db.types import utcnow

if TYPE_CHECKING:
    from tidings.audience.imports.importer import ImportReport

app = typer.Typer(help="Add, import and export subscribers.", no_args_is_help=True)
INVALID_LINES_SHOWN = 20


@app.command("add")
@friendly
def add(
    ctx: typer.Context,
    email: str = typer.Argument(help="The address."),
    newsletter: str = typer.Option(..., "--newsletter", help="Newsletter slug."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Active at once (you hold their consent); else pending."
    ),
    send_confirmation: bool = typer.Option(
        False,
        "--send-confirmation",
        help="Mail a pending subscriber the confirmation link now (at most once in ten minutes).",
    ),
) -> None:
    """Subscribe one address to a newsletter.

    Example: tidings subscribers add nino@example.ge --newsletter daily --name "Nino" --confirmed
    """
    from tidings.audience.confirmations import claim_one, mail_now
    from tidings.audience.service import add_subscriber

    context = cli_context(ctx)
    database = context.database()
    result = add_subscriber(database, newsletter, email, name, confirmed, source="cli")
    context.out.print(f"{result.email}: {result.note}")
    if send_confirmation and result.status == SubscriptionStatus.pending:
        due = claim_one(database, result.subscription_id, "cli")
        if due is None:
            context.out.print("a confirmation went to this address less than ten minutes ago")
            return
        asyncio.run(mail_now(database, context.settings, [due]))
        context.out.print(f"confirmation mailed to {result.email}")


def _print_import(console: Console, report: "ImportReport", invalid_report: Path | None) -> None:
    console.print(
        f"read {report.rows_read} row(s): {report.created} new subscriber(s), "
        f"{report.updated} updated, {report.unchanged} unchanged, "
        f"{report.duplicates_merged} duplicate row(s) merged, {len(report.invalid)} invalid, "
        f"{report.suppressed} suppressed (skipped)"
    )
    console.print(
        f"subscriptions: {report.subscribed} new, {report.activated} activated, "
        f"{report.kept_unsubscribed} left unsubscribed"
    )
    for error in report.invalid[:INVALID_LINES_SHOWN]:
        console.print(f"line {error.line}: {error.reason}")
    if len(report.invalid) > INVALID_LINES_SHOWN:
        console.print(f"... and {len(report.invalid) - INVALID_LINES_SHOWN} more invalid row(s)")
    if invalid_report is not None:
        from tidings.audience.imports.csvrows import write_row_errors

        with invalid_report.open("w", encoding="utf-8", newline="") as out:
            write_row_errors(report.invalid, out)
        console.print(f"invalid rows written to {invalid_report}")


@app.command("import")
@friendly
def import_command(
    ctx: typer.Context,
    file: Path = typer.Argument(help="CSV with a header row: email, name, locale, timezone, ..."),
    newsletter: str = typer.Option(..., "--newsletter", help="Newsletter slug."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Make the subscriptions active (you hold their consent)."
    ),
    invalid_report: Path | None = typer.Option(
        None, "--invalid-report", help="Write every invalid row (line, reason) to this CSV."
    ),
    send_confirmation: bool = typer.Option(
        False,
        "--send-confirmation",
        help="Mail the new pending subscribers their confirmation link (without --confirmed).",
    ),
) -> None:
    """Import subscribers from CSV. Columns other than email, name, locale and timezone are
    kept as attributes. Duplicates merge; invalid rows are listed by line and the rest still
    go in; running the same file again changes nothing; suppressed and unsubscribed
    addresses are never made active.

    Example: tidings subscribers import readers.csv --newsletter daily --confirmed
    """
    from tidings.audience.confirmations import waiting
    from tidings.audience.imports.importer import import_subscribers
    from tidings.mail.addresses import AttributeLimits

    context = cli_context(ctx)
    started = utcnow()
    with progress_reporter(context.out) as progress:
        report = import_subscribers(
            context.database(),
            newsletter,
            file,
            confirmed,
            context.settings.import_batch_size,
            progress,
            AttributeLimits.of(context.settings),
        )
    _print_import(context.out, report, invalid_report)
    if send_confirmation and not confirmed:
        _mail_confirmations(context.database(), context.settings, context.out, newsletter, started)
    elif not confirmed:
        left = waiting(context.database(), newsletter)
        if left:
            context.out.print(
                f"{left} pending subscriber(s) of {newsletter} have had no confirmation mail; "
                "they get nothing until it is sent (the console's subscriber list sends it)"
            )


def _mail_confirmations(
    database: Database, settings: Settings, out: Console, newsletter: str, since: datetime
) -> None:
    """Mail the confirmations of the import's new pending subscriptions, a batch at a time
    (a failed one is given back, so each is tried once here)."""
    from tidings.audience.confirmations import claim_waiting, mail_now, waiting
    from tidings.audience.signup import release_confirmation

    tried: set[int] = set()
    while True:
        claimed = claim_waiting(database, newsletter, "cli", since)
        dues = [d for d in claimed if d.subscription_id not in tried]
        for again in (d for d in claimed if d.subscription_id in tried):
            release_confirmation(database, again)  # failed once already: leave it waiting
        if not dues:
            break
        tried.update(d.subscription_id for d in dues)
        asyncio.run(mail_now(database, settings, dues))
    left = waiting(database, newsletter)
    out.print(
        f"{len(tried)} confirmation mail(s) tried; {left} pending subscriber(s) still waiting"
    )


@app.command("export")
@friendly
def export_command(
    ctx: typer.Context,
    newsletter: str = typer.Option(..., "--newsletter", help="Newsletter slug."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Export a newsletter's subscribers as CSV (the import reads it back).

    Example: tidings subscribers export --newsletter daily --output readers.csv
    """
    from tidings.audience.export import export_subscribers

    context = cli_context(ctx)
    database = context.database()
    if output is None:
        count = export_subscribers(database, newsletter, sys.stdout)
        context.err.print(f"exported {count} subscriber(s)")
        return
    with output.open("w", encoding="utf-8", newline="") as out:
        count = export_subscribers(database, newsletter, out)
    context.out.print(f"exported {count} subscriber(s) to {output}")
