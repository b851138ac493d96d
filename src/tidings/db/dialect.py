"""What differs between the two databases, asked in one place: which one a bind is, the
INSERT construct with ``ON CONFLICT``, and how many rows a statement changed."""

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session

#: An INSERT that offers ``on_conflict_do_nothing`` and ``on_conflict_do_update`` (and
#: ``excluded``) on either database.
UpsertInsert = postgresql.Insert | sqlite.Insert


def is_postgres(bind: Session | Connection | Engine) -> bool:
    """True on PostgreSQL, False on SQLite (the two databases Tidings runs on)."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


def upsert_insert(bind: Session | Connection) -> Callable[[type[DeclarativeBase]], UpsertInsert]:
    """``postgresql.insert`` or ``sqlite.insert``, for a model: both offer ``on_conflict_do_*``."""
    return postgresql.insert if is_postgres(bind) else sqlite.insert


def row_count(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (or inserted, when the statement ran with
    ``preserve_rowcount``): ``Session.execute`` is typed as a plain ``Result``."""
    return int(cast(CursorResult[Any], result).rowcount)


#: Execution options that keep the DB-API row count of an INSERT (SQLAlchemy drops it unless
#: asked), for :func:`row_count`.
PRESERVE_ROWCOUNT = {"preserve_rowcount": True}
