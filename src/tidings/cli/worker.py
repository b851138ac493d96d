"""``tidings worker``: send queued deliveries, in this process or in several under one
supervisor (``--processes``)."""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from tidings.cli.context import CliContext, cli_context, fail, friendly
from tidings.cli.logs import configure_logging

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from tidings.deliver.worker import WorkerStats

log = logging.getLogger(__name__)

METRICS_PORT = typer.Option(
    None, "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this port."
)
METRICS_HOST = typer.Option(
    "127.0.0.1", "--metrics-host", help="Address the metrics port listens on."
)


def start_metrics(
    port: int | None, host: str, registry: "CollectorRegistry | None" = None
) -> Callable[[], None]:
    """Serve this process's metrics (and ``registry``'s) when a port is given; returns
    the function that stops serving them."""
    if port is None:
        return lambda: None
    from tidings.metrics import registry_with, serve_metrics

    try:
        return serve_metrics(port, host, registry if registry is not None else registry_with())
    except OSError as exc:
        raise fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


#: How often a supervised worker looks whether its supervisor is still there.
PARENT_CHECK_SECONDS = 1.0


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """Set ``stop`` once this process's parent (its supervisor) is gone: a supervisor that
    was killed outright must not leave its workers running unsupervised."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            log.warning("the supervisor (pid %d) is gone; stopping", parent)
            stop.set()


async def work_here(context: CliContext, *, drain: bool, supervised: bool = False) -> "WorkerStats":
    """Run a worker in this process until SIGTERM or SIGINT (which finish in-flight messages
    first) or, with ``drain``, until nothing is due: ``tidings worker`` and ``digest send``
    when no worker is running. A ``supervised`` worker also stops when its supervisor
    goes away."""
    from tidings.deliver.runner import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_stop_when_orphaned(stop)) if supervised else None
    try:
        return await run_worker(context.database(), context.settings, drain=drain, stop=stop)
    finally:
        if watch is not None:
            watch.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def stats_line(stats: "WorkerStats") -> str:
    """What a worker did, in one line."""
    return (
        f"sent {stats.sent}, deferred {stats.deferred}, failed {stats.failed}, "
        f"uncertain {stats.uncertain}, released {stats.released}"
    )


PROCESSES = typer.Option(
    None,
    "--processes",
    min=1,
    max=256,
    help="Worker processes to run under one supervisor [default: the number of cores; "
    "1 on SQLite].",
)
#: Set by the supervisor on its children: print the figures as JSON for it to add up.
SUPERVISED = typer.Option(False, "--supervised", hidden=True)


def child_command(
    index: int, *, drain: bool, metrics_port: int | None, metrics_host: str
) -> list[str]:
    """Child ``index``'s command line: this worker command in one process, its metrics
    (when asked) on ``metrics_port + index``."""
    argv = [sys.executable, "-m", "tidings", "worker", "--processes", "1", "--supervised"]
    if drain:
        argv.append("--drain")
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port + index), "--metrics-host", metrics_host]
    return argv


def supervise_workers(
    context: CliContext, count: int, *, drain: bool, metrics_port: int | None, metrics_host: str
) -> "WorkerStats":
    """Run ``count`` worker processes under a supervisor until SIGTERM/SIGINT (or, with
    ``drain``, until all are done); their figures added up."""
    from tidings.deliver.supervisor import Supervisor

    if metrics_port is not None and metrics_port + count - 1 > 65535:
        raise fail(f"--metrics-port {metrics_port} leaves no room for {count} processes")
    supervisor = Supervisor(
        lambda index: child_command(
            index, drain=drain, metrics_port=metrics_port, metrics_host=metrics_host
        ),
        count,
        drain=drain,
    )
    result = supervisor.run()
    if result.gave_up is not None:
        context.out.print(stats_line(result.stats))
        raise fail(result.gave_up)
    if result.unclean:
        context.out.print(stats_line(result.stats))
        raise fail(f"{result.unclean} worker process(es) did not stop cleanly (see the log)")
    return result.stats


@friendly
def worker(
    ctx: typer.Context,
    drain: bool = typer.Option(False, "--drain", help="Deliver everything due, then exit."),
    processes: int | None = PROCESSES,
    metrics_port: int | None = METRICS_PORT,
    metrics_host: str = METRICS_HOST,
    supervised: bool = SUPERVISED,
) -> None:
    """Send queued deliveries until SIGTERM (which finishes in-flight messages first).

    Any number of workers can share one PostgreSQL database; --processes N runs N of them
    under one supervisor, which starts again any that dies and passes SIGTERM on. Each
    serves its metrics on --metrics-port plus its number (0 to N-1). With TIDINGS_SMTP_URL
    empty the messages go to the built-in mail catcher.
    Example: tidings worker --drain
    Example: tidings worker --processes 4 --metrics-port 9101
    """
    from tidings.deliver.supervisor import process_count, stats_json
    from tidings.mail.transport import check_links

    context = cli_context(ctx)
    configure_logging(context.settings.log_format)
    count = process_count(processes, context.database())
    if count > 1:
        check_links(context.settings)  # once here, not once per child and restart
        stats = supervise_workers(
            context, count, drain=drain, metrics_port=metrics_port, metrics_host=metrics_host
        )
        context.out.print(stats_line(stats))
        return
    stop_metrics = start_metrics(metrics_port, metrics_host)
    try:
        stats = asyncio.run(work_here(context, drain=drain, supervised=supervised))
    finally:
        stop_metrics()
    if supervised:
        print(stats_json(stats), flush=True)  # plain: for the supervisor to read
    else:
        context.out.print(stats_line(stats))
