"""What the benchmarks share: a throw-away PostgreSQL database, earlier code read from git for
a baseline, and the median time of a piece of work."""

import statistics
import subprocess
import sys
import tarfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import psycopg
from sqlalchemy import text

from tidings.db.engine import Database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

#: The repository's root: git runs here, and paths at a commit are relative to it.
ROOT = Path(__file__).resolve().parent.parent
GIT_TIMEOUT = 60


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database on the local server (SQLAlchemy URL), dropped afterwards."""
    name = f"tidings_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FILL = """
INSERT INTO newsletters (id, slug, name, from_name, from_address, schedule_cron, timezone,
    min_articles, max_articles, template_set, created_at, updated_at)
VALUES (1, 'daily', 'Daily', 'The Messenger', 'digest@messenger.example.ge', '0 7 * * *',
    'Asia/Tbilisi', 1, 20, 'digest', now(), now());
INSERT INTO subscribers (id, email, name, attributes, created_at, updated_at)
SELECT g, 'reader' || g || '@example.ge', 'Reader ' || g, '{}'::jsonb, now(), now()
FROM generate_series(1, :n) AS g;
INSERT INTO subscriptions (subscriber_id, newsletter_id, status, cadence, created_at, updated_at)
SELECT g, 1, CASE WHEN g % 4 = 0 THEN 'pending' WHEN g % 4 = 1 THEN 'unsubscribed'
    ELSE 'active' END, 'daily', now(), now()
FROM generate_series(1, :n) AS g;
ANALYZE;
"""


def fill_subscribers(db: Database, n: int) -> None:
    """Newsletter 'daily' and n subscribers: half active, a quarter pending, a quarter gone."""
    with db.engine.begin() as connection:
        for statement in FILL.split(";"):
            if statement.strip():
                connection.execute(text(statement), {"n": n})


def _git(*args: str) -> bytes:
    """The output of a git command run in the repository's root (fails loudly)."""
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, check=True, timeout=GIT_TIMEOUT
    )
    return done.stdout


def source_at(commit: str, path: str) -> str:
    """The text of the file at ``path`` (from the repository's root) as it was at ``commit``."""
    return _git("show", f"{commit}:{path}").decode()


def module_at(commit: str, path: str, name: str) -> types.ModuleType:
    """The module in ``path`` as it was at ``commit``, run as a fresh module called ``name``
    (its imports are today's modules: for a module whose own code is the baseline)."""
    module = types.ModuleType(name)
    module.__file__ = f"{commit}:{path}"
    sys.modules[name] = module
    exec(compile(source_at(commit, path), module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


def tree_at(commit: str, folder: Path, *paths: str) -> None:
    """Unpack ``paths`` (folders or files from the repository's root) as they were at
    ``commit`` into ``folder``."""
    archive = _git("archive", "--format=tar", commit, *paths)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")


def median_seconds(
    work: Callable[[], object],
    rounds: int,
    *,
    number: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds per call of ``work`` on ``clock``: the median of ``rounds`` rounds of ``number``
    calls each (``time.process_time`` for CPU time, which other work on a shared machine does
    not inflate)."""
    timings = []
    for _ in range(rounds):
        started = clock()
        for _ in range(number):
            work()
        timings.append((clock() - started) / number)
    return statistics.median(timings)
