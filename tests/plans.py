"""The statements a piece of code sends, and the plans for them (PostgreSQL's, SQLite's): for
tests that a statement on a hot path reads through an index, not the whole table."""

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from tidings.db.engine import Database

Statement = tuple[str, Any]
"""A statement as sent to the driver, and its parameters."""


def statements_of(db: Database, run: Callable[[], object], needle: str = "") -> list[Statement]:
    """The statements ``run()`` sent on ``db``'s engine that contain ``needle``."""
    seen: list[Statement] = []

    def record(
        conn: Connection, cursor: object, statement: str, parameters: Any, *_: object
    ) -> None:
        if needle in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def plan_of(db: Database, sent: Statement, analyze: bool = False) -> dict[str, Any]:
    """PostgreSQL's plan (its top node) for ``sent``; with ``analyze`` it is run, with its
    buffers counted, and rolled back."""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    statement, parameters = sent
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor:
                cursor.execute(f"EXPLAIN ({options}) {statement}", parameters)
                row = cursor.fetchone()
        finally:
            driver.rollback()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def sqlite_plan(db: Database, sent: Statement) -> str:
    """SQLite's plan for ``sent`` (EXPLAIN QUERY PLAN), one step per line."""
    statement, parameters = sent
    raw = db.engine.raw_connection()
    try:
        rows = raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
    finally:
        raw.close()
    return "\n".join(str(row[-1]) for row in rows)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan, the top one first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def seq_scanned(plan: dict[str, Any]) -> set[str]:
    """The tables the plan reads whole."""
    return {n["Relation Name"] for n in nodes(plan) if n["Node Type"] == "Seq Scan"}


def blocks(plan: dict[str, Any]) -> int:
    """Pages an analysed plan read (from the cache or the disk)."""
    return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


def crowd(db: Database, newsletter_id: int, readers: int, prefix: str = "crowd") -> None:
    """``readers`` more active readers of the newsletter, written in SQL (fast), and fresh
    statistics: enough rows that a scan would show in a plan."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscribers (email, attributes, created_at, updated_at)"
                " SELECT :prefix || g || '@example.org', '{}'::jsonb, now(), now()"
                " FROM generate_series(1, :n) AS g"
            ),
            {"prefix": prefix, "n": readers},
        )
        connection.execute(
            text(
                "INSERT INTO subscriptions (subscriber_id, newsletter_id, status, cadence,"
                " created_at, updated_at) SELECT id, :newsletter, 'active', 'daily', now(), now()"
                " FROM subscribers WHERE email LIKE :prefix || '%'"
            ),
            {"prefix": prefix, "newsletter": newsletter_id},
        )
        connection.execute(text("ANALYZE subscribers, subscriptions"))
