"""Long-running commands: ``serve`` (web), ``scheduler``, and ``run`` (all in one process)."""

import asyncio
import logging
import signal

import typer
import uvicorn

from tidings.cli.context import CliContext, cli_context, friendly
from tidings.deliver.runner import run_worker
from tidings.schedule.scheduler import TidingsScheduler
from tidings.web.app import create_app


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _server(context: CliContext, host: str, port: int) -> uvicorn.Server:
    app = create_app(context.settings, context.database())
    return uvicorn.Server(
        # Off: X-Forwarded-For is believed only from TIDINGS_TRUSTED_PROXIES (web/deps.py).
        uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=False)
    )


HOST = typer.Option("127.0.0.1", "--host", help="Address to listen on.")
PORT = typer.Option(8000, "--port", help="Port to listen on.")


@friendly
def serve(ctx: typer.Context, host: str = HOST, port: int = PORT) -> None:
    """Run the web app (unsubscribe pages, archive, and the mailbox of the built-in catcher).

    Example: tidings serve --host 0.0.0.0 --port 8000
    """
    _logging()
    _server(cli_context(ctx), host, port).run()


async def _scheduler(context: CliContext) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await TidingsScheduler(context.database(), context.settings).run(stop)


@friendly
def scheduler(ctx: typer.Context) -> None:
    """Run the scheduler: each newsletter's cron in its time zone, feed polling, upkeep.

    Only one scheduler acts at a time (PostgreSQL advisory lock); others wait as standbys.
    Example: tidings scheduler
    """
    _logging()
    asyncio.run(_scheduler(cli_context(ctx)))


async def run_all(context: CliContext, host: str, port: int) -> None:
    """Web, scheduler and worker in one loop; the worker brings up the built-in catcher
    when no SMTP URL is set."""
    stop = asyncio.Event()
    server = _server(context, host, port)
    database = context.database()
    worker = asyncio.create_task(run_worker(database, context.settings, drain=False, stop=stop))
    schedule = asyncio.create_task(TidingsScheduler(database, context.settings).run(stop))
    try:
        await server.serve()  # returns on SIGINT/SIGTERM
    finally:
        stop.set()
        await asyncio.gather(worker, schedule)


@friendly
def run(ctx: typer.Context, host: str = HOST, port: int = PORT) -> None:
    """Run web, scheduler and worker in one process: the small-install default.

    With TIDINGS_SMTP_URL empty, mail goes to the built-in catcher; read it at /mailbox.
    Example: tidings run
    """
    _logging()
    asyncio.run(run_all(cli_context(ctx), host, port))
