"""Start a worker with its transports (and the built-in catcher when no SMTP URL is set)."""

import asyncio
import errno
import logging
from collections.abc import Callable

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deliver.catcher import start_catcher
from tidings.deliver.worker import Worker, WorkerStats
from tidings.mail.transport import SmtpConnection, Transport, smtp_target

log = logging.getLogger(__name__)


def make_transports(settings: Settings) -> list[Transport]:
    """One long-lived connection per pool slot."""
    connect = connector(settings)
    return [connect() for _ in range(settings.smtp_pool_size)]


def connector(settings: Settings) -> Callable[[], Transport]:
    """Opens one more long-lived connection to the configured relay (the pool grows with it)."""
    target = smtp_target(settings)
    return lambda: SmtpConnection(target, settings.smtp_timeout_seconds)


class CatcherHandle:
    """The catcher this process started, if it started one."""

    def __init__(self, settings: Settings) -> None:
        self._controller = None
        if settings.smtp is not None:
            return
        try:
            self._controller = start_catcher(settings.data_dir, settings.catcher_port)
        except OSError as exc:
            # errno EADDRINUSE: another Tidings process already runs the catcher there.
            if exc.errno != errno.EADDRINUSE and "in use" not in str(exc):
                raise
            log.info("a mail catcher already listens on port %s", settings.catcher_port)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


async def run_worker(
    db: Database, settings: Settings, *, drain: bool, stop: asyncio.Event
) -> WorkerStats:
    """Run one worker until ``stop`` (or until drained)."""
    catcher = await asyncio.to_thread(CatcherHandle, settings)
    try:
        transports = make_transports(settings)
        worker = Worker(db, settings, transports, connect=connector(settings))
        return await worker.run(drain=drain, stop=stop)
    finally:
        catcher.stop()
