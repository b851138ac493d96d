"""Long-running commands: ``serve`` (web), ``scheduler``, ``inbound serve`` (the SMTP/LMTP
listener for mail that comes back), and ``run`` (all in one process)."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

import typer

from tidings.cli.context import CliContext, cli_context, friendly
from tidings.cli.logs import configure_logging
from tidings.cli.worker import METRICS_HOST, METRICS_PORT, start_metrics
from tidings.inbound.defaults import DEFAULT_PORT as INBOUND_PORT
from tidings.mail.links import TOKEN_PATH_PREFIXES

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)
#: How long a crashed part of ``tidings run`` waits before it is started again: long enough
#: not to spin on a database that is down, short enough not to miss a slot.
RESTART_SECONDS = 5.0


def _logging(context: CliContext) -> None:
    configure_logging(context.settings.log_format)


REDACTED = "[token]"


def redact_token(path: str) -> str:
    """``path`` with a reader's signed token (the segment after a token prefix) hidden.
    The access log shows the raw path, and ``/%75/TOKEN`` reaches the page of ``/u/TOKEN``:
    the prefix is looked for in the decoded path."""
    decoded = unquote(path)
    for prefix in TOKEN_PATH_PREFIXES:
        if decoded.startswith(prefix):
            rest = decoded[len(prefix) :]
            ends = [at for at in (rest.find("/"), rest.find("?")) if at >= 0]
            return prefix + REDACTED + rest[min(ends, default=len(rest)) :]
    return path


class RedactReaderTokens(logging.Filter):
    """Keeps readers' signed links out of the access log: they never expire (unsubscribe,
    preferences) and the log keeps them next to the client's address."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_token(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def _server(context: CliContext, host: str, port: int) -> "uvicorn.Server":
    # Imported here, not at the top: every command (a worker above all) would otherwise carry
    # the web face and all its pages in memory (bench/worker_memory.py).
    import uvicorn

    from tidings.web.app import create_app

    app = create_app(context.settings, context.database())
    # Off: X-Forwarded-For is believed only from TIDINGS_TRUSTED_PROXIES (web/deps.py).
    # With JSON logs uvicorn keeps its hands off logging: its lines go through ours.
    log_config = None if context.settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
        log_config=log_config,
    )
    access = logging.getLogger("uvicorn.access")  # configured by the Config just made
    if not any(isinstance(found, RedactReaderTokens) for found in access.filters):
        access.addFilter(RedactReaderTokens())
    return uvicorn.Server(config)


HOST = typer.Option("127.0.0.1", "--host", help="Address to listen on.")
PORT = typer.Option(8000, "--port", help="Port to listen on.")


@friendly
def serve(ctx: typer.Context, host: str = HOST, port: int = PORT) -> None:
    """Run the web app (unsubscribe pages, archive, and the mailbox of the built-in catcher).

    Example: tidings serve --host 0.0.0.0 --port 8000
    """
    context = cli_context(ctx)
    _logging(context)
    _server(context, host, port).run()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _scheduler(context: CliContext) -> None:
    from tidings.schedule.scheduler import TidingsScheduler

    await TidingsScheduler(context.database(), context.settings).run(_stop_on_signals())


@friendly
def scheduler(
    ctx: typer.Context, metrics_port: int | None = METRICS_PORT, metrics_host: str = METRICS_HOST
) -> None:
    """Run the scheduler: each newsletter's cron in its time zone, feed polling, upkeep.

    Only one scheduler acts at a time (PostgreSQL advisory lock); others wait as standbys.
    Its metrics (with the delivery queue per edition) are served on --metrics-port.
    Example: tidings scheduler --metrics-port 9102
    """
    from tidings.metrics import registry_with
    from tidings.reports.queuegauge import QueueCollector

    context = cli_context(ctx)
    _logging(context)
    queue = registry_with(QueueCollector(context.database()))
    stop_metrics = start_metrics(metrics_port, metrics_host, queue)
    try:
        asyncio.run(_scheduler(context))
    finally:
        stop_metrics()


INBOUND_HOST_OPTION = typer.Option(
    None, "--host", help="Address to listen on [default: TIDINGS_INBOUND_HOST]."
)
INBOUND_PORT_OPTION = typer.Option(
    None,
    "--port",
    min=1,
    max=65535,
    help=f"Port to listen on [default: TIDINGS_INBOUND_PORT, else {INBOUND_PORT}].",
)


async def _inbound(context: CliContext, host: str, port: int) -> None:
    from tidings.inbound.server import serve_inbound

    await serve_inbound(context.database(), context.settings, host, port, _stop_on_signals())


@friendly
def inbound_serve(
    ctx: typer.Context,
    host: str | None = INBOUND_HOST_OPTION,
    port: int | None = INBOUND_PORT_OPTION,
    metrics_port: int | None = METRICS_PORT,
    metrics_host: str = METRICS_HOST,
) -> None:
    """Take bounces, complaints and mailto unsubscribes over SMTP or LMTP (the client's
    greeting decides: LHLO is LMTP).

    Only the signed return-path and unsubscribe addresses are taken (550 for any other);
    250 means stored, 451 asks the sender to try again (the database is away). Its metrics
    (bounces and complaints by kind) are served on --metrics-port.
    Example (Postfix transport: bounces.example.org lmtp:inet:127.0.0.1:2526):
    tidings inbound serve --port 2526
    """
    context = cli_context(ctx)
    settings = context.settings
    _logging(context)
    # The service creates its series (bounces by kind, at 0) when imported: before serving.
    import tidings.inbound.service  # noqa: F401

    stop_metrics = start_metrics(metrics_port, metrics_host)
    try:
        asyncio.run(
            _inbound(
                context,
                host or settings.inbound_host,
                port or settings.inbound_port or INBOUND_PORT,
            )
        )
    finally:
        stop_metrics()


async def supervise(
    name: str,
    start: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    pause: float = RESTART_SECONDS,
) -> int:
    """Run one part of the process until ``stop``; when it crashes (or returns early), log
    why and start it again after ``pause``: one failing part never takes the others down,
    nor stays down unnoticed. How many restarts there were."""
    restarts = 0
    while True:
        try:
            await start()
        except Exception:
            log.exception("%s stopped with an error; starting it again in %.0f s", name, pause)
        else:
            if stop.is_set():
                return restarts
            log.error("%s stopped by itself; starting it again in %.0f s", name, pause)
        try:
            await asyncio.wait_for(stop.wait(), timeout=pause)
            return restarts
        except TimeoutError:
            restarts += 1


async def run_all(context: CliContext, host: str, port: int) -> None:
    """Web, scheduler and worker in one loop, each supervised on its own, and the inbound
    listener when TIDINGS_INBOUND_PORT is set; the worker brings up the built-in catcher
    when no SMTP URL is set."""
    from tidings.deliver.runner import run_worker
    from tidings.inbound.server import serve_inbound
    from tidings.schedule.scheduler import TidingsScheduler

    stop = asyncio.Event()
    server = _server(context, host, port)
    database = context.database()
    settings = context.settings
    worker = asyncio.create_task(
        supervise(
            "the worker", lambda: run_worker(database, settings, drain=False, stop=stop), stop
        )
    )
    schedule = asyncio.create_task(
        supervise("the scheduler", lambda: TidingsScheduler(database, settings).run(stop), stop)
    )
    parts = [worker, schedule]
    inbound_port = settings.inbound_port
    if inbound_port is not None:
        listen = settings.inbound_host
        parts.append(
            asyncio.create_task(
                supervise(
                    "the inbound listener",
                    lambda: serve_inbound(database, settings, listen, inbound_port, stop),
                    stop,
                )
            )
        )
    try:
        await server.serve()  # returns on SIGINT/SIGTERM
    finally:
        stop.set()
        await asyncio.gather(*parts)


@friendly
def run(ctx: typer.Context, host: str = HOST, port: int = PORT) -> None:
    """Run web, scheduler and worker in one process: the small-install default.

    With TIDINGS_INBOUND_PORT set, the inbound SMTP/LMTP listener runs in it too.
    With TIDINGS_SMTP_URL empty, mail goes to the built-in catcher; read it at /mailbox.
    Example: tidings run
    """
    from tidings.mail.transport import check_links

    context = cli_context(ctx)
    check_links(context.settings)  # at start, not per message: the supervisor would retry it
    _logging(context)
    asyncio.run(run_all(context, host, port))
