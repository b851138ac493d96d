"""The command line loads what a command needs only when that command runs: a worker must not
carry the web face, feed parsing, composing or password hashing in its memory
(bench/worker_memory.py measures it; these tests keep the imports from coming back)."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.builders import articles, newsletter, subscribers, worker_env
from tests.smtpserver import smtp_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database

#: What no command needs before it runs: composing (premailer, lxml, cssutils, jinja2,
#: markdown), feeds (feedparser, httpx), HTML cleaning (nh3), the web face (fastapi,
#: starlette, uvicorn), the scheduler (apscheduler), passwords (argon2), DNS and DKIM,
#: migrations (alembic), SMTP both ways (aiosmtplib, aiosmtpd) and the metrics server.
NOT_AT_START = {
    "premailer",
    "lxml",
    "cssutils",
    "jinja2",
    "markdown_it",
    "feedparser",
    "httpx",
    "nh3",
    "fastapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "argon2",
    "dns",
    "dkim",
    "alembic",
    "aiosmtplib",
    "aiosmtpd",
    "prometheus_client",
}
#: What a worker never needs, even while it sends: the edition was composed (and its HTML
#: inlined and cleaned) once, before any worker claimed it.
NOT_IN_A_WORKER = {
    "premailer",
    "lxml",
    "cssutils",
    "jinja2",
    "markdown_it",
    "feedparser",
    "nh3",
    "fastapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "argon2",
}

#: Runs the worker in this interpreter (one process, no supervisor) and prints, on its last
#: line, every module it had loaded by the end.
WORKER = """
import json, sys
from tidings.cli.app import app
try:
    app(["worker", "--drain", "--processes", "1"])
except SystemExit as exit_:
    code = exit_.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(modules: list[str], packages: set[str]) -> set[str]:
    """Which of ``packages`` have any module among ``modules``."""
    return {name.split(".")[0] for name in modules} & packages


def _modules_after(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def test_importing_the_command_line_loads_no_heavy_library() -> None:
    modules = _modules_after("import tidings.cli.app")
    assert "tidings.cli.worker" in modules  # every command is still registered
    assert _loaded(modules, NOT_AT_START) == set()


def test_no_command_module_brings_a_service_layer_with_it() -> None:
    """The command modules import the services inside their commands: none of composing,
    ingest, the audience, access, the web face or the scheduler at start."""
    modules = _modules_after("import tidings.cli.app")
    layers = {".".join(name.split(".")[:2]) for name in modules if name.startswith("tidings.")}
    heavy_layers = {
        "tidings.compose",
        "tidings.ingest",
        "tidings.audience",
        "tidings.access",
        "tidings.web",
        "tidings.sample",
        "tidings.reports",
        "tidings.deliver",
        "tidings.feedback",
    }
    assert layers & heavy_layers == set()


def test_a_worker_sends_an_edition_without_the_composing_or_web_libraries(
    db: Database, settings: Settings
) -> None:
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=1))
    subscribers(db, "daily", 3)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    with smtp_server() as (handler, port):
        done = subprocess.run(
            [sys.executable, "-c", WORKER],
            env=worker_env(settings, port),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] in (0, None), done.stdout + done.stderr
    assert "sent 3, deferred 0, failed 0" in done.stdout
    assert len(handler.caught) == 3
    assert _loaded(report["modules"], NOT_IN_A_WORKER) == set()
