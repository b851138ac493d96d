"""``tidings doctor``: what a sender must have right, checked line by line."""

import typer
from rich.markup import escape

from tidings.cli.context import cli_context, friendly
from tidings.doctor.findings import Status, failed

_STYLE = {Status.ok: "green", Status.warn: "yellow", Status.fail: "bold red"}


@friendly
def doctor(ctx: typer.Context) -> None:
    """Check the sending set-up: SMTP relay, STARTTLS and its certificate, BASE_URL, and for
    each sender domain SPF, the DKIM record, DMARC, and the way back for bounces.

    One line per check (ok, warn or fail), with how to fix it; exit status 1 when a check
    fails. DNS goes to TIDINGS_DNS_NAMESERVERS when set. Changes nothing.
    Example: tidings doctor
    """
    from tidings.doctor.service import run_checks

    context = cli_context(ctx)
    findings = run_checks(context.database(), context.settings)
    out = context.out
    for found in findings:
        style = _STYLE[found.status]
        label = f"[{style}]{found.status.value:<4}[/{style}]"
        out.print(
            f"{label} {escape(found.check)}: {escape(found.said)}",
            highlight=False,
            soft_wrap=True,
        )
        if found.fix:
            out.print(f"     fix: {escape(found.fix)}", highlight=False, soft_wrap=True)
    counts = {status: sum(f.status == status for f in findings) for status in Status}
    out.print(f"{counts[Status.ok]} ok, {counts[Status.warn]} warn, {counts[Status.fail]} fail")
    if failed(findings):
        raise typer.Exit(1)
