"""``tidings worker``: send queued deliveries."""

import asyncio
import logging
import signal

import typer

from tidings.cli.context import cli_context, friendly
from tidings.deliver.runner import run_worker


async def _run(ctx: typer.Context, drain: bool) -> str:
    context = cli_context(ctx)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats = await run_worker(context.database(), context.settings, drain=drain, stop=stop)
    return (
        f"sent {stats.sent}, deferred {stats.deferred}, failed {stats.failed}, "
        f"uncertain {stats.uncertain}, released {stats.released}"
    )


@friendly
def worker(
    ctx: typer.Context,
    drain: bool = typer.Option(False, "--drain", help="Deliver everything due, then exit."),
) -> None:
    """Send queued deliveries until SIGTERM (which finishes in-flight messages first).

    Any number of workers can share one PostgreSQL database. With TIDINGS_SMTP_URL empty
    the messages go to the built-in mail catcher.
    Example: tidings worker --drain
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command lines
    summary = asyncio.run(_run(ctx, drain))
    cli_context(ctx).out.print(summary)
