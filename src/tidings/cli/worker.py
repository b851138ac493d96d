"""``tidings worker``: send queued deliveries."""

import asyncio
import logging
import signal
from collections.abc import Callable

import typer
from prometheus_client import CollectorRegistry

from tidings.cli.context import CliContext, cli_context, fail, friendly
from tidings.deliver.runner import run_worker
from tidings.deliver.worker import WorkerStats
from tidings.metrics import registry_with, serve_metrics

METRICS_PORT = typer.Option(
    None, "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this port."
)
METRICS_HOST = typer.Option(
    "127.0.0.1", "--metrics-host", help="Address the metrics port listens on."
)


def start_metrics(
    port: int | None, host: str, registry: CollectorRegistry | None = None
) -> Callable[[], None]:
    """Serve this process's metrics (and ``registry``'s) when a port is given; returns
    the function that stops serving them."""
    if port is None:
        return lambda: None
    try:
        return serve_metrics(port, host, registry if registry is not None else registry_with())
    except OSError as exc:
        raise fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


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
    metrics_port: int | None = METRICS_PORT,
    metrics_host: str = METRICS_HOST,
) -> None:
    """Send queued deliveries until SIGTERM (which finishes in-flight messages first).

    Any number of workers can share one PostgreSQL database. With TIDINGS_SMTP_URL empty
    the messages go to the built-in mail catcher.
    Example: tidings worker --drain
    Example: tidings worker --metrics-port 9101
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command lines
    context = cli_context(ctx)
    stop_metrics = start_metrics(metrics_port, metrics_host)
    try:
        stats = asyncio.run(work_here(context, drain=drain))
    finally:
        stop_metrics()
    context.out.print(stats_line(stats))
