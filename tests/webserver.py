"""Run the real web app with uvicorn on a loopback port, in a thread, for the tests."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.smtpserver import free_port
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.web.app import create_app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve an app (the real one, perhaps with a route or a test seam added) on a loopback
    port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            proxy_headers=False,  # as `tidings serve`: the app alone decides whom to believe
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def web_server(settings: Settings, db: Database) -> Iterator[str]:
    with serve(create_app(settings, db)) as base:
        yield base
