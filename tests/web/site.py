"""The web app on a loopback port, its mail going to a recording SMTP server."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.smtpserver import RecordingHandler, smtp_server
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database


@dataclass
class Site:
    base: str
    smtp: RecordingHandler
    db: Database
    settings: Settings


@contextmanager
def site_with_mail(db: Database, settings: Settings) -> Iterator[Site]:
    with smtp_server() as (handler, port):
        with_smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        with web_server(with_smtp, db) as base:
            yield Site(base, handler, db, with_smtp)
