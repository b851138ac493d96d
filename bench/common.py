"""What the benchmarks share: a throw-away PostgreSQL database."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import text

from tidings.db.engine import Database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


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
