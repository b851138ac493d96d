"""The web app on a loopback port, its mail going to a recording SMTP server."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.smtpserver import Caught, RecordingHandler, smtp_server
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database


@dataclass
class Site:
    base: str
    smtp: RecordingHandler
    db: Database
    settings: Settings

    def wait_for_mail(self, count: int = 1, timeout: float = 10.0) -> list[Caught]:
        """The caught messages once there are ``count``: confirmations go out after the
        answer, from the app's background sender."""
        eventually(lambda: len(self.smtp.caught) >= count, timeout)
        return list(self.smtp.caught)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail the test if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.02)


@contextmanager
def site_with_mail(db: Database, settings: Settings) -> Iterator[Site]:
    with smtp_server() as (handler, port):
        with_smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        with web_server(with_smtp, db) as base:
            yield Site(base, handler, db, with_smtp)
