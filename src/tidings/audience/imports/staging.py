"""Temporary staging tables for set-based subscriber imports, and how rows get into them.

Rows are loaded with PostgreSQL's COPY (or multi-row inserts on SQLite), deduplicated in SQL,
and merged into the real tables by a few INSERT ... SELECT statements per batch.
"""

from collections.abc import Sequence

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Over,
    String,
    Table,
    Text,
    case,
    exists,
    func,
    insert,
    over,
    select,
    text,
    union_all,
)

from tidings.audience.imports.csvrows import SubscriberRow
from tidings.db.dialect import is_postgres

_metadata = MetaData()

#: Every valid row of the file, in file order.
import_rows = Table(
    "tidings_import_rows",
    _metadata,
    Column("line", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", Text),
    Column("locale", Text),
    Column("timezone", Text),
    Column("attributes", Text, nullable=False),
    prefixes=["TEMPORARY"],
)

#: One row per address: duplicates merged field by field (the first non-empty value wins).
import_merged = Table(
    "tidings_import_merged",
    _metadata,
    Column("seq", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", Text),
    Column("locale", Text),
    Column("timezone", Text),
    Column("attributes", Text, nullable=False),
    prefixes=["TEMPORARY"],
)


def create_staging(connection: Connection) -> None:
    """(Re)create both staging tables on this connection."""
    for table in (import_merged, import_rows):
        table.drop(connection, checkfirst=True)
    for table in (import_rows, import_merged):
        table.create(connection)


def drop_staging(connection: Connection) -> None:
    """Drop the staging tables."""
    for table in (import_merged, import_rows):
        table.drop(connection, checkfirst=True)


def load_rows(connection: Connection, rows: Sequence[SubscriberRow]) -> None:
    """Append ``rows`` to the staging table: COPY on PostgreSQL, multi-row INSERT elsewhere."""
    if not rows:
        return
    if is_postgres(connection):
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = (
            "COPY tidings_import_rows (line, email, name, locale, timezone, attributes) FROM STDIN"
        )
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(
                    (row.line, row.email, row.name, row.locale, row.timezone, row.attributes)
                )
        return
    connection.execute(
        insert(import_rows),
        [
            {
                "line": row.line,
                "email": row.email,
                "name": row.name,
                "locale": row.locale,
                "timezone": row.timezone,
                "attributes": row.attributes,
            }
            for row in rows
        ],
    )


def _first_non_empty(column: Column[str]) -> Over[str]:
    empty_last = case((column.is_(None), 1), else_=0)
    return over(
        func.first_value(column),
        partition_by=import_rows.c.email,
        order_by=(empty_last, import_rows.c.line),
    )


def merge_duplicates(connection: Connection) -> int:
    """Fill ``import_merged`` with one row per address, numbered in address order; returns
    how many addresses there are. Only the addresses the file names more than once go
    through the field-by-field window merge: the rest (nearly all of a big file) are copied
    as they are, which spares sorting a million rows five times."""
    c = import_rows.c
    analyse(connection, import_rows)
    repeated = select(c.email).group_by(c.email).having(func.count() > 1).cte("repeated")
    once = select(c.email, c.name, c.locale, c.timezone, c.attributes).where(
        ~exists().where(repeated.c.email == c.email)
    )
    empty_attributes = "{}"
    per_row = (
        select(
            c.email,
            _first_non_empty(c.name).label("name"),
            _first_non_empty(c.locale).label("locale"),
            _first_non_empty(c.timezone).label("timezone"),
            over(
                func.first_value(c.attributes),
                partition_by=c.email,
                order_by=(case((c.attributes == empty_attributes, 1), else_=0), c.line),
            ).label("attributes"),
            over(func.row_number(), partition_by=c.email, order_by=c.line).label("nth"),
        )
        .where(c.email.in_(select(repeated.c.email)))
        .subquery()
    )
    merged = select(
        per_row.c.email, per_row.c.name, per_row.c.locale, per_row.c.timezone, per_row.c.attributes
    ).where(per_row.c.nth == 1)
    every = union_all(once, merged).subquery()
    numbered = select(
        over(func.row_number(), order_by=every.c.email).label("seq"),
        every.c.email,
        every.c.name,
        every.c.locale,
        every.c.timezone,
        every.c.attributes,
    )
    connection.execute(
        insert(import_merged).from_select(
            ["seq", "email", "name", "locale", "timezone", "attributes"], numbered
        )
    )
    analyse(connection, import_merged)
    return int(connection.scalar(select(func.count()).select_from(import_merged)) or 0)


def analyse(connection: Connection, table: Table) -> None:
    """Give PostgreSQL's planner the staging table's statistics (autovacuum never sees a
    temporary table): without them it plans a million rows as a few dozen, and picks nested
    loops over them."""
    if is_postgres(connection):
        connection.execute(text(f"ANALYZE {table.name}"))


def planner_for_bulk(connection: Connection, bulk: bool) -> None:
    """Turn PostgreSQL's JIT compilation off for this session while it imports (and back to
    the server's setting after): with the staging tables analysed, each statement of a
    batch looks big enough to compile, and compiling takes longer than running it."""
    if is_postgres(connection):
        connection.execute(text("SET jit = off" if bulk else "RESET jit"))
