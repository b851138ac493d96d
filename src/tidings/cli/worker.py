"""``tidings worker``: send queued deliveries."""

import asyncio
import logging
import signal

import typer

from tidings.cli.context import CliContext, cli_context, friendly
from tidings.deliver.runner import run_worker
from tidings.deliver.worker import WorkerStats


async def work_here(context: CliContext, *, drain: bool) -> WorkerStats:
    """Run a worker in this process until SIGTERM or SIGINT (which finish in-flight messages
    first) or, with ``drain``, until nothing is due: ``tidings worker`` and ``digest send``
    when no worker is running."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run_worker(context.database(), context.settings, drain=drain, stop=stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def stats_line(stats: WorkerStats) -> str:
    """What a worker did, in one line."""
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
    context = cli_context(ctx)
    stats = asyncio.run(work_here(context, drain=drain))
    context.out.print(stats_line(stats))
